"""Record a run of scripts/test --full stage by stage: on which commit, when each stage
ended, its time, its exit status and its test counts from pytest's JUnit XML, into
benchmarks/results/test-<mode>.json. The whole matrix takes longer than one sitting, so
the record is kept per stage: `--resume` runs only what has not passed at this commit.

    .venv/bin/python benchmarks/test_run.py start --mode full --planned "ruff mypy ..."
    .venv/bin/python benchmarks/test_run.py record --mode full --planned "..." \\
        --stage NAME=SECONDS:EXIT [--junit FILE]
    .venv/bin/python benchmarks/test_run.py passed --mode full --stage NAME  # exit 0: yes
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# What JUnit XML counts; "passed" is what is left of them.
JUNIT_COUNTS = ("tests", "failures", "errors", "skipped")
COUNTS = (*JUNIT_COUNTS, "passed")
# Written by the run itself: a stage's record must not make the next stage's commit dirty.
GENERATED = ("benchmarks/results", "docs/measurements.md")


def commit() -> str:
    """HEAD's hash, with ``-dirty`` when the work tree differs from it (outside the
    results files and the page generated from them)."""
    head = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    excluded = [f":(exclude){path}" for path in GENERATED]
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", ".", *excluded]).returncode
    return f"{head}-dirty" if dirty else head


def junit_counts(path: Path) -> dict[str, int]:
    """Totals over every test suite of a JUnit XML file (pytest writes one suite)."""
    if not path.is_file() or path.stat().st_size == 0:
        return {}
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    totals = {key: sum(int(suite.get(key, 0)) for suite in suites) for key in JUNIT_COUNTS}
    totals["passed"] = totals["tests"] - totals["failures"] - totals["errors"] - totals["skipped"]
    return totals


def parse_stage(text: str) -> dict[str, Any]:
    name, _, rest = text.partition("=")
    seconds, _, status = rest.partition(":")
    return {"stage": name, "seconds": int(seconds), "exit": int(status or 0)}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def fresh(mode: str, planned: list[str]) -> dict[str, Any]:
    return {"mode": mode, "commit": commit(), "began_at": now(), "planned": planned, "stages": []}


def load(out: Path, mode: str, planned: list[str]) -> dict[str, Any]:
    """The record of this commit's run, or a new one: a record of another commit never
    counts towards this one."""
    if out.is_file():
        record: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        if record.get("commit") == commit():
            record["planned"] = planned or record.get("planned", [])
            return record
    return fresh(mode, planned)


def summarize(record: dict[str, Any]) -> dict[str, Any]:
    """The totals over the stages: passed only when every planned stage passed."""
    stages = record["stages"]
    done = {stage["stage"]: stage for stage in stages}
    missing = [name for name in record["planned"] if name not in done]
    tests = {key: sum(stage.get("tests", {}).get(key, 0) for stage in stages) for key in COUNTS}
    return {
        "mode": record["mode"],
        "commit": record["commit"],
        "began_at": record["began_at"],
        "recorded_at": now(),
        "planned": record["planned"],
        "not_run": missing,
        "passed": not missing and all(stage["exit"] == 0 for stage in stages),
        "total_s": sum(stage["seconds"] for stage in stages),
        "stages": stages,
        "tests": tests,
    }


def results_file(mode: str) -> Path:
    return RESULTS_DIR / f"test-{mode}.json"


def write(out: Path, record: dict[str, Any]) -> None:
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(summarize(record), indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("action", choices=("start", "record", "passed"))
    parser.add_argument("--mode", required=True)
    parser.add_argument("--planned", default="", help="the run's stage names, space separated")
    parser.add_argument("--stage", type=str)
    parser.add_argument("--junit", type=Path)
    args = parser.parse_args(argv)
    out = results_file(args.mode)
    planned = args.planned.split()
    if args.action == "start":
        write(out, fresh(args.mode, planned))
        return 0
    if not args.stage:
        parser.error(f"{args.action} needs --stage")
    if args.action == "passed":
        # A dirty tree is not the commit its record names: nothing of it is skipped.
        if commit().endswith("-dirty"):
            return 1
        record = load(out, args.mode, planned)
        return (
            0 if any(s["stage"] == args.stage and s["exit"] == 0 for s in record["stages"]) else 1
        )
    stage = parse_stage(args.stage)
    stage["finished_at"] = now()
    if args.junit:
        stage["tests"] = junit_counts(args.junit)
    record = load(out, args.mode, planned)
    record["stages"] = [s for s in record["stages"] if s["stage"] != stage["stage"]] + [stage]
    write(out, record)
    print(f"[test] stage {stage['stage']} recorded in {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
