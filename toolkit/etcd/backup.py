"""``k8slab etcd backup``: a snapshot from a healthy member, checked, copied off the lab."""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from toolkit.constants import ETCD_WORK_DIR
from toolkit.etcd import cluster
from toolkit.etcd.manifest import VERSION_RE, SnapshotManifest
from toolkit.etcd.snapshots import (
    backups_dir,
    commit,
    prune,
    snapshot_name,
)
from toolkit.etcd.status import EtcdError, parse_snapshot_status
from toolkit.etcd.topology import Member, Topology
from toolkit.hosts import remote
from toolkit.lab.spec import Lab
from toolkit.progress import SILENT, Progress


@dataclass(frozen=True)
class BackupResult:
    path: Path
    manifest: SnapshotManifest
    seconds: float
    pruned: list[Path] = field(default_factory=list)


def choose_member(topo: Topology, wanted: str | None) -> tuple[Member, str]:
    """The member to snapshot: ``wanted``, else a follower (so the leader is not loaded)."""
    found = cluster.health(topo)
    names = ", ".join(m.name for m in topo.members)
    if wanted is not None:
        chosen = next((m for m in topo.members if m.name == wanted), None)
        if chosen is None:
            raise EtcdError(
                f"--member {wanted}: not an etcd member of lab {topo.lab.name} ({names})"
            )
        if chosen.client_url not in found.answered:
            raise EtcdError(f"--member {wanted}: its etcd does not answer; pick another of {names}")
        role = "leader" if chosen.client_url == found.leader_endpoint else "follower"
        return chosen, role
    if not found.answered:
        raise EtcdError(f"lab {topo.lab.name}: no etcd member answers; nothing to back up")
    followers = found.followers()
    url = followers[0] if followers else found.leader_endpoint
    chosen = next(m for m in topo.members if m.client_url == url)
    return chosen, "follower" if followers else "leader"


def backup(
    lab: Lab, keep: int | None = None, member: str | None = None, progress: Progress = SILENT
) -> BackupResult:
    started = time.monotonic()
    topo = Topology(lab)
    if keep is not None and keep < 1:
        raise EtcdError(f"--keep {keep}: keep at least 1 snapshot")
    chosen, role = choose_member(topo, member)
    now = time.time()
    directory = backups_dir(lab.name)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory.chmod(0o700)
    while (directory / snapshot_name(lab.name, now)).exists():
        time.sleep(0.2)
        now = time.time()
    name = snapshot_name(lab.name, now)
    node_path = f"{ETCD_WORK_DIR}/{name}"
    on_node = shlex.quote(node_path)
    progress.say("backup", f"etcdctl snapshot save on the {role}", chosen.name)
    output = remote.root(
        lab,
        chosen.node,
        f"set -e; umask 077; mkdir -p {shlex.quote(ETCD_WORK_DIR)}; "
        f"saved=$({topo.etcdctl()} snapshot save {on_node} 2>&1) || "
        f'{{ echo "$saved" | tail -5; exit 1; }}; '
        f"etcdutl snapshot status -w json {on_node}; sha256sum {on_node}; "
        f"etcdutl version | head -1",
        timeout=600,
    )
    status = parse_snapshot_status(output)
    remote_sha = next(
        (line.split()[0] for line in output.splitlines() if line.endswith(f"  {node_path}")), None
    )
    if remote_sha is None:
        raise EtcdError(f"{chosen.name}: no sha256sum of {node_path} in: {output.strip()[-300:]}")
    etcd_version = next(
        (line.split()[-1] for line in output.splitlines() if line.startswith("etcdutl version")),
        "",
    )
    local = directory / name
    # Copied under a name nothing lists; the .db appears only after its sidecars (commit).
    partial = directory / f"{name}.partial"
    progress.say("backup", f"copying {status.total_size / 1e6:.1f} MB off the lab", chosen.name)
    try:
        local_sha = remote.fetch(lab, chosen.node, node_path, partial)
    finally:
        remote.try_root(lab, chosen.node, f"rm -f {on_node}")
    if local_sha != remote_sha:
        partial.unlink(missing_ok=True)
        raise EtcdError(
            f"{chosen.name}: the copy of {node_path} has sha256 {local_sha}, the member's file "
            f"{remote_sha}; nothing was kept, run the backup again"
        )
    manifest = SnapshotManifest(
        lab=lab.name,
        topology=lab.etcd_topology,
        file=name,
        created_at=datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
        member=chosen.name,
        revision=status.revision,
        total_keys=status.total_keys,
        hash=status.hash,
        size=partial.stat().st_size,
        sha256=local_sha,
        etcd_version=etcd_version if VERSION_RE.fullmatch(etcd_version) else "",
        kubernetes_version=lab.kubernetes_version,
    )
    commit(partial, local, manifest)
    pruned = prune(lab.name, keep) if keep is not None else []
    return BackupResult(local, manifest, time.monotonic() - started, pruned)
