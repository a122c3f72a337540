"""What a scale does to the cluster and the hosts, one action each. Every action is safe
to run again after it finished or was cut short, which is what makes a scale resumable.

Cluster requests go to a control plane that stays (``staying``: the lab as it will be),
never to a node that is leaving.
"""

from __future__ import annotations

import shlex

from toolkit import kube
from toolkit.constants import CRI_RUNTIMES
from toolkit.errors import HostError
from toolkit.etcd import cluster
from toolkit.etcd.status import EtcdError
from toolkit.etcd.topology import Topology
from toolkit.hosts import remote
from toolkit.lab.spec import Lab, Node
from toolkit.poll import PollTimeout, wait_until
from toolkit.scale.plan import ScaleError

# kubectl drain's bound: evictions a PodDisruptionBudget refuses are retried until then.
DRAIN_TIMEOUT_S = 300
VIP_MOVE_TIMEOUT_S = 60
RESET_TIMEOUT_S = 300


def registered(staying: Lab, node: Node) -> bool:
    """Whether the cluster has a Node object of that name."""
    args = ["get", "node", node.name, "--ignore-not-found", "-o", "name"]
    return bool(kube.kubectl_ok(staying, args, timeout=60).strip())


def drain(staying: Lab, node: Node) -> None:
    """Cordon the node and evict its Pods through the eviction API, so PodDisruptionBudgets
    are respected; bounded by DRAIN_TIMEOUT_S. DaemonSet Pods stay (they go with the node);
    a Pod no controller would make again is refused, not deleted (no --force)."""
    if not registered(staying, node):
        return
    args = [
        "drain",
        node.name,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        f"--timeout={DRAIN_TIMEOUT_S}s",
    ]
    status, output = kube.kubectl(staying, args, timeout=DRAIN_TIMEOUT_S + 60)
    if status != 0:
        tail = "\n".join(output.strip().splitlines()[-8:])
        raise ScaleError(
            f"cannot drain {node.name} within {DRAIN_TIMEOUT_S}s (a PodDisruptionBudget that "
            f"allows no disruption, or a Pod no controller manages, keeps it): {tail}"
        )


def release_vip(leaving: Lab, staying: Lab, node: Node) -> None:
    """Stop the leaving control plane's keepalived and haproxy, so the API's virtual IP is
    held by a control plane that stays before anything on this one stops."""
    try:
        status, output = remote.try_root(
            leaving, node, "systemctl stop keepalived haproxy", timeout=60
        )
    except HostError:
        pass  # a host that does not answer holds no VIP for long: keepalived fails over
    else:
        if status != 0:
            raise ScaleError(f"{node.name}: cannot stop keepalived and haproxy: {output.strip()}")
    try:
        wait_until(
            lambda: kube.vip_holder(staying),
            lambda holder: holder is not None,
            timeout_s=VIP_MOVE_TIMEOUT_S,
            interval_s=2,
            what=f"the VIP {staying.api_vip} held by a control plane that stays",
        )
    except PollTimeout as exc:
        raise ScaleError(str(exc)) from exc


def remove_etcd_member(staying: Lab, node: Node) -> str:
    """Remove the leaving control plane's stacked etcd member, asked of members that stay,
    once every one of those answers and none is without a leader (so the cluster keeps
    quorum without it); then wait until they agree on a leader. Returns what was done.

    This comes before ``kubeadm reset``: kubeadm v1.34.4 removes the member itself, but
    when that fails it only warns, and wipes the data directory anyway."""
    topo = Topology(staying)
    members = cluster.members(topo)
    peer = f"https://{node.address}:2380"
    leaving = [m for m in members if m.name == node.name or peer in m.peer_urls]
    if not leaving:
        return f"{node.name} is no longer an etcd member"
    found = cluster.health(topo)
    problems = [f"{url} does not answer" for url in found.silent]
    if 0 in found.leaders or len(found.leaders - {0}) > 1:
        problems.append("the members that stay do not agree on one leader")
    if problems:
        raise ScaleError(
            f"etcd member {node.name} not removed: removing it now could cost quorum "
            f"({'; '.join(problems)}); bring every other member back first"
        )
    for member in leaving:
        _, status, output = cluster.etcdctl_on_any(topo, f"member remove {member.hex_id}")
        if status != 0:
            raise EtcdError(f"`etcdctl member remove {member.hex_id}` failed: {output.strip()}")
    cluster.wait_healthy(topo)
    return f"removed etcd member {node.name}; {len(topo.members)} stay"


def delete_node(staying: Lab, node: Node) -> None:
    kube.kubectl_ok(staying, ["delete", "node", node.name, "--ignore-not-found"], timeout=120)


def reset_host(leaving: Lab, node: Node) -> str:
    """``kubeadm reset`` on the leaving host; an unreachable host is destroyed without."""
    socket = CRI_RUNTIMES[node.container_runtime].endpoint
    command = f"kubeadm reset --force --cri-socket {shlex.quote(socket)}"
    try:
        status, output = remote.try_root(leaving, node, command, timeout=RESET_TIMEOUT_S)
    except HostError:
        return f"{node.name} does not answer SSH; it is destroyed without a reset"
    if status != 0:
        tail = "\n".join(output.strip().splitlines()[-8:])
        raise ScaleError(f"{node.name}: `{command}` exited {status}: {tail}")
    return "kubeadm reset done"


def wait_settled(lab: Lab) -> None:
    """The cluster's nodes exactly the spec's, every one Ready, the cluster's own workloads
    rolled out (CoreDNS spread over two nodes again) and one etcd member per member host,
    all healthy."""
    found = kube.kubectl_json(lab, ["get", "nodes"], timeout=60)
    registered_names = sorted(node["metadata"]["name"] for node in found["items"])
    expected = sorted(n.name for n in lab.control_planes + lab.workers)
    if registered_names != expected:
        raise ScaleError(
            f"lab {lab.name}: the cluster's nodes are {registered_names}, the spec's {expected}"
        )
    kube.wait_for_ready_nodes(lab)
    kube.wait_for_system_workloads(lab)
    kube.spread_coredns(lab)
    topo = Topology(lab)
    cluster.wait_healthy(topo)
    names = sorted(m.name for m in cluster.members(topo))
    if names != sorted(m.name for m in topo.members):
        raise ScaleError(
            f"lab {lab.name}: the etcd member list is {names}, expected "
            f"{sorted(m.name for m in topo.members)}"
        )
