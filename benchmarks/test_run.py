"""Record one run of scripts/test: when, on which commit, each stage's time and the test
counts from pytest's JUnit XML, into benchmarks/results/test-<mode>.json.

    .venv/bin/python benchmarks/test_run.py --mode full --junit FILE --stage NAME=SECONDS:EXIT ...
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
COUNTS = ("tests", "failures", "errors", "skipped")


def commit() -> str:
    """HEAD's hash, with ``-dirty`` when the work tree differs from it."""
    head = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], check=False).returncode != 0
    return f"{head}-dirty" if dirty else head


def junit_counts(path: Path) -> dict[str, int]:
    """Totals over every test suite of a JUnit XML file (pytest writes one suite)."""
    if not path.is_file():
        return {}
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    totals = {key: sum(int(suite.get(key, 0)) for suite in suites) for key in COUNTS}
    totals["passed"] = totals["tests"] - totals["failures"] - totals["errors"] - totals["skipped"]
    return totals


def parse_stage(text: str) -> dict[str, Any]:
    name, _, rest = text.partition("=")
    seconds, _, status = rest.partition(":")
    return {"stage": name, "seconds": int(seconds), "exit": int(status or 0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", required=True)
    parser.add_argument("--junit", type=Path, required=True)
    parser.add_argument("--stage", action="append", default=[], type=parse_stage)
    args = parser.parse_args()
    stages = args.stage
    record = {
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit(),
        "mode": args.mode,
        "e2e_labs": os.environ.get("K8SLAB_E2E_LABS", ""),
        "drill_labs": os.environ.get("K8SLAB_DRILL_LABS", ""),
        "passed": all(stage["exit"] == 0 for stage in stages),
        "total_s": sum(stage["seconds"] for stage in stages),
        "stages": stages,
        "tests": junit_counts(args.junit),
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"test-{args.mode}.json"
    out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"[test] recorded in {out}")


if __name__ == "__main__":
    main()
