"""Benchmark the verification suite: the full `run_verify` on a stacked lab that is up.

Times each run end to end (test workload created and removed included) and per group,
with the machine's load average, and writes benchmarks/results/verify.json. Target: the
full suite under 3 minutes on ha-stacked.

    .venv/bin/python benchmarks/verify.py [--lab ha-stacked] [--runs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from verify_coverage import lab_coverage

from toolkit.lab.spec import load_lab
from toolkit.progress import Progress
from toolkit.verify import run_verify

RESULTS = Path(__file__).parent / "results" / "verify.json"
TARGET_S = 180


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", default="ha-stacked", help="a lab name or a lab.yml path")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    lab = load_lab(args.lab)
    if lab.etcd_topology != "stacked":
        parser.error(f"{args.lab}: the target is set for a stacked lab")
    runs: list[dict[str, Any]] = []
    for _ in range(args.runs):
        load_before = os.getloadavg()
        started = time.monotonic()
        report = run_verify(lab, progress=Progress())
        seconds = time.monotonic() - started
        by_group: dict[str, float] = {}
        for result in report.results:
            by_group[result.group] = by_group.get(result.group, 0.0) + result.seconds
        runs.append(
            {
                "seconds": round(seconds, 1),
                "passed": report.passed,
                "counts": report.counts(),
                "checks_seconds_by_group": {g: round(s, 1) for g, s in by_group.items()},
                "slowest_checks": [
                    {"check": f"{r.group}/{r.check}[{r.host}]", "seconds": round(r.seconds, 1)}
                    for r in sorted(report.results, key=lambda r: -r.seconds)[:5]
                ],
                # 1, 5 and 15 minutes, as uptime prints them: the machine is shared.
                "load_average_before": [round(x, 1) for x in load_before],
                "load_average_after": [round(x, 1) for x in os.getloadavg()],
                "passed_after_retry": [
                    f"{r.group}/{r.check}[{r.host}]"
                    for r in report.results
                    if r.outcome == "passed" and r.evidence
                ],
                "report": str(report.markdown),
            }
        )
    best = min(run["seconds"] for run in runs)
    # Checks proven sensitive: those a fault of tests/e2e/test_verify_faults.py must turn
    # red (proven once that module passes on this lab), of the last run's checks.
    sensitive = lab_coverage(lab, report.junit_xml).summary()
    measured = {
        "measured": datetime.now(UTC).isoformat(timespec="seconds"),
        "lab": lab.name,
        "topology": lab.etcd_topology,
        "nodes": len(lab.nodes),
        "cpus": os.cpu_count(),
        "target_s": TARGET_S,
        "best_s": best,
        "met": best < TARGET_S,
        "runs": runs,
        "coverage": sensitive,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(measured, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(measured, indent=2))


if __name__ == "__main__":
    main()
