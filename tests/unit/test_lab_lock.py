"""A lab's lock: one command that changes a lab at a time, the holder named to the others.

Issue 11, finding 7. The holders here are a second process (through the toolkit's own
lock, so it writes its record) or a second open file description holding the bare
flock; no host, engine or Vagrant ever runs: every library call a command would make is
replaced by a recorder.
"""

from __future__ import annotations

import fcntl
import importlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from toolkit import etcd, paths
from toolkit.cli import main
from toolkit.errors import K8slabError, LabNameError
from toolkit.hosts import engine, lifecycle
from toolkit.lab import state
from toolkit.lab.state import LabBusyError, LockHolder, lab_lock, lock_holder
from toolkit.verify.report import CheckResult, VerifyReport

LAB = "ha-stacked"
# The command modules (``toolkit.cli.drill`` as an attribute is the click command).
cli_lab, cli_cluster, cli_drill, cli_verify = (
    importlib.import_module(f"toolkit.cli.{name}") for name in ("lab", "cluster", "drill", "verify")
)

HOLDER = """
import sys
from toolkit.lab.state import lab_lock
with lab_lock(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    sys.stdin.readline()
"""


@contextmanager
def held_by_another_process(lab: str, command: str) -> Iterator[int]:
    """Another k8slab process holds the lab's lock until the block ends; yields its pid."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, lab, command],
        cwd=paths.REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline() == "held\n"
        yield proc.pid
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def is_free(lab: str) -> bool:
    """Whether a process other than this one could take the lab's lock now."""
    probe = (
        "import fcntl, sys\n"
        "with open(sys.argv[1], 'a') as f:\n"
        "    try:\n"
        "        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "    except BlockingIOError:\n"
        "        sys.exit(1)\n"
    )
    path = paths.lab_lock_file(lab)
    path.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, "-c", probe, str(path)], check=False).returncode == 0


@pytest.fixture
def no_library(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every library call a lab-changing command makes is a recorder that does nothing."""
    ran: list[str] = []

    def recorder(name: str, result: Any = None) -> Any:
        def record(*args: object, **kwargs: object) -> Any:
            ran.append(name)
            return result

        return record

    monkeypatch.setattr(lifecycle, "up_hosts", recorder("up"))
    monkeypatch.setattr(cli_lab, "up_cluster", recorder("up_cluster"))
    monkeypatch.setattr(lifecycle, "destroy_lab", recorder("destroy", lifecycle.Destroyed()))
    monkeypatch.setattr(cli_cluster, "provision_cluster", recorder("provision"))
    monkeypatch.setattr(cli_cluster, "reset", recorder("reset"))
    monkeypatch.setattr(
        cli_drill, "run_drills", recorder("drill", ([], Path("r.json"), Path("r.md")))
    )
    monkeypatch.setattr(etcd, "backup", recorder("backup"))
    monkeypatch.setattr(etcd, "resolve", recorder("resolve", Path("x.db")))
    monkeypatch.setattr(etcd, "restore", recorder("restore"))
    passed = CheckResult("nodes", "ready", "cp1", "passed", 0.1)
    report = VerifyReport(LAB, (), "", 1.0, (passed,), Path("r.xml"), Path("r.md"))
    monkeypatch.setattr(cli_verify, "run_verify", recorder("verify", report))
    return ran


CHANGING = [
    ["up", LAB],
    ["destroy", LAB],
    ["provision", LAB],
    ["reset", LAB, "--yes"],
    ["verify", LAB],
    ["drill", LAB, "member-loss"],
    ["etcd", "backup", LAB],
    ["etcd", "restore", LAB, "latest", "--yes"],
    ["scale", LAB, "--add-worker", "w3"],
    ["scale", LAB, "--resume"],
]


@pytest.mark.parametrize("argv", CHANGING, ids=" ".join)
def test_a_command_that_changes_a_busy_lab_is_refused_with_the_holder_named(
    argv: list[str], isolated_state: Path, no_library: list[str]
) -> None:
    holder = f"k8slab drill {LAB} member-loss"
    with held_by_another_process(LAB, holder) as pid:
        result = CliRunner().invoke(main, argv)
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"error: lab {LAB} is busy: `{holder}` (pid {pid}, since ")
    assert result.output.endswith(" UTC); wait for it or stop it\n")
    assert "Traceback" not in result.output
    assert no_library == [], "refused before anything ran"


def test_a_bare_flock_without_a_record_is_still_refused(
    isolated_state: Path, no_library: list[str]
) -> None:
    path = paths.lab_lock_file(LAB)
    path.parent.mkdir(parents=True)
    with path.open("a") as other:  # a second open file description, no record written
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = CliRunner().invoke(main, ["drill", LAB, "--all"])
    assert result.exit_code == 1, result.output
    assert result.output == (
        f"error: lab {LAB} is busy: another process holds {path}; wait for it or stop it\n"
    )
    assert no_library == []


def test_a_spec_path_locks_the_lab_it_names(isolated_state: Path, no_library: list[str]) -> None:
    with held_by_another_process("single", "k8slab up single"):
        result = CliRunner().invoke(main, ["destroy", "inventories/single/lab.yml"])
    assert result.exit_code == 1, result.output
    assert "lab single is busy: `k8slab up single`" in result.output


def test_another_lab_and_read_only_commands_are_not_held_up(
    isolated_state: Path, no_library: list[str]
) -> None:
    with held_by_another_process(LAB, f"k8slab drill {LAB} --all"):
        for argv in (["validate", LAB], ["etcd", "backups", LAB], ["labs"], ["verify", "single"]):
            result = CliRunner().invoke(main, argv)
            assert result.exit_code == 0, (argv, result.output)
    assert no_library == ["verify"]


def test_the_lock_is_held_during_the_command_and_released_after(
    isolated_state: Path, no_library: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[bool, LockHolder | None]] = []

    def run_drills(*args: object, **kwargs: object) -> Any:
        seen.append((is_free(LAB), lock_holder(paths.lab_lock_file(LAB))))
        return [], Path("r.json"), Path("r.md")

    monkeypatch.setattr(cli_drill, "run_drills", run_drills)
    monkeypatch.setattr(sys, "argv", ["/venv/bin/k8slab", "drill", LAB, "member-loss"])
    before = time.time()
    result = CliRunner().invoke(main, ["drill", LAB, "member-loss"])
    assert result.exit_code == 0, result.output
    [(free, holder)] = seen
    assert not free, "held while the command runs"
    assert holder is not None
    assert holder.command == f"k8slab drill {LAB} member-loss"
    assert holder.pid == os.getpid()
    assert before <= holder.started <= time.time()
    assert is_free(LAB), "released after the command"
    assert lock_holder(paths.lab_lock_file(LAB)) is None, "the record goes with the lock"
    assert oct(paths.lab_lock_file(LAB).stat().st_mode & 0o777) == "0o600"
    assert oct(paths.lab_lock_file(LAB).parent.stat().st_mode & 0o777) == "0o700"


@pytest.mark.parametrize(
    "failure",
    [K8slabError("etcd is down"), RuntimeError("a bug"), KeyboardInterrupt()],
    ids=["toolkit error", "bug", "ctrl-c"],
)
def test_the_lock_is_released_when_the_command_fails(
    failure: BaseException,
    isolated_state: Path,
    no_library: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def run_drills(*args: object, **kwargs: object) -> Any:
        raise failure

    monkeypatch.setattr(cli_drill, "run_drills", run_drills)
    result = CliRunner().invoke(main, ["drill", LAB, "member-loss"])
    assert result.exit_code != 0
    assert is_free(LAB)
    assert state._held == {}


def test_a_usage_error_after_the_lab_releases_the_lock(
    isolated_state: Path, no_library: list[str]
) -> None:
    result = CliRunner().invoke(main, ["etcd", "backup", LAB, "--keep", "0"])
    assert result.exit_code == 2
    assert is_free(LAB)


def test_nested_commands_and_library_calls_in_one_process_never_wait_on_themselves(
    isolated_state: Path, no_library: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    inner: list[int] = []

    def run_drills(*args: object, **kwargs: object) -> Any:
        # A drill that runs verify, through the CLI as a test would, while the drill holds.
        inner.append(CliRunner().invoke(main, ["verify", LAB]).exit_code)
        return [], Path("r.json"), Path("r.md")

    monkeypatch.setattr(cli_drill, "run_drills", run_drills)
    with lab_lock(LAB, "pytest"):  # e.g. an e2e test holding the lab around its steps
        result = CliRunner().invoke(main, ["drill", LAB, "member-loss"])
        assert not is_free(LAB), "the outer hold outlives the commands inside it"
    assert result.exit_code == 0, result.output
    assert inner == [0]
    assert no_library == ["verify"]
    assert is_free(LAB)
    assert state._held == {}


def test_the_lock_takes_only_lab_names(isolated_state: Path) -> None:
    with pytest.raises(LabNameError), lab_lock("mylab/..", "x"):
        pass
    assert not isolated_state.exists()


def test_a_refusal_leaves_the_holder_s_record_intact(isolated_state: Path) -> None:
    with held_by_another_process(LAB, "k8slab up ha-stacked") as pid:
        for _ in range(2):
            with pytest.raises(LabBusyError, match=f"pid {pid}, "), lab_lock(LAB, "second"):
                pass
        holder = lock_holder(paths.lab_lock_file(LAB))
    assert holder is not None and holder.pid == pid


def test_the_holder_s_start_shows_the_date_when_it_is_not_today() -> None:
    started = 1_795_000_000.0  # 2026-11-18 11:06:40 UTC
    holder = LockHolder("k8slab up x", 7, started)
    assert holder.describe(now=started + 60) == "`k8slab up x` (pid 7, since 11:06:40 UTC)"
    assert holder.describe(now=started + 2 * 86400) == (
        "`k8slab up x` (pid 7, since 2026-11-18 11:06:40 UTC)"
    )


# --- the engine's lock ---------------------------------------------------------------------


def test_the_engine_lock_is_in_the_user_s_cache_not_in_tmp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("K8SLAB_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / ".cache" / "k8slab" / "locks" / "docker-networks.lock"
    with engine.networks_lock():
        assert expected.is_file()
        with expected.open("a") as other, pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert oct(expected.parent.stat().st_mode & 0o777) == "0o700"
    source = Path(engine.__file__).read_text(encoding="utf-8")
    assert "gettempdir" not in source and "/tmp/" not in source
