"""benchmarks/report.py: docs/measurements.md is generated from every results file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.modules import load_file

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"
RESULTS_FILES = sorted(RESULTS.glob("*.json"))


report = load_file("benchmark_report", REPO / "benchmarks" / "report.py")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> str:
    output = tmp_path_factory.mktemp("docs") / "measurements.md"
    assert report.main(["--results", str(RESULTS), "--output", str(output)]) == 0
    return output.read_text(encoding="utf-8")


def test_there_are_results_files() -> None:
    assert RESULTS_FILES, f"no results files in {RESULTS}"


@pytest.mark.parametrize("results_file", RESULTS_FILES, ids=lambda p: p.name)
def test_every_results_file_has_its_section(generated: str, results_file: Path) -> None:
    assert f"## {results_file.stem}\n" in generated
    assert f"`benchmarks/results/{results_file.name}`" in generated


@pytest.mark.parametrize("results_file", RESULTS_FILES, ids=lambda p: p.name)
def test_known_shapes_get_their_own_tables(generated: str, results_file: Path) -> None:
    """A known file is never shown flat: that happens only when its shape changed, and the
    renderer for it must then be updated with the benchmark."""
    section = generated.split(f"## {results_file.stem}\n", 1)[1].split("\n## ", 1)[0]
    if results_file.stem in report.RENDERERS:
        assert "Its shape is not the one this report knows" not in section


@pytest.mark.parametrize("results_file", RESULTS_FILES, ids=lambda p: p.name)
def test_recorded_time_is_quoted_when_the_file_has_one(generated: str, results_file: Path) -> None:
    data = json.loads(results_file.read_text(encoding="utf-8"))
    section = generated.split(f"## {results_file.stem}\n", 1)[1].split("\n## ", 1)[0]
    for key in report.WHEN_KEYS:
        if isinstance(data, dict) and key in data:
            assert str(data[key]) in section


def test_an_unknown_or_changed_file_is_shown_flat(tmp_path: Path) -> None:
    (tmp_path / "new.json").write_text(json.dumps({"recorded_at": "2027-01-01", "a": {"b": 1.5}}))
    (tmp_path / "verify.json").write_text(json.dumps({"runs": "not a list"}))
    text = report.render(tmp_path)
    assert "## new\n" in text and "| `a.b` | 1.5 |" in text and "2027-01-01" in text
    assert "## verify\n" in text and "| `runs` | not a list |" in text


def test_no_results_files_is_an_error(tmp_path: Path) -> None:
    assert report.main(["--results", str(tmp_path), "--output", str(tmp_path / "m.md")]) == 1


def test_committed_page_is_up_to_date(generated: str) -> None:
    """docs/measurements.md is the generator's output for the committed results files."""
    committed = REPO / "docs" / "measurements.md"
    assert committed.read_text(encoding="utf-8") == generated, (
        "docs/measurements.md is stale: run .venv/bin/python benchmarks/report.py"
    )
