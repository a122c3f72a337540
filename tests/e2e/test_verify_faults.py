"""Proof that the verification suite catches faults: inject one fault at a time into a real
lab, run the suite, assert that exactly the checks that should fail do, heal the fault and
assert that the suite is green again. Destructive: never run by default. The lab is
$K8SLAB_E2E_LABS (a name or a lab.yml path; default ha-stacked), brought up from nothing
unless K8SLAB_E2E_REUSE=1 takes it as it is:

    K8SLAB_E2E_LABS=path/to/lab.yml K8SLAB_E2E_REUSE=1 K8SLAB_KEEP_LABS=1 \
        pytest -m destructive tests/e2e/test_verify_faults.py
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest

from tests.e2e import addon_faults
from toolkit.constants import APISERVER_PORT, MANIFESTS_DIR
from toolkit.etcd import cluster as etcd
from toolkit.etcd.status import ACTIVE_PEERS_METRIC, inactive_peers
from toolkit.etcd.topology import PEER_PORT, Topology
from toolkit.kube import COMPONENT_PORTS, healthz_command, kubectl_command
from toolkit.lab.spec import Lab, Node
from toolkit.poll import problems_gone, wait_until
from toolkit.verify import GROUPS, cloud, policy, run_verify
from toolkit.verify.cluster import Cluster, eventually
from toolkit.verify.load_balancer import (
    METALLB_NAMESPACE,
    SERVICE,
    announcers,
    forget_neighbour,
    mac_command,
    neighbour,
    neighbour_macs,
    probe,
    service_address,
)
from toolkit.verify.load_balancer import manifests as load_balancer_manifests
from toolkit.verify.ranges import contained_commands
from toolkit.verify.redundancy import (
    COMPONENT_KUBECONFIGS,
    ESTABLISHED_WITH_PROCESSES,
    HAPROXY_CFG,
    KEEPALIVED_CONF,
    connected_to,
    established,
)
from toolkit.verify.report import VerifyReport, render_table
from toolkit.verify.run import groups_of, layout_for
from toolkit.verify.vip import vip_holders
from toolkit.verify.workload import Layout

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.destructive]

SAVED: dict[str, Any] = {}  # what a fault changed, for its heal
PARKED = "/root/k8slab-fault-parked"  # where a fault puts a file it takes away
SETTLE_S = 120
CRASH_LOOP_BACKOFF_S = 300
COREDNS_SPREAD = "nodes/coredns_replicas_on_different_nodes[-]"
VIP_CHECKS = (
    "control-plane-ha/vip_held_by_one_control_plane_and_answering[-]",
    "control-plane-ha/api_through_vip_survives_one_apiserver_stopped[-]",
)
# The scheduler's and the controller-manager's checks on one control plane.
COMPONENTS_HEALTHY = ("scheduler_running_and_healthy", "controller_manager_running_and_healthy")
COMPONENTS_CONNECTED = (
    "scheduler_connected_to_apiserver",
    "controller_manager_connected_to_apiserver",
)
DNS_CHECKS = (
    "network/dns_resolves_kubernetes_default[-]",
    "network/pod_to_service[dns-same-namespace]",
    "network/pod_to_service[dns-other-namespace]",
)
# Everything a test client reaches through a Service: by ClusterIP or by name (the resolver
# is the kube-dns Service), TCP and UDP.
SERVICE_CHECKS = (
    *DNS_CHECKS,
    "network/pod_to_service[cluster-ip-same-namespace]",
    "network/pod_to_service[cluster-ip-other-namespace]",
    "network/service_forwarding[tcp]",
    "network/service_forwarding[udp]",
)


@dataclass(frozen=True)
class Scene:
    """The lab as a fault sees it: nodes by role and where the test Pods go."""

    lab: Lab
    cluster: Cluster
    layout: Layout

    @property
    def worker(self) -> Node:
        """The faulted worker: node b of the layout (it runs no test client)."""
        return self.layout.b

    @property
    def other_control_plane(self) -> Node:
        """A control plane that is neither the first (kubectl) nor the last (the VIP check's)."""
        return self.lab.control_planes[1]

    def coredns_nodes(self) -> set[str]:
        pods = self.cluster.kubectl_json(
            "get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns"
        )
        return {p["spec"].get("nodeName", "") for p in pods["items"]}

    def vip_holders(self) -> list[str]:
        return vip_holders(self.lab, self.cluster)

    def standby(self) -> Node:
        """A control plane that neither holds the VIP nor is the first (kubectl's): the last
        such, the one the VIP fail-over check freezes. A fault there takes away a failover
        the lab does not need now."""
        holders = self.vip_holders()
        candidates = [cp for cp in self.lab.control_planes[1:] if cp.name not in holders]
        assert candidates, f"no standby control plane (VIP held by {holders})"
        return candidates[-1]

    def etcd_leader(self) -> str:
        """The name of the etcd member that leads now."""
        return etcd.leader(Topology(self.lab)).name


def coredns_failures(scene: Scene, node: str) -> set[str]:
    """What fails once ``node`` is NotReady, by where CoreDNS runs: the Pods of a NotReady
    node are marked not ready, so a replica there is missing, and with every replica
    there nothing resolves."""
    where = scene.coredns_nodes()
    if node not in where:
        return set()
    # The replicas left ready run on fewer than two nodes.
    spread = {COREDNS_SPREAD} if len(where - {node}) < 2 else set()
    if where != {node}:
        return {"nodes/coredns_ready[-]", *spread}
    return {"nodes/coredns_ready[-]", *spread, *DNS_CHECKS}


def run(scene: Scene, node: Node | str, command: str, timeout: float = 60) -> None:
    result = scene.cluster.run(node, command, timeout=timeout)
    assert result.ok, result.evidence


def in_namespace(scene: Scene, namespace: str, *args: str, timeout: float = 60) -> None:
    result = scene.cluster.kubectl("-n", namespace, *args, timeout=timeout)
    assert result.ok, result.evidence


def in_kube_system(scene: Scene, *args: str, timeout: float = 60) -> None:
    in_namespace(scene, "kube-system", *args, timeout=timeout)


def rolled_out(scene: Scene, workload: str, timeout_s: int, namespace: str = "kube-system") -> None:
    """Wait for a workload's rollout (``ds/kube-proxy``, ``deploy/coredns``)."""
    in_namespace(
        scene,
        namespace,
        "rollout",
        "status",
        workload,
        f"--timeout={timeout_s}s",
        timeout=timeout_s + 30,
    )


def not_on(node: str) -> str:
    """A merge patch keeping a DaemonSet's Pods off ``node`` (the kubelet stops its Pod
    there); a JSON patch removing the affinity (REMOVE_AFFINITY) undoes it."""
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "kubernetes.io/hostname", "operator": "NotIn", "values": [node]}
                        ]
                    }
                ]
            }
        }
    }
    return json.dumps({"spec": {"template": {"spec": {"affinity": affinity}}}})


REMOVE_AFFINITY = json.dumps([{"op": "remove", "path": "/spec/template/spec/affinity"}])


def load_balancer_checks(scene: Scene, *checks: str) -> set[str]:
    """The load-balancer group's ``checks``, in a lab that has the group (a pool); the
    test Service's backend runs on node a, and a speaker on every node."""
    return {f"load-balancer/{check}" for check in checks} if scene.lab.load_balancer else set()


def node_ready(scene: Scene, name: str) -> bool:
    """Whether the node is Ready; not yet when kubectl itself fails (a loaded API server)."""
    result = scene.cluster.kubectl("get", "node", name, "-o", "json")
    if not result.ok:
        return False
    conditions = json.loads(result.stdout)["status"]["conditions"]
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def settle(what: str, probe: Callable[[], bool], timeout_s: float = SETTLE_S) -> None:
    done, _ = eventually(probe, bool, timeout_s, 3)
    assert done, f"not settled within {timeout_s}s: {what}"


def park_manifest(scene: Scene, node: Node, name: str) -> None:
    run(scene, node, f"mkdir -p {PARKED} && mv {MANIFESTS_DIR}/{name}.yaml {PARKED}/")


def unpark_manifest(scene: Scene, node: Node, name: str) -> None:
    run(
        scene,
        node,
        f"test -f {PARKED}/{name}.yaml && mv {PARKED}/{name}.yaml {MANIFESTS_DIR}/ || true",
    )


def stop_static_pod(scene: Scene, node: Node, name: str) -> None:
    """Its manifest parked; wait until the kubelet has removed its container."""
    park_manifest(scene, node, name)
    settle(f"no {name} on {node.name}", partial(container_gone, scene, node, name))


def start_static_pod(scene: Scene, node: Node, name: str) -> None:
    unpark_manifest(scene, node, name)
    settle(f"{name} on {node.name}", partial(container_running, scene, node, name))


def container_gone(scene: Scene, node: Node, name: str) -> bool:
    result = scene.cluster.run(node, f"crictl ps --name '^{name}$' -q")
    return result.ok and not result.output.strip()


def container_running(scene: Scene, node: Node, name: str) -> bool:
    result = scene.cluster.run(node, f"crictl ps --name '^{name}$' --state running -q")
    return result.ok and bool(result.output.strip())


def leader_elected_components_healthy(scene: Scene) -> bool:
    """Every control plane's scheduler and controller-manager answer their healthz. Both exit
    when they cannot renew their lease (as when etcd or an API server stalls) and the
    kubelet restarts them with a growing back-off, so a heal settles only once they are back.
    """
    return all(
        scene.cluster.run(cp, healthz_command(component)).stdout.strip() == "ok"
        for cp in scene.lab.control_planes
        for component in COMPONENT_PORTS
    )


def apiserver_ready(scene: Scene, node: Node) -> bool:
    return (
        scene.cluster.run(
            node, f"curl -sk --max-time 3 https://{node.address}:{APISERVER_PORT}/readyz"
        ).output
        == "ok"
    )


@dataclass(frozen=True)
class Fault:
    name: str
    inject: Callable[[Scene], None]
    heal: Callable[[Scene], None]
    expected: Callable[[Scene], set[str]]
    # Checks that follow from the fault but pass or fail with timing (a crash-looping
    # container is running at some instants): allowed to fail, never required to.
    may_fail: Callable[[Scene], set[str]] = lambda scene: set()
    # Why the fault cannot be injected into this lab without taking it down ("": it can).
    unfit: Callable[[Lab], str] = lambda lab: ""
    # What the fault needs in place before its expected set can be named (its heal undoes
    # it too): the node it breaks may be one only the lab can tell.
    prepare: Callable[[Scene], None] = lambda scene: None
    # The verify groups whose checks it must fail exactly as expected. A fault of the
    # cluster is judged on the cluster's groups: what it does to the add-ons (a node's
    # targets down, its alerts) is the add-on faults' to prove, and NetworkPolicy's group
    # (its Pods fail with any node's) the policy faults'. Healed, every group passes.
    groups: tuple[str, ...] = tuple(g for g in GROUPS if g not in ("addons", "network-policy"))


def fewer_than(least: int, nodes: Callable[[Lab], list[Node]], reason: str) -> Callable[[Lab], str]:
    """An ``unfit`` rule: ``reason`` when the lab has fewer than ``least`` of ``nodes``."""
    return lambda lab: reason if len(nodes(lab)) < least else ""


without_a_second_control_plane = fewer_than(
    2,
    lambda lab: lab.control_planes,
    "needs a second control plane: the first one runs the suite's kubectl",
)
without_vip_failover = fewer_than(
    2, lambda lab: lab.control_planes, "the VIP has no other control plane to move to"
)
without_two_etcd_followers = fewer_than(
    3, lambda lab: lab.etcd_members, "needs 3 etcd members, two followers to cut apart"
)


def without_etcd_quorum_to_spare(lab: Lab) -> str:
    members = len(lab.etcd_members)
    if members - 1 <= members // 2:
        return f"etcd loses its quorum when one of its {members} members stops"
    return ""


# --- kubelet stopped on a worker ---------------------------------------------------------


def stop_kubelet(scene: Scene) -> None:
    run(scene, scene.worker, "systemctl stop kubelet")
    settle(f"{scene.worker.name} NotReady", lambda: not node_ready(scene, scene.worker.name))


def start_kubelet(scene: Scene) -> None:
    run(scene, scene.worker, "systemctl start kubelet")
    settle(f"{scene.worker.name} Ready", lambda: node_ready(scene, scene.worker.name))


def kubelet_expected(scene: Scene) -> set[str]:
    w = scene.worker.name
    expected = {
        f"nodes/kubelet_active[{w}]",
        f"nodes/kubelet_healthz[{w}]",
        f"nodes/node_ready[{w}]",
        # Its configuration says anonymous auth is off, but nothing answers to show the 401.
        f"nodes/kubelet_anonymous_auth_off[{w}]",
        f"nodes/kubelet_talks_to_configured_cri_socket[{w}]",
        f"nodes/pod_runs_logs_execs_and_is_deleted[{w}]",
    }
    speaker = load_balancer_checks(scene, f"speaker_ready[{w}]")
    return expected | node_b_pods_missing(scene) | coredns_failures(scene, w) | speaker


def controller_may_be_there(scene: Scene) -> set[str]:
    """MetalLB's controller may run on the node whose kubelet is gone (marked not ready)."""
    return load_balancer_checks(scene, "controller_ready[-]")


def node_b_pods_missing(scene: Scene) -> set[str]:
    """What fails when no new Pod starts on the layout's node b: echo-b and the other
    namespace's peer are missing, and disk=ssd is on b while a carries the verify taint."""
    return {
        "network/test_pods_ready[-]",
        "network/pod_to_pod_without_nat[other-node]",
        "network/pod_to_service[cluster-ip-other-namespace]",
        "network/pod_to_service[dns-other-namespace]",
        "scheduling/node_selector_places_pods_on_labelled_node[-]",
        "scheduling/taint_keeps_untolerating_pods_off[-]",
    }


# --- kube-proxy stopped and its rules flushed on a node ------------------------------------


def worker_node(scene: Scene) -> Node:
    return scene.worker


def client_node(scene: Scene) -> Node:
    """Node a of the layout, where the test client runs."""
    return scene.layout.a


def stop_kube_proxy(scene: Scene, where: Callable[[Scene], Node] = worker_node) -> None:
    node = where(scene)
    w = node.name
    in_kube_system(scene, "patch", "ds", "kube-proxy", "-p", not_on(w))
    settle(f"no kube-proxy on {w}", lambda: container_gone(scene, node, "kube-proxy"))
    run(scene, node, "iptables -t nat -F KUBE-SERVICES && iptables -t nat -F KUBE-NODEPORTS")
    rolled_out(scene, "ds/kube-proxy", 180)


def start_kube_proxy(scene: Scene) -> None:
    in_kube_system(scene, "patch", "ds", "kube-proxy", "--type", "json", "-p", REMOVE_AFFINITY)
    rolled_out(scene, "ds/kube-proxy", 180)


def kube_proxy_expected(scene: Scene, where: Callable[[Scene], Node] = worker_node) -> set[str]:
    w = where(scene).name
    return {
        f"nodes/kube_proxy_running_and_mode[{w}]",
        f"nodes/kube_proxy_service_rules[{w}]",
        f"network/nodeport_from_outside_the_cluster[{w}]",
    }


def lb_through_node_may_fail(scene: Scene) -> set[str]:
    """Where the node without kube-proxy is the one announcing the test Service's address,
    nothing there forwards it to the backend: announcer-dependent, so allowed, not required."""
    return load_balancer_checks(
        scene, "answers_from_this_machine[tcp]", "answers_from_this_machine[udp]"
    )


def kube_proxy_on_client_expected(scene: Scene) -> set[str]:
    """The client's node translates no Service address: nothing through a Service answers.
    Unless Cilium runs there: its agent keeps every ClusterIP in its own eBPF service map and
    translates a Pod's traffic at the Pod's veth even without kube-proxy replacement, so the
    Pod-to-Service checks must still pass (not allowed to fail) and only the node's own
    Service paths (NodePorts, kube-proxy's rules) break."""
    agent = scene.lab.policy_agent
    if agent and agent.name == "cilium":
        return kube_proxy_expected(scene, client_node)
    return kube_proxy_expected(scene, client_node) | set(SERVICE_CHECKS)


# --- the CNI configuration removed from a node ----------------------------------------


def remove_cni_config(scene: Scene) -> None:
    node = scene.other_control_plane
    run(scene, node, f"mkdir -p {PARKED} && mv /etc/cni/net.d/10-flannel.conflist {PARKED}/")
    settle(f"{node.name} NotReady", lambda: not node_ready(scene, node.name))


def restore_cni_config(scene: Scene) -> None:
    node = scene.other_control_plane
    # containerd reloads the directory on a write, rename or removal but ignores a
    # creation, which is all a file moved in makes: it stayed "cni plugin not
    # initialized". A copy under a name it does not load, renamed over, is a rename.
    staged = "/etc/cni/net.d/.10-flannel.conflist.restore"
    run(
        scene,
        node,
        f"cp {PARKED}/10-flannel.conflist {staged} && "
        f"mv {staged} /etc/cni/net.d/10-flannel.conflist && rm {PARKED}/10-flannel.conflist",
    )
    settle(f"{node.name} Ready", lambda: node_ready(scene, node.name))


def cni_expected(scene: Scene) -> set[str]:
    node = scene.other_control_plane.name
    # Without a CNI configuration the runtime reports its network not ready: NotReady, and
    # no new Pod gets a network there.
    return {
        f"nodes/cni_configuration_and_plugins[{node}]",
        f"nodes/node_ready[{node}]",
        f"nodes/pod_runs_logs_execs_and_is_deleted[{node}]",
    }


def cni_may_fail(scene: Scene) -> set[str]:
    # A CoreDNS replica already there keeps its network, and its kubelet, still running,
    # keeps reporting it ready; the node controller may mark it not ready in between.
    return coredns_failures(scene, scene.other_control_plane.name)


# --- one etcd member stopped ----------------------------------------------------------


def etcd_member(scene: Scene) -> Node:
    if scene.lab.etcd_topology == "stacked":
        return scene.other_control_plane
    return scene.lab.etcd_hosts[1]


def stop_etcd_member(scene: Scene) -> None:
    member = etcd_member(scene)
    if scene.lab.etcd_topology == "stacked":
        park_manifest(scene, member, "etcd")
        settle(f"etcd stopped on {member.name}", lambda: container_gone(scene, member, "etcd"))
        # Its kubelet posts status through the local API server, which has lost its etcd.
        settle(f"{member.name} NotReady", lambda: not node_ready(scene, member.name))
    else:
        run(scene, member, "systemctl stop etcd")


def start_etcd_member(scene: Scene) -> None:
    member = etcd_member(scene)
    if scene.lab.etcd_topology == "stacked":
        unpark_manifest(scene, member, "etcd")
        # The API server crash-looped meanwhile: its next start may be up to the kubelet's
        # longest back-off (5 minutes) away.
        settle(
            f"API server on {member.name} ready",
            lambda: apiserver_ready(scene, member),
            CRASH_LOOP_BACKOFF_S + SETTLE_S,
        )
        settle(f"{member.name} Ready", lambda: node_ready(scene, member.name))
    else:
        run(scene, member, "systemctl start etcd")


def etcd_expected(scene: Scene) -> set[str]:
    m = etcd_member(scene).name
    expected = {
        f"etcd/member_healthy[{m}]",
        "etcd/exactly_one_leader[-]",
        f"etcd/client_certificate_required[{m}]",
        f"etcd/db_size_and_compaction[{m}]",
        # No member has its stream to the stopped one, and it has none to any.
        *(f"etcd/peers_connected[{n.name}]" for n in scene.lab.etcd_members),
    }
    if scene.lab.etcd_topology == "stacked":
        # Its API server talks to the local member only (both its health endpoints check
        # etcd), its kubelet to that API server, and its settings went with the manifest.
        # Every haproxy sees that API server DOWN (its /readyz fails when it runs at all).
        # The kubelet, NotReady, never learns of the lifecycle Pod bound to its node.
        expected |= {
            f"etcd/peer_and_client_tls[{m}]",
            f"control-plane/apiserver_readyz[{m}]",
            f"control-plane/apiserver_livez[{m}]",
            f"control-plane/only_apiserver_connects_to_etcd[{m}]",
            f"nodes/node_ready[{m}]",
            f"nodes/pod_runs_logs_execs_and_is_deleted[{m}]",
            *(
                f"control-plane-ha/haproxy_backends_every_apiserver_up[{cp.name}]"
                for cp in scene.lab.control_planes
            ),
        } | coredns_failures(scene, m)
    return expected


def etcd_may_fail(scene: Scene) -> set[str]:
    if scene.lab.etcd_topology != "stacked":
        return set()
    m = etcd_member(scene).name
    # Without etcd the API server exits and is restarted, so it is running at some
    # instants; the scheduler and controller-manager there use it, and one that led
    # loses its Lease, exits and is restarted while another takes over. A CoreDNS replica
    # whose watch went (through the kubernetes Service) to that API server misses the
    # verify run's new Services and answers with the previous run's addresses, until its
    # watch times out and lands on a healthy one (seen in scripts/test --full, 2026-11-28).
    return {
        "network/pod_to_service[dns-same-namespace]",
        "network/pod_to_service[dns-other-namespace]",
        cp_check("apiserver_running", m),
        *(cp_check(c, m) for c in COMPONENTS_HEALTHY),
        *leader_may_move(scene),
        # Their connection is to that API server, which is there at some instants.
        *(ha_check(c, m) for c in COMPONENTS_CONNECTED),
    }


# --- the scheduler stopped on every control plane -------------------------------------


def stop_schedulers(scene: Scene) -> None:
    for cp in scene.lab.control_planes:
        park_manifest(scene, cp, "kube-scheduler")
    for cp in scene.lab.control_planes:
        settle(f"no scheduler on {cp.name}", partial(container_gone, scene, cp, "kube-scheduler"))


def start_schedulers(scene: Scene) -> None:
    for cp in scene.lab.control_planes:
        unpark_manifest(scene, cp, "kube-scheduler")
    for cp in scene.lab.control_planes:
        settle(f"scheduler on {cp.name}", partial(container_running, scene, cp, "kube-scheduler"))


def scheduler_expected(scene: Scene) -> set[str]:
    return {
        *(
            f"control-plane/scheduler_running_and_healthy[{cp.name}]"
            for cp in scene.lab.control_planes
        ),
        *(
            f"control-plane-ha/scheduler_connected_to_apiserver[{cp.name}]"
            for cp in scene.lab.control_planes
        ),
        "control-plane/one_leader[kube-scheduler]",
        "scheduling/node_selector_places_pods_on_labelled_node[-]",
        "scheduling/taint_keeps_untolerating_pods_off[-]",
        "scheduling/toleration_admits_pod_on_tainted_node[-]",
    }


# --- CoreDNS scaled to zero -----------------------------------------------------------


def scale_coredns(scene: Scene, replicas: int) -> None:
    in_kube_system(scene, "scale", "deployment", "coredns", f"--replicas={replicas}")
    rolled_out(scene, "deploy/coredns", 120)


def stop_coredns(scene: Scene) -> None:
    deployment = scene.cluster.kubectl_json("get", "deployment", "-n", "kube-system", "coredns")
    SAVED["coredns_replicas"] = int(deployment["spec"]["replicas"])
    scale_coredns(scene, 0)


def start_coredns(scene: Scene) -> None:
    scale_coredns(scene, int(SAVED.get("coredns_replicas", 2)))


def coredns_expected(scene: Scene) -> set[str]:
    return {"nodes/coredns_ready[-]", COREDNS_SPREAD, *DNS_CHECKS}


# --- the cloud-controller-manager stopped (a lab whose cloud_provider is k8slab) ----------

CLOUD_RUNNING = "cloud-provider/cloud_controller_manager_running[-]"
# A nodeSelector label no node has: a DaemonSet cannot be scaled to zero.
CLOUD_PARKED = "k8slab-fault/cloud-controller-manager-stopped"


def without_a_cloud(lab: Lab) -> str:
    return "" if lab.cloud_provider != "none" else "the lab has no cloud-controller-manager"


def cloud_manager_pods(scene: Scene) -> list[str]:
    pods = scene.cluster.kubectl_json(
        "get", "pods", "-n", cloud.NAMESPACE, "-l", f"k8s-app={cloud.NAME}"
    )
    return [p["metadata"]["name"] for p in pods["items"]]


def park_cloud_manager(scene: Scene, value: str | None) -> None:
    patch = {"spec": {"template": {"spec": {"nodeSelector": {CLOUD_PARKED: value}}}}}
    in_kube_system(scene, "patch", "daemonset", cloud.NAME, "-p", json.dumps(patch))


def stop_cloud_manager(scene: Scene) -> None:
    park_cloud_manager(scene, "true")
    settle("no cloud-controller-manager Pod", lambda: not cloud_manager_pods(scene))


def start_cloud_manager(scene: Scene) -> None:
    park_cloud_manager(scene, None)
    rolled_out(scene, f"ds/{cloud.NAME}", 180)


def cloud_manager_expected(scene: Scene) -> set[str]:
    # The Nodes it initialised keep what it gave them: only the manager's own checks fail.
    return {
        CLOUD_RUNNING,
        "cloud-provider/cloud_controller_manager_holds_its_lease[-]",
        *(
            f"cloud-provider/cloud_controller_manager_healthy[{cp.name}]"
            for cp in scene.lab.control_planes
        ),
    }


def cloud_manager_not_ready(scene: Scene, node: Node) -> set[str]:
    """A control plane NotReady in a lab with a cloud: the node controller may mark its
    manager Pod not ready (the manager itself runs on, its lease held)."""
    if without_a_cloud(scene.lab) or node not in scene.lab.control_planes:
        return set()
    return {CLOUD_RUNNING}


# --- a node's container runtime stopped (the unit serving the kubelet's CRI socket) --------

# cri-dockerd is socket-activated: its socket unit would start it again at the next call.
RUNTIME_UNITS = {
    "containerd": "containerd.service",
    "docker": "cri-docker.socket cri-docker.service",
}


def without_runtime(runtime: str) -> Callable[[Lab], str]:
    def unfit(lab: Lab) -> str:
        if not any(n.container_runtime == runtime for n in lab.control_planes + lab.workers):
            return f"no node runs {runtime}"
        return ""

    return unfit


def runtime_node(scene: Scene, runtime: str) -> Node:
    """Where the runtime is stopped: node b when it runs it (the kubelet fault's cascade),
    else a worker, else a control plane; node a, which holds the test client, last."""
    a, b = scene.layout.a, scene.layout.b
    candidates = [n for n in [b, *scene.lab.workers, *scene.lab.control_planes] if n != a]
    return next(n for n in [*candidates, a] if n.container_runtime == runtime)


def stop_runtime(runtime: str) -> Callable[[Scene], None]:
    def inject(scene: Scene) -> None:
        node = runtime_node(scene, runtime)
        run(scene, node, f"systemctl stop {RUNTIME_UNITS[runtime]}")
        # The kubelet sees its runtime gone at its next status sync.
        settle(f"{node.name} NotReady", lambda: not node_ready(scene, node.name))

    return inject


def start_runtime(runtime: str) -> Callable[[Scene], None]:
    def heal(scene: Scene) -> None:
        node = runtime_node(scene, runtime)
        run(scene, node, f"systemctl start {RUNTIME_UNITS[runtime]}")
        settle(f"{node.name} Ready", lambda: node_ready(scene, node.name))

    return heal


def runtime_expected(runtime: str) -> Callable[[Scene], set[str]]:
    def expected(scene: Scene) -> set[str]:
        node = runtime_node(scene, runtime)
        failing = {
            f"nodes/node_ready[{node.name}]",
            f"nodes/kubelet_talks_to_configured_cri_socket[{node.name}]",
            f"nodes/cri_image_service[{node.name}]",
            f"nodes/cri_runtime_service[{node.name}]",
            f"nodes/every_pod_has_a_pause_sandbox[{node.name}]",
            f"nodes/kube_proxy_running_and_mode[{node.name}]",
            f"nodes/pod_runs_logs_execs_and_is_deleted[{node.name}]",
        }
        if node == scene.layout.b:
            failing |= node_b_pods_missing(scene)
        if node in scene.lab.control_planes:
            # Its static Pods keep running (the shims outlive the runtime), but nothing
            # can list them: each control-plane component's container check fails there.
            failing |= {
                f"control-plane/{check}[{node.name}]"
                for check in (
                    "apiserver_running",
                    "controller_manager_running_and_healthy",
                    "scheduler_running_and_healthy",
                )
            }
        return failing

    return expected


def runtime_may_fail(runtime: str) -> Callable[[Scene], set[str]]:
    """The kubelet itself reports its node NotReady at once; whether CoreDNS's replicas there
    are marked not ready before the suite looks depends on the node controller's timing."""

    def may_fail(scene: Scene) -> set[str]:
        node = runtime_node(scene, runtime)
        speaker = load_balancer_checks(scene, f"speaker_ready[{node.name}]")
        return (
            coredns_failures(scene, node.name)
            | speaker
            | controller_may_be_there(scene)
            | cloud_manager_not_ready(scene, node)
        )

    return may_fail


# --- the lab's ranges let off a worker by its default route --------------------------------


def uncontain_ranges(scene: Scene) -> None:
    _, drop = contained_commands(scene.lab)
    run(
        scene,
        scene.worker,
        f"ip route delete unreachable {scene.lab.network.pod_cidr} && "
        f"{drop.replace(' -C ', ' -D ', 1)}",
    )


def contain_ranges(scene: Scene) -> None:
    run(scene, scene.worker, "systemctl restart k8slab-contain-ranges")


# --- keepalived stopped where the VIP lives -------------------------------------------


def vip_holder(scene: Scene) -> list[str]:
    return scene.vip_holders()


def stop_keepalived(scene: Scene) -> None:
    holders = vip_holder(scene)
    assert len(holders) == 1, holders
    SAVED["vip_holder"] = holders[0]
    run(scene, holders[0], "systemctl stop keepalived")
    # The VIP must move to another control plane: that is what the check proves.
    settle(
        "the VIP moved",
        lambda: (h := vip_holder(scene)) != [] and holders[0] not in h,
        30,
    )
    # The old holder is alive: its own watches, opened from the VIP, are stranded there
    # (for about 45 s, until client-go's health check) unless closed.
    settle_vip(scene)


def start_keepalived(scene: Scene) -> None:
    run(scene, str(SAVED["vip_holder"]), "systemctl start keepalived")
    # nopreempt: the VIP stays where it went, and the old holder joins as a backup. Should
    # it move again all the same, what the one that held it opened from it is stranded
    # there: settle_vip closes it either way.
    settle_vip(scene)


def keepalived_expected(scene: Scene) -> set[str]:
    # The VIP moved and answers: only the stopped keepalived is missing for the next move.
    return {f"control-plane-ha/keepalived_ready_to_take_vip[{h}]" for h in vip_holder(scene)}


# --- lost redundancy: the lab answers, the next failover has nowhere to go ---------------
# Each fault below leaves the serving path alone and takes away a standby part; the
# checks of the standby parts (every node that takes part in HA) must turn red.

FAULT_COMMENT = "-m comment --comment k8slab-verify-fault"


def pick_standby(scene: Scene) -> Node:
    """The standby a fault breaks, remembered for its heal (the VIP does not move)."""
    node = scene.standby()
    SAVED["standby"] = node.name
    return node


def saved_standby(scene: Scene) -> Node:
    return scene.lab.node(str(SAVED["standby"]))


def node_check(group: str, check: str, node: Node | str) -> str:
    return f"{group}/{check}[{node if isinstance(node, str) else node.name}]"


def cp_check(check: str, node: Node | str) -> str:
    return node_check("control-plane", check, node)


def ha_check(check: str, node: Node | str) -> str:
    """A check of the control-plane-ha group: the VIP and the standby parts."""
    return node_check("control-plane-ha", check, node)


def systemd_active(scene: Scene, node: Node, unit: str) -> bool:
    return scene.cluster.run(node, f"systemctl is-active {unit}", fresh=True).output.strip() == (
        "active"
    )


def park_file(scene: Scene, node: Node, path: str) -> None:
    run(scene, node, f"mkdir -p {PARKED} && cp -p {path} {PARKED}/")


def restore_file(scene: Scene, node: Node, path: str) -> None:
    # Written into the file in place (same inode): a bind-mounted file sees it too.
    name = path.rsplit("/", 1)[-1]
    run(scene, node, f"test -f {PARKED}/{name} && cat {PARKED}/{name} > {path}")


def heal_standby_unit(scene: Scene, unit: str, parked: str | None = None) -> None:
    """Start the unit again on the standby a fault broke (with its ``parked`` file put
    back, restart it) and wait until it is active."""
    node = saved_standby(scene)
    if parked:
        restore_file(scene, node, parked)
    run(scene, node, f"systemctl {'restart' if parked else 'start'} {unit}")
    settle(f"{unit} on {node.name}", lambda: systemd_active(scene, node, unit), 30)


# keepalived stopped on a standby: the VIP stays, but it has one place less to go.
def stop_standby_keepalived(scene: Scene) -> None:
    run(scene, pick_standby(scene), "systemctl stop keepalived")


def start_standby_keepalived(scene: Scene) -> None:
    heal_standby_unit(scene, "keepalived")
    settle("one VIP holder", lambda: len(vip_holder(scene)) == 1, 30)


def standby_keepalived_expected(scene: Scene) -> set[str]:
    return {ha_check("keepalived_ready_to_take_vip", scene.standby())}


# keepalived running on a standby, configured for an interface the node does not have.
def break_standby_keepalived_interface(scene: Scene) -> None:
    node = pick_standby(scene)
    park_file(scene, node, KEEPALIVED_CONF)
    run(
        scene,
        node,
        f"i=$(awk '$1 == \"interface\" {{print $2; exit}}' {KEEPALIVED_CONF}) && "
        f'test -n "$i" && sed -i "s/\\b$i\\b/k8slab-none/g" {KEEPALIVED_CONF} && '
        "systemctl restart keepalived || true",
    )


def fix_standby_keepalived_interface(scene: Scene) -> None:
    heal_standby_unit(scene, "keepalived", KEEPALIVED_CONF)
    settle("one VIP holder", lambda: len(vip_holder(scene)) == 1, 30)


# haproxy stopped on a standby: taking the VIP there would give no API.
def stop_standby_haproxy(scene: Scene) -> None:
    run(scene, pick_standby(scene), "systemctl stop haproxy")


def start_standby_haproxy(scene: Scene) -> None:
    heal_standby_unit(scene, "haproxy")


def standby_haproxy_expected(scene: Scene) -> set[str]:
    node = scene.standby()
    return {
        ha_check("haproxy_backends_every_apiserver_up", node),
        # keepalived's track script there asks whether haproxy runs: it is in FAULT.
        ha_check("keepalived_track_script_passes", node),
    }


# An API server missing from a standby's haproxy: after a failover, one server fewer.
def remove_standby_backend(scene: Scene) -> None:
    node = pick_standby(scene)
    first = scene.lab.control_planes[0].name
    park_file(scene, node, HAPROXY_CFG)
    run(
        scene,
        node,
        f"sed -i '/^[[:space:]]*server {first} /d' {HAPROXY_CFG} && systemctl restart haproxy",
    )


def restore_standby_backend(scene: Scene) -> None:
    heal_standby_unit(scene, "haproxy", HAPROXY_CFG)


def standby_backend_expected(scene: Scene) -> set[str]:
    return {ha_check("haproxy_backends_every_apiserver_up", scene.standby())}


# A second control plane claims the VIP (split brain). It still answers there, through
# that node's haproxy (which binds every address).
#
# What the claim leaves behind once the address is deleted again, and the heal undoes:
# - Connections the node itself opened to the VIP meanwhile (kube-proxy's watch, through
#   its kubeconfig's server, the VIP) went to its own haproxy, with the VIP as their
#   source address. Once it is gone, their packets leave for the holder, which drops
#   them: their source is its own address. Neither end is told, so kube-proxy keeps
#   waiting on a dead watch until its HTTP/2 health check gives up (about 45 s), and
#   misses every Service made meanwhile. That is what left
#   nodeport_from_outside_the_cluster[cp3] refused after the heal: verify's fresh NodePort
#   had no rule on cp3. The heal destroys those sockets (ss -K), and the clients dial
#   again at once, from the node's own address, to the holder. A VIP that keepalived
#   moves leaves the same on the node it left (settle_vip, for the keepalived fault too).
# - Neighbours that resolved the VIP meanwhile may hold the claimer's MAC. The claimer
#   forwards what still reaches it, so this works, but it is a detour through a node that
#   no longer holds the VIP. Each lab node forgets its entry and asks again, and only the
#   holder answers now. This machine's own entry is left alone: nothing here talks to
#   the VIP (kubectl runs on a control plane), and the bridge is shared with other labs.
# - keepalived never knew of the claim (the address is on lo, not in its instance), and
#   no Service or iptables rule names the VIP: nothing to undo there.


def claim_vip_on_standby(scene: Scene) -> None:
    run(scene, pick_standby(scene), f"ip addr add {scene.lab.api_vip}/32 dev lo")
    settle("two VIP holders", lambda: len(vip_holder(scene)) == 2, 30)


def claim_left_on(ss_output: str, vip: str, api_port: int) -> list[str]:
    """What the released claim still leaves on the node that made it, from its
    `ss -Htnp state established`: connections from the VIP, which no packet reaches any
    more, and kube-proxy not yet watching the API through the VIP from its own address."""
    connections = established(ss_output)
    stranded = [c for c in connections if c.local_address == vip]
    left = [
        f"a connection from the VIP: {c.local} -> {c.peer} ({', '.join(sorted(c.processes))})"
        for c in stranded
    ]
    live = [c for c in connections if c not in stranded]
    if not connected_to(live, "kube-proxy", vip, str(api_port)):
        left.append(f"kube-proxy has no connection to the API at {vip}:{api_port}")
    return left


def holder_mac(scene: Scene, holder: str) -> str:
    result = scene.cluster.run(holder, mac_command(str(scene.lab.api_vip)), fresh=True)
    return result.stdout.strip().lower() if result.ok else ""


def vip_left_behind(scene: Scene) -> list[str]:
    """What a VIP that was on another control plane still leaves (none once the lab is as
    if it had never moved): one holder; on every other control plane, no connection from
    the VIP and kube-proxy watching through it again; every node resolving it to the
    holder."""
    vip, holders = str(scene.lab.api_vip), vip_holder(scene)
    if len(holders) != 1:
        return [f"the VIP is held by {holders or 'no control plane'}"]
    left = []
    for cp in scene.lab.control_planes:
        if cp.name in holders:
            continue  # there the VIP is the source of every connection to itself
        sockets = scene.cluster.run(cp, ESTABLISHED_WITH_PROCESSES, fresh=True)
        left += [f"{cp.name}: {p}" for p in claim_left_on(sockets.stdout, vip, scene.lab.api_port)]
    mac = holder_mac(scene, holders[0])
    for node in scene.lab.nodes:
        entry = scene.cluster.run(node, f"ip neigh show to {vip}", fresh=True)
        stale = neighbour_macs(entry.stdout) - {mac}
        if stale or not mac:
            left.append(
                f"{node.name} resolves the VIP to {sorted(stale)}, not {holders[0]}'s {mac or '?'}"
            )
    return left


def settle_vip(scene: Scene) -> None:
    """Once one control plane holds the VIP: the connections the others opened from it
    while they held it (or claimed it) are closed, so their clients dial the holder at
    once; every node asks anew who has the VIP. Then wait until nothing is left behind."""
    vip = scene.lab.api_vip
    settle("one VIP holder", lambda: len(vip_holder(scene)) == 1, 30)
    holders = vip_holder(scene)
    for cp in scene.lab.control_planes:
        if cp.name not in holders:
            run(scene, cp, f"ss -K -tn src {vip} >/dev/null")
    for node in scene.lab.nodes:
        run(scene, node, f"ip neigh flush to {vip} || true")
    wait_until(
        lambda: vip_left_behind(scene),
        problems_gone,
        timeout_s=60,
        interval_s=3,
        what="nothing left behind by the VIP's stay elsewhere",
    )


def release_vip_on_standby(scene: Scene) -> None:
    node = saved_standby(scene)
    # The address first: while it is local, a client whose socket is closed would dial
    # it again there.
    run(scene, node, f"ip addr del {scene.lab.api_vip}/32 dev lo 2>/dev/null || true")
    settle_vip(scene)


# An API server stopped on a standby: the VIP answers through the other two.
def stop_standby_apiserver(scene: Scene) -> None:
    stop_static_pod(scene, pick_standby(scene), "kube-apiserver")


def start_standby_apiserver(scene: Scene) -> None:
    node = saved_standby(scene)
    unpark_manifest(scene, node, "kube-apiserver")
    settle(f"API server on {node.name} ready", lambda: apiserver_ready(scene, node))
    # Its scheduler and controller-manager may have exited without it: back-off.
    for component in ("kube-scheduler", "kube-controller-manager"):
        settle(
            f"{component} on {node.name}",
            partial(container_running, scene, node, component),
            CRASH_LOOP_BACKOFF_S + SETTLE_S,
        )
    # Its kubelet posts through its own API server: it reports again after its back-off.
    settle(f"{node.name} Ready", lambda: node_ready(scene, node.name))


def standby_apiserver_expected(scene: Scene) -> set[str]:
    node = scene.standby()
    expected = {
        cp_check("apiserver_running", node),
        cp_check("apiserver_readyz", node),
        cp_check("apiserver_livez", node),
        # Its manifest is parked: no etcd client certificate nor --etcd-servers there.
        cp_check("only_apiserver_has_etcd_client_certificate", node),
        f"etcd/apiserver_etcd_endpoints_match_topology[{node.name}]",
        # The API server is not among the processes connected to etcd there.
        cp_check("only_apiserver_connects_to_etcd", node),
        # Their kubeconfig names the node's own API server.
        *(ha_check(c, node) for c in COMPONENTS_CONNECTED),
        *(ha_check("haproxy_backends_every_apiserver_up", cp) for cp in scene.lab.control_planes),
    }
    if node == scene.lab.control_planes[-1]:
        # The fail-over check freezes that API server, which is not there.
        expected.add("control-plane-ha/api_through_vip_survives_one_apiserver_stopped[-]")
    return expected


def standby_apiserver_may_fail(scene: Scene) -> set[str]:
    node = scene.standby()
    # Without their API server, the scheduler and controller-manager there may exit and
    # be restarted, and one that led hands its Lease over; whether the kubelet there
    # posts through the VIP or its own API server depends on kubeadm's version, and with
    # it whether that kubelet sees and runs the lifecycle Pod bound to its node.
    return {
        *(cp_check(c, node) for c in COMPONENTS_HEALTHY),
        *leader_may_move(scene),
        f"nodes/node_ready[{node.name}]",
        f"nodes/pod_runs_logs_execs_and_is_deleted[{node.name}]",
    } | coredns_failures(scene, node.name)


# The controller-manager stopped on a standby: a leader runs, its standby is gone.
def stop_standby_controller_manager(scene: Scene) -> None:
    stop_static_pod(scene, pick_standby(scene), "kube-controller-manager")


def start_standby_controller_manager(scene: Scene) -> None:
    start_static_pod(scene, saved_standby(scene), "kube-controller-manager")


def standby_controller_manager_expected(scene: Scene) -> set[str]:
    node = scene.standby()
    return {
        cp_check("controller_manager_running_and_healthy", node),
        ha_check("controller_manager_connected_to_apiserver", node),
    }


def leader_may_move(scene: Scene) -> set[str]:
    return {
        "control-plane/one_leader[kube-scheduler]",
        "control-plane/one_leader[kube-controller-manager]",
    }


# The scheduler and controller-manager of a standby pointed at a port nothing listens
# on: they run and answer /healthz, and could never take over.
DEAD_PORT = 6449


def restart_container(scene: Scene, node: Node, name: str) -> None:
    # The kubelet starts it again (after its back-off), reading its files anew.
    run(scene, node, f"crictl stop $(crictl ps --name '^{name}$' -q) || true")


def component_connected(scene: Scene, node: Node, component: str, port: int) -> bool:
    result = scene.cluster.run(node, ESTABLISHED_WITH_PROCESSES, fresh=True)
    return connected_to(established(result.stdout), component, str(node.address), str(port))


def component_cut_off(scene: Scene, node: Node, component: str) -> bool:
    return not component_connected(scene, node, component, APISERVER_PORT)


def cut_off_standby_components(scene: Scene) -> None:
    node = pick_standby(scene)
    for component, conf in COMPONENT_KUBECONFIGS.items():
        park_file(scene, node, conf)
        name = conf.rsplit("/", 1)[-1]
        run(
            scene,
            node,
            f"sed 's#\\(server: https://[^:]*\\):[0-9]*#\\1:{DEAD_PORT}#' {PARKED}/{name} > {conf}",
        )
        restart_container(scene, node, component)
    for component in COMPONENT_KUBECONFIGS:
        settle(
            f"{component} on {node.name} without its API server",
            partial(component_cut_off, scene, node, component),
        )


def reconnect_standby_components(scene: Scene) -> None:
    node = saved_standby(scene)
    for component, conf in COMPONENT_KUBECONFIGS.items():
        restore_file(scene, node, conf)
        restart_container(scene, node, component)
    for component in COMPONENT_KUBECONFIGS:
        settle(
            f"{component} on {node.name} connected again",
            partial(component_connected, scene, node, component, APISERVER_PORT),
            CRASH_LOOP_BACKOFF_S + SETTLE_S,
        )


def cut_off_components_expected(scene: Scene) -> set[str]:
    return {ha_check(c, scene.standby()) for c in COMPONENTS_CONNECTED}


def cut_off_components_may_fail(scene: Scene) -> set[str]:
    # Without its API server a component may exit at start (delegated authentication).
    return leader_may_move(scene) | {cp_check(c, scene.standby()) for c in COMPONENTS_HEALTHY}


# The API server's serving certificate reissued (same key, names and CA) to expire soon:
# it serves, and the next renewal is overdue.
PKI = "/etc/kubernetes/pki"


def shorten_certificate(scene: Scene, node: Node, pki: str, name: str) -> None:
    """``pki/name.crt`` reissued with its own key, names and the CA of ``pki`` to expire
    in ten days (the original parked for the heal); the CA's serial file stays out of
    ``pki``."""
    park_file(scene, node, f"{pki}/{name}.crt")
    run(
        scene,
        node,
        f"cd {pki} && openssl x509 -x509toreq -in {name}.crt -signkey {name}.key "
        f"-copy_extensions copyall -out {PARKED}/{name}.csr && "
        f"openssl x509 -req -in {PARKED}/{name}.csr -CA ca.crt -CAkey ca.key "
        f"-CAserial {PARKED}/{name}-ca.srl -CAcreateserial -days 10 -copy_extensions copyall "
        f"-out {PARKED}/{name}-short.crt && cat {PARKED}/{name}-short.crt > {name}.crt",
    )


def shorten_standby_certificate(scene: Scene) -> None:
    shorten_certificate(scene, pick_standby(scene), PKI, "apiserver")


def restore_standby_certificate(scene: Scene) -> None:
    node = saved_standby(scene)
    restore_file(scene, node, f"{PKI}/apiserver.crt")
    settle(f"API server on {node.name} ready", lambda: apiserver_ready(scene, node))


def short_certificate_expected(scene: Scene) -> set[str]:
    # kubeadm's account of the node's certificates lists it too.
    standby = scene.standby()
    return {
        cp_check("apiserver_serving_certificate", standby),
        cp_check("certificates_valid_for_30_days", standby),
    }


# An etcd member's health-check client certificate reissued (same key and CA) to expire
# soon: on a member that holds the etcd CA's key (every stacked control plane; the first
# external member, which made the CA). Clients still connect with it; any lab can take it.
def etcd_certificate_member(scene: Scene) -> Node:
    if scene.lab.etcd_topology == "stacked":
        return scene.lab.control_planes[-1]
    return scene.lab.etcd_hosts[0]


def etcd_pki(scene: Scene) -> str:
    return f"{PKI}/etcd" if scene.lab.etcd_topology == "stacked" else "/etc/etcd/pki"


def shorten_etcd_certificate(scene: Scene) -> None:
    node = etcd_certificate_member(scene)
    shorten_certificate(scene, node, etcd_pki(scene), "healthcheck-client")


def restore_etcd_certificate(scene: Scene) -> None:
    restore_file(scene, etcd_certificate_member(scene), f"{etcd_pki(scene)}/healthcheck-client.crt")


def short_etcd_certificate_expected(scene: Scene) -> set[str]:
    node = etcd_certificate_member(scene)
    expected = {node_check("etcd", "member_certificates_valid_for_30_days", node)}
    if scene.lab.etcd_topology == "stacked":
        expected.add(cp_check("certificates_valid_for_30_days", node))
    return expected


# One etcd member cut off from one peer's peer port (its packets there dropped): it can
# no longer dial the streams it reads that peer's messages from, while the peer still
# dials it and reads its messages. Both are followers, so raft traffic with the leader
# is untouched and the cluster stays healthy: only the link the next leader would need
# is gone.


def peer_link(scene: Scene) -> tuple[Node, Node]:
    """The member cut off and the peer it is cut off from: two followers."""
    leader = scene.etcd_leader()
    followers = [m for m in scene.lab.etcd_members if m.name != leader]
    assert len(followers) >= 2, f"two etcd followers needed (leader {leader})"
    return followers[0], followers[-1]


def peer_rule(peer: Node) -> str:
    # No state match: the packets of connections already established are dropped too, so
    # no conntrack flush is needed for the cut to hold.
    return f"OUTPUT -p tcp -d {peer.address} --dport {PEER_PORT} {FAULT_COMMENT} -j DROP"


def tcp_connects(scene: Scene, source: Node, target: Node, port: int = PEER_PORT) -> bool:
    """Whether a TCP connection from ``source`` to ``target``:``port`` opens (3 s)."""
    command = f"timeout 3 bash -c ': </dev/tcp/{target.address}/{port}'"
    return scene.cluster.run(source, command, fresh=True).exit_status == 0


def cut_one_way(scene: Scene, member: Node, peer: Node) -> bool:
    """The cut as the packets see it: ``member`` reaches no peer port of ``peer``,
    ``peer`` still reaches ``member``'s."""
    return not tcp_connects(scene, member, peer) and tcp_connects(scene, peer, member)


def links_down(scene: Scene, member: Node) -> list[str]:
    """The peers etcd on ``member`` reports no active link to (what verify's
    etcd/peers_connected reads)."""
    topo = Topology(scene.lab)
    command = topo.local_metrics_command(ACTIVE_PEERS_METRIC)
    metrics = scene.cluster.run(member, command, fresh=True)
    return inactive_peers(metrics.stdout, etcd.members(topo), member.name)


def cut_peer_link(scene: Scene) -> None:
    member, peer = peer_link(scene)
    SAVED["peer_link"] = (member.name, peer.name)
    run(scene, member, f"iptables -I {peer_rule(peer)}")
    settle(
        f"{member.name} cannot open a connection to {peer.name}:{PEER_PORT}, "
        f"{peer.name} can to {member.name}:{PEER_PORT}",
        lambda: cut_one_way(scene, member, peer),
        30,
    )
    # etcd's own view lags: the streams the peer still writes into stay up for minutes
    # (its active-peers metric stayed 1 for 90 s), while every new connection times out;
    # verify's peers_connected dials the peer port itself.


def mend_peer_link(scene: Scene) -> None:
    if "peer_link" not in SAVED:
        return  # the inject failed before it cut anything
    member, peer = (scene.lab.node(name) for name in SAVED.pop("peer_link"))
    run(scene, member, f"while iptables -D {peer_rule(peer)} 2>/dev/null; do :; done; true")
    settle(
        f"{member.name} reaches {peer.name}:{PEER_PORT} again",
        lambda: tcp_connects(scene, member, peer),
        30,
    )
    settle(
        f"etcd on {member.name} reports its link to {peer.name} active",
        lambda: peer.name not in links_down(scene, member),
        60,
    )


def peer_link_expected(scene: Scene) -> set[str]:
    member, _ = peer_link(scene)
    return {f"etcd/peers_connected[{member.name}]"}


def peer_link_may_fail(scene: Scene) -> set[str]:
    # The peer writes its messages into the member's dead connections without error until
    # its send buffer fills or TCP gives up (minutes): then it sees the link down too.
    _, peer = peer_link(scene)
    return {f"etcd/peers_connected[{peer.name}]"}


# CoreDNS's replicas all on one node: it resolves, until that node goes.
def crowd_coredns(scene: Scene) -> None:
    node = scene.worker.name
    patch = json.dumps(
        {"spec": {"template": {"spec": {"nodeSelector": {"kubernetes.io/hostname": node}}}}}
    )
    in_kube_system(scene, "patch", "deployment", "coredns", "-p", patch)
    rolled_out(scene, "deploy/coredns", 150)


def uncrowd_coredns(scene: Scene) -> None:
    patch = json.dumps(
        [{"op": "remove", "path": "/spec/template/spec/nodeSelector/kubernetes.io~1hostname"}]
    )
    in_kube_system(scene, "patch", "deployment", "coredns", "--type", "json", "-p", patch)
    rolled_out(scene, "deploy/coredns", 150)


# Pod to Pod on one node dropped (the bridge's traffic goes through iptables' FORWARD).
def same_node_rule(scene: Scene) -> str:
    return (
        f"FORWARD -s {SAVED['client_pod_range']} -d {SAVED['client_pod_range']} "
        f"{FAULT_COMMENT} -j DROP"
    )


def drop_same_node_pod_traffic(scene: Scene) -> None:
    node = client_node(scene)
    spec = scene.cluster.kubectl_json("get", "node", node.name)["spec"]
    SAVED["client_pod_range"] = spec["podCIDR"]
    run(scene, node, f"iptables -I {same_node_rule(scene)}")


def allow_same_node_pod_traffic(scene: Scene) -> None:
    node = client_node(scene)
    run(scene, node, f"while iptables -D {same_node_rule(scene)} 2>/dev/null; do :; done; true")


def same_node_expected(scene: Scene) -> set[str]:
    return {"network/pod_to_pod_without_nat[same-node]"}


def same_node_may_fail(scene: Scene) -> set[str]:
    # A Service's endpoints on that node (echo-a, a CoreDNS replica there) are dropped
    # too; the probes retry and may reach one elsewhere.
    return set(SERVICE_CHECKS)


# --- MetalLB's speaker stopped on the node announcing a LoadBalancer address -------------
# The fault's own LoadBalancer Service (the verify run's comes and goes with each run), in
# a namespace of its own: its announcer is the node whose speaker is taken away.
FAULT_LB_NAMESPACE = "k8slab-fault-lb"


def without_load_balancer(lab: Lab) -> str:
    return "" if lab.load_balancer else "declares no load_balancer.pool, so it runs no MetalLB"


def lb_announced_by(scene: Scene, avoid: str = "") -> str:
    """The one node announcing the fault's Service at its address, answering over TCP with
    its backend's name, and named by this machine's ARP entry (asked anew); "" until then.
    Not ``avoid``: the node that announced it before."""
    address = service_address(scene.cluster, FAULT_LB_NAMESPACE)
    nodes = announcers(scene.cluster, FAULT_LB_NAMESPACE)
    if not address or len(nodes) != 1 or nodes[0] == avoid:
        return ""
    node = scene.lab.node(nodes[0])
    mac = scene.cluster.run(node, mac_command(str(node.address)), fresh=True).stdout.strip()
    forget_neighbour(address)
    if probe(address, "tcp") != SERVICE or neighbour_macs(neighbour(address)) != {mac.lower()}:
        return ""
    SAVED["lb_address"] = address
    return node.name


def expose_fault_service(scene: Scene) -> None:
    namespace = f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {FAULT_LB_NAMESPACE}}}"
    manifest = f"{namespace}\n---\n{load_balancer_manifests(scene.layout, FAULT_LB_NAMESPACE)}"
    result = scene.cluster.apply(manifest)
    assert result.ok, result.evidence
    SAVED.pop("lb_announcer", None)
    settle("the fault's LoadBalancer Service answering", lambda: bool(lb_announced_by(scene)))
    SAVED["lb_announcer"] = lb_announced_by(scene)
    assert SAVED["lb_announcer"], "the fault's LoadBalancer Service stopped answering"


def stop_speaker_on_announcer(scene: Scene) -> None:
    node = scene.lab.node(SAVED["lb_announcer"])
    address = SAVED["lb_address"]
    in_namespace(scene, METALLB_NAMESPACE, "patch", "ds", "speaker", "-p", not_on(node.name))
    settle(f"no speaker on {node.name}", lambda: container_gone(scene, node, "speaker"))
    rolled_out(scene, "ds/speaker", 180, METALLB_NAMESPACE)
    # The address moves: another node announces it, and it answers there.
    settle(
        f"{address} announced by a node other than {node.name}, answering",
        lambda: bool(lb_announced_by(scene, avoid=node.name)) and SAVED["lb_address"] == address,
    )


def speaker_on_announcer_expected(scene: Scene) -> set[str]:
    """The announcer's speaker check: the announcer is known once the fault's Service is
    up (its prepare); on paper it is not, and nothing is claimed."""
    announcer = SAVED.get("lb_announcer")
    return {f"load-balancer/speaker_ready[{announcer}]"} if announcer else set()


def start_speakers(scene: Scene) -> None:
    affinity = scene.cluster.kubectl(
        "-n",
        METALLB_NAMESPACE,
        "get",
        "ds",
        "speaker",
        "-o",
        "jsonpath={.spec.template.spec.affinity}",
    )
    if affinity.stdout.strip():
        in_namespace(
            scene,
            METALLB_NAMESPACE,
            "patch",
            "ds",
            "speaker",
            "--type",
            "json",
            "-p",
            REMOVE_AFFINITY,
        )
    rolled_out(scene, "ds/speaker", 180, METALLB_NAMESPACE)
    result = scene.cluster.kubectl(
        "delete",
        "namespace",
        FAULT_LB_NAMESPACE,
        "--ignore-not-found",
        "--timeout=120s",
        timeout=150,
    )
    assert result.ok, result.evidence


# --- NetworkPolicy: the policy agent stopped on a node, the deny deleted ----------------


def without_a_policy_agent(lab: Lab) -> str:
    return "" if lab.policy_agent else "nothing enforces NetworkPolicy (no network_policy: true)"


def stop_policy_agent(scene: Scene) -> None:
    """No Cilium agent on node b: the DaemonSet kept off it (every agent rolls)."""
    node = scene.worker
    in_kube_system(scene, "patch", "ds", "cilium", "-p", not_on(node.name))
    settle(f"no cilium-agent on {node.name}", lambda: container_gone(scene, node, "cilium-agent"))
    rolled_out(scene, "ds/cilium", 600)


def start_policy_agent(scene: Scene) -> None:
    in_kube_system(scene, "patch", "ds", "cilium", "--type", "json", "-p", REMOVE_AFFINITY)
    rolled_out(scene, "ds/cilium", 600)


def policy_agent_expected(scene: Scene) -> set[str]:
    # Its node's agent checks, and every case with a Pod there: without an agent the
    # chained plugin fails, so no new Pod starts on that node (those already there keep
    # their programs and policy).
    b = scene.worker.name
    return {
        f"network-policy/policy_agent_ready_and_manages_pods[{b}]",
        f"network-policy/agent_sees_machine_sysctls_read_only[{b}]",
    } | policy.checks_with_a_pod_on("b")


DENY_DELETER = "k8slab-fault-deny-deleter"


def delete_deny(scene: Scene) -> None:
    """A transient unit on the first control plane deletes the default deny of ingress
    as soon as verify applies it."""
    delete = kubectl_command(
        [
            "-n",
            policy.SERVERS,
            "delete",
            "networkpolicy",
            policy.DENY_INGRESS.name,
            "--ignore-not-found",
            "--wait=false",
        ]
    )
    loop = f"while :; do {delete} >/dev/null 2>&1; sleep 0.5; done"
    run(scene, scene.cluster.first, f"systemd-run --unit {DENY_DELETER} sh -c {shlex.quote(loop)}")


def keep_deny(scene: Scene) -> None:
    run(scene, scene.cluster.first, f"systemctl stop {DENY_DELETER} || true")


def deny_deleted_expected(scene: Scene) -> set[str]:
    # Never in force, so every connection it should refuse is made. The allow rule's
    # refusals hold without it: a policy selecting a Pod for ingress isolates it.
    return {"network-policy/ingress_deny_in_force[-]"} | {
        f"network-policy/default_deny_ingress[{case}]" for case in policy.INGRESS_DENIED
    }


POLICY_FAULTS = [
    Fault(
        "policy-agent-stopped-on-a-node",
        stop_policy_agent,
        start_policy_agent,
        policy_agent_expected,
        unfit=without_a_policy_agent,
        groups=("network-policy",),
    ),
    Fault(
        "network-policy-deny-deleted",
        delete_deny,
        keep_deny,
        deny_deleted_expected,
        unfit=without_a_policy_agent,
        groups=("network-policy",),
    ),
]


REDUNDANCY_FAULTS = [
    Fault(
        "keepalived-stopped-on-a-standby",
        stop_standby_keepalived,
        start_standby_keepalived,
        standby_keepalived_expected,
        unfit=without_a_second_control_plane,
    ),
    Fault(
        "keepalived-interface-missing-on-a-standby",
        break_standby_keepalived_interface,
        fix_standby_keepalived_interface,
        standby_keepalived_expected,
        unfit=without_a_second_control_plane,
    ),
    Fault(
        "haproxy-stopped-on-a-standby",
        stop_standby_haproxy,
        start_standby_haproxy,
        standby_haproxy_expected,
        unfit=without_a_second_control_plane,
    ),
    Fault(
        "haproxy-backend-removed-on-a-standby",
        remove_standby_backend,
        restore_standby_backend,
        standby_backend_expected,
        unfit=without_a_second_control_plane,
    ),
    Fault(
        "vip-claimed-by-a-second-control-plane",
        claim_vip_on_standby,
        release_vip_on_standby,
        lambda scene: set(VIP_CHECKS),
        unfit=without_a_second_control_plane,
    ),
    Fault(
        "apiserver-stopped-on-a-standby",
        stop_standby_apiserver,
        start_standby_apiserver,
        standby_apiserver_expected,
        standby_apiserver_may_fail,
        unfit=without_a_second_control_plane,
    ),
    Fault(
        "controller-manager-stopped-on-a-standby",
        stop_standby_controller_manager,
        start_standby_controller_manager,
        standby_controller_manager_expected,
        leader_may_move,
        unfit=without_a_second_control_plane,
    ),
    Fault(
        "scheduler-and-controller-manager-cut-off-on-a-standby",
        cut_off_standby_components,
        reconnect_standby_components,
        cut_off_components_expected,
        cut_off_components_may_fail,
        unfit=without_a_second_control_plane,
    ),
    Fault(
        "apiserver-certificate-expiring-on-a-standby",
        shorten_standby_certificate,
        restore_standby_certificate,
        short_certificate_expected,
        unfit=without_a_second_control_plane,
    ),
    Fault(
        "etcd-peer-link-cut-one-way",
        cut_peer_link,
        mend_peer_link,
        peer_link_expected,
        peer_link_may_fail,
        unfit=without_two_etcd_followers,
    ),
    Fault(
        "coredns-replicas-on-one-node",
        crowd_coredns,
        uncrowd_coredns,
        lambda scene: {COREDNS_SPREAD},
    ),
    Fault(
        "kube-proxy-stopped-on-the-client-node",
        partial(stop_kube_proxy, where=client_node),
        start_kube_proxy,
        kube_proxy_on_client_expected,
        lb_through_node_may_fail,
    ),
    Fault(
        "metallb-speaker-stopped-on-announcer",
        stop_speaker_on_announcer,
        start_speakers,
        speaker_on_announcer_expected,
        unfit=without_load_balancer,
        prepare=expose_fault_service,
    ),
    Fault(
        "same-node-pod-traffic-dropped",
        drop_same_node_pod_traffic,
        allow_same_node_pod_traffic,
        same_node_expected,
        same_node_may_fail,
    ),
]


FAULTS = [
    Fault(
        "kubelet-stopped-on-a-worker",
        stop_kubelet,
        start_kubelet,
        kubelet_expected,
        lambda scene: controller_may_be_there(scene) | cloud_manager_not_ready(scene, scene.worker),
    ),
    Fault(
        "kube-proxy-stopped-rules-flushed",
        stop_kube_proxy,
        start_kube_proxy,
        kube_proxy_expected,
        lb_through_node_may_fail,
    ),
    Fault(
        "cni-config-removed",
        remove_cni_config,
        restore_cni_config,
        cni_expected,
        cni_may_fail,
        unfit=without_a_second_control_plane,
    ),
    Fault(
        "etcd-member-stopped",
        stop_etcd_member,
        start_etcd_member,
        etcd_expected,
        etcd_may_fail,
        unfit=without_etcd_quorum_to_spare,
    ),
    Fault("scheduler-stopped-everywhere", stop_schedulers, start_schedulers, scheduler_expected),
    Fault("coredns-scaled-to-zero", stop_coredns, start_coredns, coredns_expected),
    *(
        Fault(
            f"{runtime}-stopped",
            stop_runtime(runtime),
            start_runtime(runtime),
            runtime_expected(runtime),
            runtime_may_fail(runtime),
            unfit=without_runtime(runtime),
        )
        for runtime in RUNTIME_UNITS
    ),
    Fault(
        "ranges-routed-off-a-worker",
        uncontain_ranges,
        contain_ranges,
        lambda scene: {f"nodes/cluster_ranges_stay_on_the_node[{scene.worker.name}]"},
    ),
    Fault(
        "keepalived-stopped-on-vip-holder",
        stop_keepalived,
        start_keepalived,
        keepalived_expected,
        unfit=without_vip_failover,
    ),
    *REDUNDANCY_FAULTS,
    Fault(
        "etcd-certificate-expiring-on-a-member",
        shorten_etcd_certificate,
        restore_etcd_certificate,
        short_etcd_certificate_expected,
    ),
    Fault(
        "vlagent-stopped-on-a-worker",
        addon_faults.freeze_vlagent,
        addon_faults.thaw_vlagent,
        addon_faults.vlagent_expected,
        unfit=lambda lab: (
            addon_faults.without("logging")(lab) or addon_faults.without("monitoring")(lab)
        ),
        groups=("addons",),
    ),
    Fault(
        "prometheus-stopped",
        addon_faults.stop_prometheus,
        addon_faults.start_prometheus,
        addon_faults.prometheus_expected,
        unfit=addon_faults.without("monitoring"),
        groups=("addons",),
    ),
    Fault(
        "pod-crash-looping",
        addon_faults.crash_loop_a_pod,
        addon_faults.stop_crash_loop,
        lambda scene: {"addons/alert_rule_is_loaded_and_not_firing[PodCrashLooping]"},
        unfit=addon_faults.without("monitoring"),
        groups=("addons",),
    ),
    Fault(
        "cloud-controller-manager-stopped",
        stop_cloud_manager,
        start_cloud_manager,
        cloud_manager_expected,
        unfit=without_a_cloud,
    ),
    *POLICY_FAULTS,
]


def failing(report: VerifyReport) -> set[str]:
    return {f"{r.group}/{r.check}[{r.host}]" for r in report.failures}


@pytest.fixture(scope="module")
def scene(provisioned_lab: Lab) -> Iterator[Scene]:
    cluster = Cluster(provisioned_lab)
    try:
        report = run_verify(provisioned_lab)
        assert report.passed, "the lab must be green before faults:\n" + render_table(
            report.results
        )
        yield Scene(provisioned_lab, cluster, layout_for(cluster))
    finally:
        cluster.close()


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_is_caught_then_healed(scene: Scene, fault: Fault) -> None:
    if reason := fault.unfit(scene.lab):
        pytest.skip(f"{fault.name} on {scene.lab.name}: {reason}")
    try:
        fault.prepare(scene)
    except BaseException:
        fault.heal(scene)
        raise
    expected, may_fail = fault.expected(scene), fault.may_fail(scene)
    try:
        fault.inject(scene)
        # Of its groups, those that check this lab (a lab without a cloud has no cloud-provider).
        broken = run_verify(scene.lab, [g for g in fault.groups if g in groups_of(scene.lab)])
    finally:
        fault.heal(scene)
        settle(
            "schedulers and controller-managers healthy",
            partial(leader_elected_components_healthy, scene),
            CRASH_LOOP_BACKOFF_S + SETTLE_S,
        )
    caught = failing(broken)
    assert expected <= caught <= expected | may_fail, (
        f"unexpected: {sorted(caught - expected - may_fail)}; not caught: "
        f"{sorted(expected - caught)}\n" + render_table(broken.results)
    )
    healed = run_verify(scene.lab)
    assert healed.passed, f"still failing after healing {fault.name}:\n" + render_table(
        healed.results
    )
