"""The part of a restore that changes nothing: the snapshot is checked, copied to every
member and restored there into a new data directory beside the live one."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from toolkit.constants import ETCD_WORK_DIR
from toolkit.errors import HostError
from toolkit.etcd import steps
from toolkit.etcd.manifest import SnapshotError, SnapshotManifest
from toolkit.etcd.snapshots import checked_manifest
from toolkit.etcd.status import EtcdError, parse_snapshot_status
from toolkit.etcd.steps import member_nodes, on_each
from toolkit.etcd.topology import SCRIPTS, Topology, restore_dirs
from toolkit.hosts import remote
from toolkit.lab.spec import Lab, Node
from toolkit.progress import SILENT, Progress

# Kubernetes' "Operating etcd clusters" suggests a billion: far above any revision a
# watcher of the old cluster can have seen, so every watch restarts from a list.
BUMP_REVISION = 1_000_000_000


@dataclass(frozen=True)
class RestorePlan:
    lab: Lab
    snapshot: Path
    manifest: SnapshotManifest
    stamp: str  # UTC, e.g. 20261126T001500Z

    @property
    def topo(self) -> Topology:
        return Topology(self.lab)

    @property
    def token(self) -> str:
        return f"{self.lab.name}-restore-{self.stamp}"

    @property
    def node_snapshot(self) -> str:
        return f"{ETCD_WORK_DIR}/{self.manifest.file}"

    @property
    def restored_dir(self) -> str:
        return restore_dirs(self.stamp).restored

    @property
    def old_dir(self) -> str:
        return restore_dirs(self.stamp).old


def plan_restore(lab: Lab, snapshot: Path) -> RestorePlan:
    """Check the snapshot file and that the lab's hosts answer; nothing is changed."""
    manifest = checked_manifest(snapshot, lab.name)
    if manifest.topology != lab.etcd_topology:
        raise SnapshotError(
            f"{snapshot}: taken from {manifest.topology} etcd, but lab {lab.name} is "
            f"{lab.etcd_topology}; the manifest does not match the lab"
        )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    steps.check_reachable(lab)
    return RestorePlan(lab, snapshot, manifest, stamp)


def stage(plan: RestorePlan, progress: Progress = SILENT) -> None:
    """Copy the snapshot to every member and restore it into a new data directory there.

    etcdutl checks the snapshot's own hash while restoring, so a corrupted or truncated
    file fails here, before anything is stopped; what was staged is then removed again.
    """
    topo = plan.topo

    def one(node: Node) -> None:
        member = topo.member(node.name)
        progress.say("stage", f"copying {plan.manifest.file}", node.name)
        remote.push(plan.lab, node, plan.snapshot, plan.node_snapshot)
        status, output = remote.try_run_script(
            plan.lab,
            node,
            SCRIPTS / "stage-snapshot.sh",
            ETCD_WORK_DIR,
            plan.manifest.file,
            plan.manifest.sha256,
            plan.restored_dir,
            member.name,
            topo.initial_cluster(),
            plan.token,
            member.peer_url,
            BUMP_REVISION,
            timeout=600,
        )
        if status != 0:
            tail = "\n".join(output.strip().splitlines()[-4:])
            raise SnapshotError(f"snapshot refused on {node.name} (exit {status}): {tail}")
        found = parse_snapshot_status(output)
        if found.revision != plan.manifest.revision or found.hash != plan.manifest.hash:
            raise SnapshotError(
                f"on {node.name}, etcdutl reads revision {found.revision} hash {found.hash}, "
                f"the manifest says {plan.manifest.revision} / {plan.manifest.hash}"
            )

    try:
        on_each(member_nodes(topo), one)
    except (HostError, SnapshotError, EtcdError) as exc:
        discard_staged(plan.lab, plan.stamp, plan.manifest.file)
        raise SnapshotError(f"{plan.snapshot}: refused before anything was stopped: {exc}") from exc


def discard_staged(lab: Lab, stamp: str, file: str) -> None:
    leftovers = [restore_dirs(stamp).restored, f"{ETCD_WORK_DIR}/{file}"]
    for node in member_nodes(Topology(lab)):
        try:
            remote.try_root(lab, node, "rm -rf " + " ".join(map(shlex.quote, leftovers)))
        except HostError:
            continue
