"""Benchmark etcd backup and restore, and the drills' recovery numbers, on a running lab.

On a stacked lab that is up (this script never creates or destroys one):
- snapshot (`k8slab etcd backup`: save on a follower, status, copy off the lab) and full
  restore (`k8slab etcd restore`, to every node Ready) times with 1k, 10k and 100k extra
  keys of 100 bytes, written with `etcdctl txn` (128 puts each, etcd's default limit) in a
  bounded loop on a member;
- the RTO of the backup-restore drill (restore start to every node Ready);
- the member-loss drill's election, longest gap between acknowledged writes, and the
  time to replace the member (remove, wipe, add back, healthy);
- the longest gap a client polling the API through the VIP every 100 ms sees in the
  control-plane-loss drill.
Writes benchmarks/results/etcd.json.

    .venv/bin/python benchmarks/etcd.py --lab /tmp/k8slab-dev/dev-drills/lab.yml
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolkit.drills import run_drill
from toolkit.etcd import backup, restore
from toolkit.etcd.topology import Topology
from toolkit.hosts import remote
from toolkit.lab.spec import Lab, load_lab
from toolkit.progress import Progress

RESULTS = Path(__file__).parent / "results" / "etcd.json"
PREFIX = "/k8slab-bench/"
BATCH = 128  # etcd's default --max-txn-ops
WRITE_DEADLINE_S = 1800


def write_keys(lab: Lab, first: int, last: int) -> float:
    """Put keys PREFIX<first..last> (100-byte values) in txns of BATCH; return seconds."""
    topo = Topology(lab)
    member = topo.members[0]
    batches = (last - first + BATCH) // BATCH
    script = (
        "v=$(head -c 100 /dev/zero | tr '\\0' v); "
        f"for b in $(seq 0 {batches - 1}); do "
        f"s=$(( {first} + b * {BATCH} )); e=$(( s + {BATCH} - 1 )); "
        f"[ $e -gt {last} ] && e={last}; "
        f"{{ echo; seq $s $e | awk -v v=$v '{{printf \"put {PREFIX}%08d %s\\n\", $1, v}}'; "
        f"echo; echo; }} | {topo.etcdctl()} txn >/dev/null || exit 1; done"
    )
    started = time.monotonic()
    remote.root(
        lab,
        member.node,
        f"timeout {WRITE_DEADLINE_S} sh -c {shlex.quote(script)}",
        WRITE_DEADLINE_S + 60,
    )
    return time.monotonic() - started


def count_keys(lab: Lab) -> int:
    topo = Topology(lab)
    output = remote.root(
        lab,
        topo.members[0].node,
        f"{topo.etcdctl()} get --prefix {PREFIX} --count-only -w fields 2>/dev/null",
    )
    return next(int(line.split(":")[1]) for line in output.splitlines() if '"Count"' in line)


def delete_keys(lab: Lab) -> None:
    topo = Topology(lab)
    remote.root(lab, topo.members[0].node, f"{topo.etcdctl()} del --prefix {PREFIX} >/dev/null")


def measure_sizes(lab: Lab, sizes: list[int], progress: Progress) -> list[dict[str, Any]]:
    rows = []
    written = 0
    for size in sizes:
        progress.say("bench", f"writing keys {written + 1}..{size}")
        write_s = write_keys(lab, written + 1, size)
        written = size
        present = count_keys(lab)
        taken = backup(lab, progress=progress)
        restored = restore(lab, taken.path, progress)
        rows.append(
            {
                "extra_keys": size,
                "keys_present": present,
                "write_s": round(write_s, 1),
                "snapshot_total_keys": taken.manifest.total_keys,
                "snapshot_mb": round(taken.manifest.size / 1e6, 2),
                "snapshot_s": round(taken.seconds, 2),
                "restore_s": round(restored.seconds, 1),
                "restore_phases_s": {k: round(v, 2) for k, v in restored.phases.items()},
            }
        )
        progress.say("bench", json.dumps(rows[-1]))
    delete_keys(lab)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", default="ha-stacked", help="a stacked lab that is up")
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--skip-drills", action="store_true")
    args = parser.parse_args()
    lab = load_lab(args.lab)
    if lab.etcd_topology != "stacked":
        parser.error(f"{args.lab}: the benchmark's RTO target is for stacked etcd")
    progress = Progress()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    result: dict[str, Any] = {
        "recorded_at": started,
        "lab": lab.name,
        "topology": lab.etcd_topology,
        "kubernetes_version": lab.kubernetes_version,
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release()},
        "sizes": measure_sizes(lab, [int(s) for s in args.sizes.split(",")], progress),
    }
    if not args.skip_drills:
        drill = run_drill(lab, "backup-restore", progress)
        result["backup_restore_drill"] = {
            "passed": drill.passed,
            "rto_s": round(drill.timings.get("rto_s", -1), 1),
            "rto_target_s": 120,
            "rpo": drill.data.get("rpo"),
        }
        drill = run_drill(lab, "member-loss", progress)
        result["member_loss_drill"] = {
            "passed": drill.passed,
            "election_s": round(drill.timings.get("election_s", -1), 1),
            "write_gap_s": round(drill.timings.get("write_gap_s", -1), 2),
            "replace_s": round(drill.timings.get("replace_s", -1), 1),
        }
        drill = run_drill(lab, "control-plane-loss", progress)
        result["control_plane_loss_drill"] = {
            "passed": drill.passed,
            "longest_api_gap_s": round(drill.timings.get("longest_api_gap_s", -1), 2),
            "poll_interval_s": 0.1,
            "vip_moved_s": round(drill.timings.get("vip_moved_s", -1), 1),
            "stopped_host": drill.data.get("stopped_host"),
        }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
