"""The member-loss drill: stop the etcd leader's member under a stream of writes; writes
resume after the election, none acknowledged is lost, and the member is replaced."""

from __future__ import annotations

import time
from contextlib import suppress

from toolkit import kube
from toolkit.constants import ETCD_DATA_DIR, PARKED_MANIFESTS_DIR
from toolkit.drills import probes
from toolkit.drills.lab_ops import (
    DrillError,
    configmaps,
    delete_namespace,
    install_admin_credentials,
    start_probe,
    stop_probe,
    wait_for_samples,
)
from toolkit.drills.report import DrillResult
from toolkit.errors import HostError
from toolkit.etcd import cluster
from toolkit.etcd.status import ClusterHealth, EtcdError
from toolkit.etcd.steps import start_etcd, start_static_pods, stop_etcd, stop_static_pods
from toolkit.etcd.topology import Member, Topology
from toolkit.hosts import remote
from toolkit.lab.spec import Lab, Node
from toolkit.poll import PollTimeout, wait_until
from toolkit.progress import Progress

EXTERNAL_CONFIG = "/etc/etcd/etcd.conf.yml"
NAMESPACE, PREFIX = "k8slab-drill-writes", "member-loss"
# Writes acknowledged before the leader goes (the stream is flowing), and after the
# election (it has resumed), before the writer's log is collected.
WRITES_BEFORE_STOP = 10
WRITES_AFTER_ELECTION = 20
WRITES_TIMEOUT_S = 60
ELECTION_TIMEOUT_S = 60


def _others_healthy(topo: Topology, lost: Member) -> ClusterHealth:
    others = [m.client_url for m in topo.members if m != lost]
    found = cluster.health(topo)
    return ClusterHealth({u: s for u, s in found.answered.items() if u in others}, tuple(others))


def _new_leader_among(topo: Topology, lost: Member) -> float:
    """Seconds until the other members agree on a new leader."""
    return wait_until(
        lambda: _others_healthy(topo, lost),
        lambda health: health.healthy,
        timeout_s=ELECTION_TIMEOUT_S,
        interval_s=0.5,
        what="a new etcd leader among the other members",
        retry_on=(EtcdError, HostError),
    )


def _start_writer(lab: Lab, node: Node) -> None:
    install_admin_credentials(lab, node)
    request = probes.write_request(lab, NAMESPACE, PREFIX, timeout_s=5)
    start_probe(lab, node, PREFIX, probes.loop_script(PREFIX, request, 900, 300, 0.2))


def _check_acknowledged(lab: Lab, result: DrillResult, samples: list[probes.Sample]) -> None:
    acked = [s for s in samples if s.code == "201"]
    maps = configmaps(lab, NAMESPACE)
    lost = [s.seq for s in acked if maps.get(f"{PREFIX}-{s.seq}", {}).get("seq") != str(s.seq)]
    result.data["writes"] = {
        "attempted": len(samples),
        "acknowledged": len(acked),
        "failed": sum(1 for s in samples if not s.ok),
        "lost": lost,
    }
    result.check(
        f"every acknowledged write is there ({len(acked)} of {len(samples)} acknowledged)",
        bool(acked) and not lost,
        f"lost: {lost}" if lost else "",
    )


def rejoin_config_command(topo: Topology, initial_cluster: str) -> str:
    """Shell making a member's configuration join the existing cluster as a new member."""
    if topo.stacked:
        manifest = f"{PARKED_MANIFESTS_DIR}/etcd.yaml"
        return (
            f"sed -i -E -e '/--initial-cluster-state=/d' "
            f"-e 's#^( *- )--initial-cluster=.*#\\1--initial-cluster={initial_cluster}"
            f"\\n\\1--initial-cluster-state=existing#' {manifest}"
        )
    return (
        f"sed -i -E -e 's#^initial-cluster:.*#initial-cluster: {initial_cluster}#' "
        f"-e 's#^initial-cluster-state:.*#initial-cluster-state: existing#' {EXTERNAL_CONFIG}"
    )


def replace_member(topo: Topology, lost: Member, progress: Progress) -> None:
    """Remove the member, wipe its data, add it back as a new member, start it and wait
    until the cluster is healthy.

    A stacked member's API server stores through that member alone, and the node's kubelet
    reaches the API through it (kubeadm's local mode). While the member is replaced, each
    of the kubelet's calls would hang for the API server's 34 s request timeout, among them
    the deletion of the old etcd mirror Pod that the new etcd Pod waits for (measured: 65 s
    to start it here, over 180 s on a slower machine). So that API server is stopped for the
    replacement and its callers are refused at once.
    """
    if not topo.stacked:
        _replace(topo, lost, progress)
        return
    lab = topo.lab
    progress.say("drill", "stopping its API server, which has no etcd", lost.name)
    stop_static_pods(lab, lost.node, ["kube-apiserver"])
    try:
        _replace(topo, lost, progress)
    finally:
        start_static_pods(lab, lost.node, ["kube-apiserver"])


def _replace(topo: Topology, lost: Member, progress: Progress) -> None:
    lab = topo.lab
    info = next((m for m in cluster.members(topo, avoid={lost.name}) if m.name == lost.name), None)
    if info is not None:
        progress.say("drill", f"etcdctl member remove {info.hex_id}", lost.name)
        _, status, output = cluster.etcdctl_on_any(
            topo, f"member remove {info.hex_id}", avoid={lost.name}
        )
        if status != 0:
            raise DrillError(f"member remove {lost.name} failed: {output.strip()}")
    remote.root(lab, lost.node, f"rm -rf {ETCD_DATA_DIR}")
    _, status, output = cluster.etcdctl_on_any(
        topo, f"member add {lost.name} --peer-urls={lost.peer_url}", avoid={lost.name}
    )
    initial = next(
        (
            line.split("=", 1)[1].strip().strip('"')
            for line in output.splitlines()
            if line.startswith("ETCD_INITIAL_CLUSTER=")
        ),
        None,
    )
    if status != 0 or not initial:
        raise DrillError(f"member add {lost.name} failed: {output.strip()[-300:]}")
    progress.say("drill", f"added back as a new member; initial cluster {initial}", lost.name)
    remote.root(lab, lost.node, rejoin_config_command(topo, initial))
    start_etcd(topo, [lost.node])
    cluster.wait_healthy(topo, 180)


def run(lab: Lab, result: DrillResult, progress: Progress) -> None:
    """Stop the leader's member; writes resume after the election; none acknowledged is lost;
    the member is replaced (removed, wiped, added back); three healthy members at the end."""
    topo = Topology(lab)
    delete_namespace(lab, NAMESPACE)
    kube.kubectl_ok(lab, ["create", "namespace", NAMESPACE])
    lost = cluster.leader(topo)
    writer = next((cp for cp in lab.control_planes if cp != lost.node), lab.control_planes[0])
    result.data.update({"stopped_member": lost.name, "writer_on": writer.name})
    _start_writer(lab, writer)
    wait_for_samples(
        lab,
        writer,
        PREFIX,
        lambda samples: probes.acknowledged_after(samples, 0) >= WRITES_BEFORE_STOP,
        WRITES_TIMEOUT_S,
        f"{WRITES_BEFORE_STOP} writes acknowledged before the leader stops",
    )
    progress.say("drill", "stopping the etcd leader", lost.name)
    stopped_at = time.time()
    stop_etcd(topo, [lost.node])
    result.timings["election_s"] = _new_leader_among(topo, lost)
    with suppress(PollTimeout):  # the check below tells how many came back
        wait_for_samples(
            lab,
            writer,
            PREFIX,
            lambda found: probes.acknowledged_after(found, stopped_at) >= WRITES_AFTER_ELECTION,
            WRITES_TIMEOUT_S,
            "writes acknowledged after the election",
        )
    samples = stop_probe(lab, writer, PREFIX)
    result.timings["write_gap_s"] = probes.gap_around(samples, stopped_at)
    resumed = [s for s in samples if s.ok and s.at > stopped_at]
    result.check(
        "writes through the API resumed after the election",
        bool(resumed),
        f"{len(resumed)} acknowledged after the stop; longest gap "
        f"{probes.longest_gap(samples):.1f}s",
    )
    _check_acknowledged(lab, result, samples)
    replace_started = time.monotonic()
    replace_member(topo, lost, progress)
    result.timings["replace_s"] = time.monotonic() - replace_started
    names = sorted(m.name for m in cluster.members(topo))
    result.check(
        "three healthy members, the replaced one among them",
        names == sorted(m.name for m in topo.members) and cluster.health(topo).healthy,
        f"members: {names}",
    )
    delete_namespace(lab, NAMESPACE)
