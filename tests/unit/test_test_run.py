"""benchmarks/test_run.py: the full matrix is recorded stage by stage, per commit, so a run
that spans two sittings resumes only at the commit it began on."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
PLANNED = "ruff suite e2e-single conformance"
JUNIT = """<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="5" failures="1"
errors="0" skipped="1"></testsuite></testsuites>"""


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("test_run", REPO / "benchmarks" / "test_run.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


test_run = _load()


@pytest.fixture
def at(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """The results go to a temporary folder; the commit is whatever the test sets."""
    monkeypatch.setattr(test_run, "RESULTS_DIR", tmp_path)
    head = {"commit": "aaaa"}
    monkeypatch.setattr(test_run, "commit", lambda: head["commit"])
    return head


def record(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "test-full.json").read_text(encoding="utf-8"))


def run(*args: str) -> int:
    return int(test_run.main(list(args)))


def stage(name: str, seconds: int, status: int, *extra: str) -> int:
    return run(
        "record",
        "--mode",
        "full",
        "--planned",
        PLANNED,
        "--stage",
        f"{name}={seconds}:{status}",
        *extra,
    )


def test_each_stage_is_recorded_as_it_ends_with_its_counts(at: dict, tmp_path: Path) -> None:
    junit = tmp_path / "suite.xml"
    junit.write_text(JUNIT)
    assert run("start", "--mode", "full", "--planned", PLANNED) == 0
    assert stage("ruff", 1, 0) == 0
    assert stage("suite", 100, 1, "--junit", str(junit)) == 0
    data = record(tmp_path)
    assert [s["stage"] for s in data["stages"]] == ["ruff", "suite"]
    assert data["stages"][1]["tests"] == {
        "tests": 5,
        "failures": 1,
        "errors": 0,
        "skipped": 1,
        "passed": 3,
    }
    assert data["tests"]["passed"] == 3 and data["total_s"] == 101
    assert data["not_run"] == ["e2e-single", "conformance"]
    assert data["passed"] is False and data["commit"] == "aaaa"


def test_only_a_stage_that_passed_at_this_commit_is_skipped(at: dict, tmp_path: Path) -> None:
    run("start", "--mode", "full", "--planned", PLANNED)
    stage("ruff", 1, 0)
    stage("suite", 100, 1)
    assert run("passed", "--mode", "full", "--stage", "ruff") == 0
    assert run("passed", "--mode", "full", "--stage", "suite") == 1
    assert run("passed", "--mode", "full", "--stage", "conformance") == 1
    at["commit"] = "bbbb"
    assert run("passed", "--mode", "full", "--stage", "ruff") == 1
    at["commit"] = "aaaa-dirty"
    assert run("passed", "--mode", "full", "--stage", "ruff") == 1


def test_a_resumed_run_replaces_the_stage_it_reran_and_passes_when_all_did(
    at: dict, tmp_path: Path
) -> None:
    run("start", "--mode", "full", "--planned", PLANNED)
    for name in ("ruff", "suite", "e2e-single"):
        stage(name, 10, 1 if name == "suite" else 0)
    stage("suite", 20, 0)
    stage("conformance", 30, 0)
    data = record(tmp_path)
    assert [s["stage"] for s in data["stages"]] == ["ruff", "e2e-single", "suite", "conformance"]
    assert data["passed"] is True and data["not_run"] == [] and data["total_s"] == 70


def test_another_commit_starts_a_new_record(at: dict, tmp_path: Path) -> None:
    run("start", "--mode", "full", "--planned", PLANNED)
    stage("ruff", 1, 0)
    at["commit"] = "bbbb"
    stage("suite", 5, 0)
    data = record(tmp_path)
    assert data["commit"] == "bbbb" and [s["stage"] for s in data["stages"]] == ["suite"]


def test_start_forgets_the_last_run_of_the_same_commit(at: dict, tmp_path: Path) -> None:
    run("start", "--mode", "full", "--planned", PLANNED)
    stage("ruff", 1, 0)
    run("start", "--mode", "full", "--planned", PLANNED)
    assert record(tmp_path)["stages"] == []
    assert run("passed", "--mode", "full", "--stage", "ruff") == 1


def test_the_run_s_own_results_do_not_make_the_tree_dirty(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    for path in ("benchmarks/results/test-full.json", "docs/measurements.md", "toolkit.py"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("before\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "benchmarks/results/test-full.json").write_text("a stage later\n")
    (tmp_path / "docs/measurements.md").write_text("regenerated\n")
    assert not test_run.commit().endswith("-dirty")
    (tmp_path / "toolkit.py").write_text("changed\n")
    assert test_run.commit().endswith("-dirty")
