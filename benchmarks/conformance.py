"""Benchmark the upstream conformance suite on a lab that is up: the summary, the time and
where the reports are, written into benchmarks/results/conformance.json under the run's
name (``full``: every ``[Conformance]`` spec; ``sig-network``: the e2e stage's subset).
Goal (issue 17): every spec passes but the default skips, and they are fewer than 10.

    .venv/bin/python benchmarks/conformance.py [--lab ha-stacked] [--subset full] [--up]

With --up the lab is brought up from nothing first and destroyed afterwards (scripts/test
--full runs it so); without, it must be up.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from test_run import commit  # this folder: the scripts run as files

from toolkit.conformance import skips
from toolkit.conformance.run import Options, run_conformance, summary_lines
from toolkit.hosts import lifecycle
from toolkit.lab.spec import load_lab
from toolkit.paths import state_root
from toolkit.progress import Progress
from toolkit.provision.run import check_bundle, up_cluster

RESULTS = Path(__file__).parent / "results" / "conformance.json"
SUBSETS = {
    "full": r"\[Conformance\]",
    "sig-network": r"\[sig-network\].*\[Conformance\]",
}
GOAL_MAX_SKIPS = 10
# Where --up keeps the reports of a lab it destroys.
KEPT_REPORTS_DIR = state_root().with_name("k8slab-benchmark-reports")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", default="ha-stacked", help="a lab name or a lab.yml path")
    parser.add_argument("--subset", choices=sorted(SUBSETS), default="full")
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--up", action="store_true", help="bring the lab up, destroy it after")
    args = parser.parse_args()
    lab = load_lab(args.lab)
    if args.up:
        check_bundle(lab)
        lifecycle.destroy_lab(lab.name, lab.provider, Progress(), purge=True)
        lifecycle.up_hosts(lab, Progress())
        up_cluster(lab, Progress())
    load_before = os.getloadavg()
    try:
        result = run_conformance(
            lab, Options(focus=SUBSETS[args.subset], parallel=args.parallel), Progress()
        )
        if args.up:  # the lab's state directory goes with it
            kept = KEPT_REPORTS_DIR / result.reports.name
            shutil.copytree(result.reports, kept, dirs_exist_ok=True)
            result.reports = kept
    finally:
        if args.up:
            lifecycle.destroy_lab(lab.name, lab.provider, Progress(), purge=True)
    print("\n".join(summary_lines(result)))
    default_skips = [s.regex for s in skips.default_skips()]
    entry: dict[str, Any] = {
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit(),
        "lab": lab.name,
        "topology": lab.etcd_topology,
        "nodes": len(lab.nodes),
        "kubernetes": lab.kubernetes_version,
        "cpus": os.cpu_count(),
        "focus": SUBSETS[args.subset],
        "parallel": args.parallel,
        "default_skips": default_skips,
        "goal_met": result.passed and len(default_skips) < GOAL_MAX_SKIPS,
        "load_average_before": [round(x, 1) for x in load_before],
        "load_average_after": [round(x, 1) for x in os.getloadavg()],
        **result.to_dict(),
        "reports": str(result.reports),
    }
    recorded = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.is_file() else {}
    recorded[args.subset] = entry
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    raise SystemExit(0 if result.passed else 1)


if __name__ == "__main__":
    main()
