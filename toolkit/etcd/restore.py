"""``k8slab etcd restore``: etcd's disaster-recovery procedure, for stacked and external etcd.

Order (etcd's "Disaster recovery" guide and Kubernetes' "Operating etcd clusters"):
the snapshot is checked and restored on every member into a NEW data directory with a new
cluster token while everything still runs, so a damaged file is refused with nothing
stopped; then the API servers, controller-managers and schedulers stop (their static Pod
manifests leave the kubelet's directory), etcd stops on every member, each member's old
data directory is renamed aside (kept for rollback) and the restored one takes its place,
etcd starts and elects one leader, the control plane starts again (so no cache in it
predates the restore, as "Operating etcd clusters" recommends), every node comes back
Ready and CoreDNS restarts.

The configuration (static Pod manifests, etcd.conf.yml) is never edited: etcd ignores its
``initial-cluster*`` settings once a data directory exists, so provisioning stays
idempotent after a restore.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from toolkit.errors import HostError, K8slabError
from toolkit.etcd import cluster, remote
from toolkit.etcd.snapshots import SnapshotError, SnapshotManifest, checked_manifest
from toolkit.etcd.status import EtcdError, parse_snapshot_status
from toolkit.etcd.topology import (
    CRICTL,
    DATA_DIR,
    MANIFESTS_DIR,
    NODE_WORK_DIR,
    PARKED_DIR,
    Topology,
    park_manifests_command,
    running_containers_command,
    unpark_manifests_command,
)
from toolkit.lab.spec import Lab, Node
from toolkit.progress import SILENT, Progress
from toolkit.provision import cluster as provision_cluster
from toolkit.provision.cluster import is_ready

# Kubernetes' "Operating etcd clusters" suggests a billion: far above any revision a
# watcher of the old cluster can have seen, so every watch restarts from a list.
BUMP_REVISION = 1_000_000_000
STOP_DEADLINE_S = 120
STOP_GRACE_S = 10
ETCD_HEALTHY_DEADLINE_S = 180
NODES_READY_DEADLINE_S = 300
COREDNS_DEADLINE_S = 120
ADMIN_CONF = "/etc/kubernetes/admin.conf"

# The steps that change the lab, in order; a failure names the last one that finished.
STEPS = (
    "control-plane-stopped",
    "etcd-stopped",
    "data-swapped",
    "etcd-started",
    "control-plane-started",
)
# What "control-plane-stopped" stops: every component that talks to the API server or
# caches its state, so that none runs on with state from before the snapshot.
CONTROL_PLANE_PODS = ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]


class RestoreError(K8slabError):
    """A restore failed after the lab was changed; the message says how to roll back."""


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
        return f"{NODE_WORK_DIR}/{self.manifest.file}"

    @property
    def restored_dir(self) -> str:
        return f"{DATA_DIR}.restored-{self.stamp}"

    @property
    def old_dir(self) -> str:
        return f"{DATA_DIR}.before-restore-{self.stamp}"


def rollback_steps(plan: RestorePlan, done: list[str], failed: str = "") -> list[str]:
    """What to run, host by host, to get back the cluster as it was before the restore.

    ``failed`` is the step that was under way: it may have happened in part (etcd started
    on some members), so it is undone as if it had finished.
    """
    topo = plan.topo
    done = [*done, failed] if failed else done
    members = ", ".join(m.name for m in topo.members)
    cps = ", ".join(n.name for n in plan.lab.control_planes)
    steps: list[str] = []
    if "data-swapped" in done:
        steps.append(
            f"on each etcd member ({members}): stop etcd as below, then "
            f"`sudo mv {DATA_DIR} {DATA_DIR}.failed-{plan.stamp} && "
            f"sudo mv {plan.old_dir} {DATA_DIR}`"
        )
        if "etcd-started" in done:
            stop = (
                f"`sudo mv {MANIFESTS_DIR}/etcd.yaml {PARKED_DIR}/`"
                if topo.stacked
                else "`sudo systemctl stop etcd`"
            )
            steps.insert(0, f"on each etcd member ({members}): stop etcd: {stop}")
    if "etcd-stopped" in done:
        start = (
            f"`sudo mv {PARKED_DIR}/etcd.yaml {MANIFESTS_DIR}/`"
            if topo.stacked
            else "`sudo systemctl start etcd`"
        )
        steps.append(f"on each etcd member ({members}): start etcd: {start}")
    if "control-plane-stopped" in done:
        parked = " ".join(f"{PARKED_DIR}/{pod}.yaml" for pod in CONTROL_PLANE_PODS)
        steps.append(
            f"on each control plane ({cps}): start the API server, controller-manager and "
            f"scheduler: `sudo mv {parked} {MANIFESTS_DIR}/`"
        )
    if not steps:
        return ["nothing was stopped or changed; the lab runs as before"]
    steps.append(
        f"the old data directories stay in {plan.old_dir} on each member until you remove them"
        if "data-swapped" in done
        else f"every member's data directory {DATA_DIR} is untouched"
    )
    return steps


def rollback_message(plan: RestorePlan, done: list[str], failed: str, failure: str) -> str:
    lines = [
        f"restore of {plan.snapshot.name} onto lab {plan.lab.name} failed in step "
        f"'{failed}' (done before it: {', '.join(done) or 'nothing'}): {failure}",
        "to roll back:",
    ]
    lines += [f"  {n}. {step}" for n, step in enumerate(rollback_steps(plan, done, failed), 1)]
    return "\n".join(lines)


@dataclass
class RestoreResult:
    lab: str
    snapshot: Path
    revision: int
    seconds: float
    phases: dict[str, float] = field(default_factory=dict)
    old_dirs: dict[str, str] = field(default_factory=dict)


def _on_each(nodes: list[Node], action: Callable[[Node], object]) -> None:
    """Run ``action`` on every node at once; raise one error naming each node that failed."""
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(nodes)))) as pool:
        futures = {node.name: pool.submit(action, node) for node in nodes}
    failures = []
    for name, future in futures.items():
        error = future.exception()
        if error is not None:
            failures.append(f"{name}: {error}")
    if failures:
        raise HostError("; ".join(failures))


def plan_restore(lab: Lab, snapshot: Path) -> RestorePlan:
    """Check the snapshot file and that the lab's hosts answer; nothing is changed."""
    manifest = checked_manifest(snapshot, lab.name)
    if manifest.topology != lab.etcd_topology:
        raise SnapshotError(
            f"{snapshot}: taken from {manifest.topology} etcd, but lab {lab.name} is "
            f"{lab.etcd_topology}; the manifest does not match the lab"
        )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    plan = RestorePlan(lab, snapshot, manifest, stamp)
    unreachable = []
    for node in dict.fromkeys([*lab.etcd_members, *lab.control_planes]):
        try:
            remote.root(lab, node, "true", timeout=15)
        except HostError as exc:
            unreachable.append(str(exc))
    if unreachable:
        raise HostError(
            "every etcd member and control plane must answer before a restore: "
            + "; ".join(sorted(unreachable))
        )
    return plan


def stage(plan: RestorePlan, progress: Progress = SILENT) -> None:
    """Copy the snapshot to every member and restore it into a new data directory there.

    etcdutl checks the snapshot's own hash while restoring, so a corrupted or truncated
    file fails here, before anything is stopped; what was staged is then removed again.
    """
    topo = plan.topo
    initial_cluster = topo.initial_cluster()
    sha = plan.manifest.sha256

    def one(node: Node) -> None:
        member = topo.member(node.name)
        progress.say("stage", f"copying {plan.manifest.file}", node.name)
        remote.push(plan.lab, node, plan.snapshot, plan.node_snapshot)
        # Every value below comes from the manifest or the lab's spec: each one is quoted,
        # though the manifest's fields were checked when it was read.
        q = shlex.quote
        file, restored = q(plan.manifest.file), q(plan.restored_dir)
        status, output = remote.try_root(
            plan.lab,
            node,
            f"set -e; cd {q(NODE_WORK_DIR)}; "
            f"printf '%s  %s\\n' {q(sha)} {file} | sha256sum --check --quiet; "
            f"etcdutl snapshot restore --help 2>&1 | grep -q -- --bump-revision || "
            f"{{ echo 'this etcdutl has no --bump-revision; etcd >= 3.6 is needed'; exit 3; }}; "
            f"st=$(etcdutl snapshot status -w json {file} 2>/dev/null) || "
            f"{{ echo 'etcdutl snapshot status cannot read it: truncated or damaged'; exit 4; }}; "
            f'echo "$st"; test ! -e {restored}; '
            f"out=$(etcdutl snapshot restore {file} --name {q(member.name)} "
            f"--initial-cluster {q(initial_cluster)} --initial-cluster-token {q(plan.token)} "
            f"--initial-advertise-peer-urls {q(member.peer_url)} --data-dir {restored} "
            f"--bump-revision {BUMP_REVISION} --mark-compacted 2>&1) || "
            f'{{ echo "etcdutl snapshot restore: $(echo "$out" | grep -m1 Error)"; exit 5; }}',
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
        _on_each(topo_nodes(topo), one)
    except (HostError, SnapshotError, EtcdError) as exc:
        _discard_staged(plan)
        raise SnapshotError(f"{plan.snapshot}: refused before anything was stopped: {exc}") from exc


def pin_static_pod_images(lab: Lab, pods: list[str]) -> None:
    """Pin the images of the static Pods the restore stops, on every control plane.

    A stopped Pod's image is unused, and a kubelet under disk pressure garbage-collects
    unused images; with no registry to pull from, etcd and the API server could then not
    start again (seen on a lab whose machine's disk was 85 % full). A missing image is
    refused here, before anything stops.
    """
    manifests = " ".join(f"{MANIFESTS_DIR}/{pod}.yaml" for pod in pods)
    script = (
        f"set -e; for image in $(sed -n 's/^ *image: *//p' {manifests} 2>/dev/null); do "
        'ctr -n k8s.io images ls -q | grep -qxF "$image" || '
        '{ echo "image $image is not in containerd"; exit 1; }; '
        'ctr -n k8s.io images label "$image" io.cri-containerd.pinned=pinned >/dev/null; done'
    )
    _on_each(lab.control_planes, lambda node: remote.root(lab, node, script))


def wait_nodes_ready(lab: Lab, deadline_s: float = NODES_READY_DEADLINE_S) -> float:
    """Wait (bounded) until every node is Ready; an API or SSH hiccup is just "not yet"."""
    started = time.monotonic()
    expected = {node.name for node in lab.control_planes + lab.workers}
    last = "no answer yet"
    while time.monotonic() - started < deadline_s:
        try:
            status, output = remote.try_root(
                lab,
                lab.control_planes[0],
                f"kubectl --kubeconfig {ADMIN_CONF} get nodes -o json",
                timeout=30,
            )
        except HostError as exc:
            status, output = 1, str(exc)
        if status == 0:
            ready = {
                node["metadata"]["name"] for node in json.loads(output)["items"] if is_ready(node)
            }
            if expected <= ready:
                return time.monotonic() - started
            last = f"not Ready: {', '.join(sorted(expected - ready))}"
        else:
            last = output.strip()[-200:]
        time.sleep(3)
    raise EtcdError(f"lab {lab.name}: nodes not Ready within {deadline_s:.0f}s ({last})")


def topo_nodes(topo: Topology) -> list[Node]:
    return [m.node for m in topo.members]


def _discard_staged(plan: RestorePlan) -> None:
    for node in topo_nodes(plan.topo):
        try:
            remote.try_root(
                plan.lab,
                node,
                f"rm -rf {shlex.quote(plan.restored_dir)} {shlex.quote(plan.node_snapshot)}",
            )
        except HostError:
            continue


def _wait_stopped(lab: Lab, node: Node, pods: list[str]) -> None:
    """Wait until the kubelet has stopped these static Pods, whose manifests are parked.

    The kubelet gives them their grace period (an API server drains its watches for
    about 30 s); their state is about to be replaced, so after STOP_GRACE_S whatever
    still runs is stopped with crictl.
    """
    running = running_containers_command(pods)
    graceful_rounds, forced_rounds = STOP_GRACE_S // 2, (STOP_DEADLINE_S - STOP_GRACE_S) // 2
    remote.root(
        lab,
        node,
        f"for i in $(seq 1 {graceful_rounds}); do "
        f'[ -z "$({running})" ] && exit 0; sleep 2; done; '
        f"for id in $({running}); do {CRICTL} stop --timeout 2 $id >/dev/null || true; done; "
        f"for i in $(seq 1 {forced_rounds}); do "
        f'[ -z "$({running})" ] && exit 0; sleep 2; done; '
        f"echo 'still running after {STOP_DEADLINE_S}s: {' '.join(pods)}'; exit 1",
        timeout=STOP_DEADLINE_S + 30,
    )


def stop_control_plane(lab: Lab) -> None:
    def one(node: Node) -> None:
        remote.root(lab, node, park_manifests_command(CONTROL_PLANE_PODS))
        _wait_stopped(lab, node, CONTROL_PLANE_PODS)

    _on_each(lab.control_planes, one)


def start_control_plane(lab: Lab) -> None:
    _on_each(
        lab.control_planes,
        lambda node: remote.root(lab, node, unpark_manifests_command(CONTROL_PLANE_PODS)),
    )


def stop_etcd(topo: Topology, nodes: list[Node] | None = None) -> None:
    def one(node: Node) -> None:
        if topo.stacked:
            remote.root(topo.lab, node, park_manifests_command(["etcd"]))
            _wait_stopped(topo.lab, node, ["etcd"])
        else:
            remote.root(topo.lab, node, "systemctl stop etcd", timeout=STOP_DEADLINE_S)

    _on_each(nodes or topo_nodes(topo), one)


def start_etcd(topo: Topology, nodes: list[Node] | None = None) -> None:
    # --no-block: etcd.service is Type=notify and reports ready only once it has quorum,
    # which needs the other members started too.
    command = (
        unpark_manifests_command(["etcd"]) if topo.stacked else "systemctl start --no-block etcd"
    )
    _on_each(nodes or topo_nodes(topo), lambda node: remote.root(topo.lab, node, command))


def swap_data_dirs(plan: RestorePlan) -> None:
    def one(node: Node) -> None:
        remote.root(
            plan.lab,
            node,
            f"set -e; if [ -e {DATA_DIR} ]; then mv {DATA_DIR} {shlex.quote(plan.old_dir)}; fi; "
            f"mv {shlex.quote(plan.restored_dir)} {DATA_DIR}; "
            f"rm -f {shlex.quote(plan.node_snapshot)}",
        )

    _on_each(topo_nodes(plan.topo), one)


def restore(lab: Lab, snapshot: Path, progress: Progress = SILENT) -> RestoreResult:
    """Restore ``snapshot`` onto every member of ``lab`` (see the module's docstring)."""
    started = time.monotonic()
    phases: dict[str, float] = {}

    def timed(name: str, message: str, action: Callable[[], object]) -> None:
        begun = time.monotonic()
        with progress.phase(name, message):
            action()
        phases[name] = time.monotonic() - begun

    plans: list[RestorePlan] = []
    timed("check", f"snapshot {snapshot.name}", lambda: plans.append(plan_restore(lab, snapshot)))
    plan = plans[0]
    timed(
        "stage", "restore into new data directories on every member", lambda: stage(plan, progress)
    )
    pods = CONTROL_PLANE_PODS + (["etcd"] if Topology(lab).stacked else [])
    try:
        timed(
            "pin-images", "pin the images of what stops", lambda: pin_static_pod_images(lab, pods)
        )
    except K8slabError as exc:
        _discard_staged(plan)
        raise RestoreError(f"restore refused before anything was stopped: {exc}") from exc
    topo = plan.topo
    done: list[str] = []
    steps: list[tuple[str, str, Callable[[], object]]] = [
        (
            "control-plane-stopped",
            "stop every API server, controller-manager and scheduler",
            lambda: stop_control_plane(lab),
        ),
        ("etcd-stopped", "stop etcd on every member", lambda: stop_etcd(topo)),
        ("data-swapped", f"old data to {plan.old_dir}", lambda: swap_data_dirs(plan)),
        ("etcd-started", "start etcd, wait for one leader", lambda: _start_and_wait(topo)),
        ("control-plane-started", "start the control plane", lambda: start_control_plane(lab)),
    ]
    for name, message, action in steps:
        try:
            timed(name, message, action)
        except (K8slabError, OSError) as exc:
            raise RestoreError(rollback_message(plan, done, name, str(exc))) from exc
        done.append(name)
    # After etcd is back there is nothing to roll back; a failure says what stands.
    follow_ups: list[tuple[str, str, Callable[[], object], Callable[[Exception], str]]] = [
        (
            "nodes-ready",
            "every node Ready",
            lambda: wait_nodes_ready(lab),
            lambda exc: (
                f"lab {lab.name}: etcd and the API servers are back from {snapshot.name}, but "
                f"{exc}; the old data directories are in {plan.old_dir} on each member"
            ),
        ),
        (
            "dns-restarted",
            "restart CoreDNS (its cache predates the restore)",
            lambda: restart_coredns(lab),
            lambda exc: (
                f"lab {lab.name}: restored from {snapshot.name} and every node is Ready, but "
                f"CoreDNS did not come back: {exc}"
            ),
        ),
    ]
    for name, message, action, explain in follow_ups:
        try:
            timed(name, message, action)
        except (K8slabError, OSError) as exc:
            raise RestoreError(explain(exc)) from exc
    return RestoreResult(
        lab=lab.name,
        snapshot=snapshot,
        revision=plan.manifest.revision,
        seconds=time.monotonic() - started,
        phases=phases,
        old_dirs={m.name: plan.old_dir for m in topo.members},
    )


def restart_coredns(lab: Lab, deadline_s: int = COREDNS_DEADLINE_S) -> None:
    """Kubernetes' "Operating etcd clusters" asks to restart what caches the API's state
    after a restore; CoreDNS, whose watch missed the jump in revision, answered no new
    Service's name until restarted (seen on a real lab).

    Its Pods are deleted all at once rather than rolled one by one (which took 55 s on
    ha-stacked): the cluster is only just back, and the new Pods start together.
    """
    selector = ["-n", "kube-system", "-l", "k8s-app=kube-dns"]
    old = set(_pods(lab, selector))
    status, output = provision_cluster.kubectl(
        lab, ["delete", "pods", *selector, "--wait=false"], timeout=60
    )
    if status != 0:
        raise HostError(f"kubectl delete pods -l k8s-app=kube-dns: {output.strip()}")
    started, new = time.monotonic(), {}
    while time.monotonic() - started < deadline_s:
        new = {name: ready for name, ready in _pods(lab, selector).items() if name not in old}
        if len(new) >= max(len(old), 1) and all(new.values()):
            return
        time.sleep(2)
    raise HostError(f"CoreDNS not Ready within {deadline_s}s after its restart: {new}")


def _pods(lab: Lab, selector: list[str]) -> dict[str, bool]:
    """Name -> Ready of the Pods this selector picks, terminating ones left out."""
    status, output = provision_cluster.kubectl(
        lab, ["get", "pods", *selector, "-o", "json"], timeout=30
    )
    if status != 0:
        return {}
    return {
        pod["metadata"]["name"]: is_ready(pod)
        for pod in json.loads(output)["items"]
        if not pod["metadata"].get("deletionTimestamp")
    }


def _start_and_wait(topo: Topology) -> None:
    start_etcd(topo)
    cluster.wait_healthy(topo, ETCD_HEALTHY_DEADLINE_S)
