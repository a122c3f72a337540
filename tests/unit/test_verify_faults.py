"""The fault module's choices and observations (tests/e2e/test_verify_faults.py), without a
lab: which nodes a fault breaks, what it expects to fail, and how it reads the result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, cast

import pytest

from tests.e2e import addon_faults
from tests.e2e import test_verify_faults as faults
from toolkit.lab.spec import Lab, Node, load_lab
from toolkit.verify.cluster import Cluster, Run
from toolkit.verify.run import layout_nodes
from toolkit.verify.workload import Layout


@dataclass(frozen=True)
class FakeScene(faults.Scene):
    leader: str = ""

    def etcd_leader(self) -> str:
        return self.leader


class FakeCluster:
    """Runs nothing: ``answer(node, command)`` gives each command's exit status and output."""

    def __init__(self, answer: Callable[[str, str], tuple[int, str]]) -> None:
        self.answer = answer

    def run(self, node: Node | str, command: str, **_: Any) -> Run:
        name = node if isinstance(node, str) else node.name
        status, out = self.answer(name, command)
        return Run(name, command, status, out, out)


def scene(lab: Lab, leader: str = "", cluster: object = None) -> FakeScene:
    a, b = lab.workers[:2]
    return FakeScene(lab, cast(Cluster, cluster), Layout(a, b, ""), leader)


@dataclass(frozen=True)
class PaperScene(FakeScene):
    """Where CoreDNS runs is unknown: no failure is claimed from it."""

    def coredns_nodes(self) -> set[str]:
        return set()


def scene_of_layout(lab: Lab) -> PaperScene:
    """The lab as verify lays its test Pods out (its nodes a and b)."""
    a, b = layout_nodes(lab)
    return PaperScene(lab, cast(Cluster, None), Layout(a, b, ""))


@pytest.mark.parametrize(
    ("leader", "member", "peer"),
    [("cp1", "cp2", "cp3"), ("cp2", "cp1", "cp3"), ("cp3", "cp1", "cp2")],
)
def test_the_peer_link_cut_is_between_two_followers(leader: str, member: str, peer: str) -> None:
    lab = load_lab("ha-stacked")
    chosen = faults.peer_link(scene(lab, leader))
    assert (chosen[0].name, chosen[1].name) == (member, peer)
    fault = next(f for f in faults.FAULTS if f.name == "etcd-peer-link-cut-one-way")
    assert fault.expected(scene(lab, leader)) == {f"etcd/peers_connected[{member}]"}
    assert fault.may_fail(scene(lab, leader)) == {f"etcd/peers_connected[{peer}]"}


def test_the_peer_link_cut_needs_three_members() -> None:
    fault = next(f for f in faults.FAULTS if f.name == "etcd-peer-link-cut-one-way")
    assert fault.unfit(load_lab("ha-stacked")) == ""
    assert fault.unfit(load_lab("ha-external")) == ""
    assert "3 etcd members" in fault.unfit(load_lab("single"))


@pytest.mark.parametrize(
    ("cp2_to_cp3", "cp3_to_cp2", "one_way"),
    [(False, True, True), (True, True, False), (False, False, False), (True, False, False)],
)
def test_the_cut_is_one_way_only_when_the_peer_still_connects_back(
    cp2_to_cp3: bool, cp3_to_cp2: bool, one_way: bool
) -> None:
    lab = load_lab("ha-stacked")
    cp2, cp3 = lab.node("cp2"), lab.node("cp3")
    opens = {("cp2", str(cp3.address)): cp2_to_cp3, ("cp3", str(cp2.address)): cp3_to_cp2}

    def answer(node: str, command: str) -> tuple[int, str]:
        assert command.startswith("timeout 3 bash -c ': </dev/tcp/") and "/2380'" in command
        target = command.split("/dev/tcp/")[1].split("/")[0]
        return (0 if opens[(node, target)] else 124), ""

    assert faults.cut_one_way(scene(lab, cluster=FakeCluster(answer)), cp2, cp3) is one_way


VIP = "172.30.2.100"
CP1_MAC = "02:42:ac:1e:02:0b"
CP3_MAC = "02:42:ac:1e:02:0d"
KUBE_PROXY = 'users:(("kube-proxy",pid=7,fd=9))'


def test_neighbour_entries_are_read_by_their_link_address() -> None:
    assert faults.neighbour_macs(f"{VIP} dev eth1 lladdr {CP3_MAC.upper()} REACHABLE\n") == {
        CP3_MAC
    }
    assert faults.neighbour_macs(f"{VIP} dev eth1 FAILED\n{VIP} dev eth1 INCOMPLETE\n") == set()
    assert faults.neighbour_macs("") == set()


def test_what_a_released_vip_claim_leaves_on_the_node_that_made_it() -> None:
    # kube-proxy dialled the VIP while the node held it: from the VIP, to its own haproxy.
    stranded = (
        f"0 0 {VIP}:40000 {VIP}:8443 {KUBE_PROXY}\n"
        f'0 0 {VIP}:8443 {VIP}:40000 users:(("haproxy",pid=3,fd=5))\n'
    )
    left = faults.claim_left_on(stranded, VIP, 8443)
    assert len(left) == 3 and all("from the VIP" in line for line in left[:2])
    assert "kube-proxy has no connection to the API at 172.30.2.100:8443" in left
    # After the heal: kube-proxy dialled again, from the node's own address.
    assert faults.claim_left_on(f"0 0 172.30.2.13:40100 {VIP}:8443 {KUBE_PROXY}\n", VIP, 8443) == []
    # A connection to the VIP's port from elsewhere is not the node's own watch.
    assert faults.claim_left_on(f"0 0 172.30.2.13:40100 {VIP}:6443 {KUBE_PROXY}\n", VIP, 8443)


def lab_answers(
    holders: set[str], sockets: dict[str, str], neighbours: dict[str, str]
) -> Callable[[str, str], tuple[int, str]]:
    def answer(node: str, command: str) -> tuple[int, str]:
        if command.startswith("ip -o -4 addr show | grep -qw"):
            return (0 if node in holders else 1), ""
        if command.startswith("i=$(ip -o -4 addr show"):
            return 0, CP1_MAC + "\n"
        if command == "ss -Htnp state established":
            return 0, sockets.get(node, "")
        if command.startswith("ip neigh show to"):
            return 0, neighbours.get(node, "")
        raise AssertionError(f"unexpected command on {node}: {command}")

    return answer


def test_a_vip_is_settled_only_when_sockets_and_neighbours_are_as_if_it_never_moved() -> None:
    lab = load_lab("ha-stacked")
    watching = f"0 0 172.30.2.1X:40100 {VIP}:8443 {KUBE_PROXY}\n"
    healthy = {cp: watching.replace("1X", f"1{cp[-1]}") for cp in ("cp2", "cp3")}
    # On the holder every connection to the VIP comes from it: not a stranded one.
    healthy["cp1"] = f"0 0 {VIP}:40000 {VIP}:8443 {KUBE_PROXY}\n"
    right = {"w1": f"{VIP} dev eth1 lladdr {CP1_MAC} REACHABLE\n"}
    wrong = {"w1": f"{VIP} dev eth1 lladdr {CP3_MAC} STALE\n"}

    def left(holders: set[str], sockets: dict[str, str], neighbours: dict[str, str]) -> list[str]:
        cluster = FakeCluster(lab_answers(holders, sockets, neighbours))
        return faults.vip_left_behind(scene(lab, cluster=cluster))

    assert left({"cp1"}, healthy, right) == []
    assert left({"cp1", "cp3"}, healthy, right) == ["the VIP is held by ['cp1', 'cp3']"]
    stranded = {**healthy, "cp3": f"0 0 {VIP}:40000 {VIP}:8443 {KUBE_PROXY}\n"}
    assert [line.split(":")[0] for line in left({"cp1"}, stranded, right)] == ["cp3", "cp3"]
    assert left({"cp1"}, healthy, wrong) == [
        f"w1 resolves the VIP to ['{CP3_MAC}'], not cp1's {CP1_MAC}"
    ]


def test_the_vip_heal_deletes_the_address_before_it_closes_the_stranded_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lab = load_lab("ha-stacked")
    asked: list[tuple[str, str]] = []

    def answer(node: str, command: str) -> tuple[int, str]:
        asked.append((node, command))
        if "grep -qw" in command:  # who holds the VIP: cp1 alone
            return (0 if node == "cp1" else 1), ""
        return 0, ""

    monkeypatch.setitem(faults.SAVED, "standby", "cp3")
    monkeypatch.setattr(faults, "vip_left_behind", lambda scene: [])
    faults.release_vip_on_standby(scene(lab, cluster=FakeCluster(answer)))
    actions = [(n, c) for n, c in asked if "grep -qw" not in c]
    assert actions[0] == ("cp3", f"ip addr del {VIP}/32 dev lo 2>/dev/null || true")
    assert {n for n, c in actions if c.startswith(f"ss -K -tn src {VIP}")} == {"cp2", "cp3"}
    assert {n for n, c in actions if c.startswith("ip neigh flush")} == {n.name for n in lab.nodes}
    assert actions.index(("cp3", f"ss -K -tn src {VIP} >/dev/null")) > 0


# What each shipped lab cannot take, and why: one control plane leaves no standby, no
# node besides kubectl's, no VIP failover and one etcd member (no quorum to spare, no two
# followers).
NEEDS_HA = {
    "cni-config-removed",
    "etcd-member-stopped",
    "keepalived-stopped-on-vip-holder",
    "keepalived-stopped-on-a-standby",
    "keepalived-interface-missing-on-a-standby",
    "haproxy-stopped-on-a-standby",
    "haproxy-backend-removed-on-a-standby",
    "vip-claimed-by-a-second-control-plane",
    "apiserver-stopped-on-a-standby",
    "controller-manager-stopped-on-a-standby",
    "scheduler-and-controller-manager-cut-off-on-a-standby",
    "apiserver-certificate-expiring-on-a-standby",
    "etcd-peer-link-cut-one-way",
}
# A runtime's fault needs a node that runs it: the shipped labs but runtimes have no docker.
NO_DOCKER = {"docker-stopped"}
# MetalLB's fault needs a lab with a load_balancer.pool, and the policy faults a policy
# agent: of the shipped labs, bridge has both.
NO_POOL = {"metallb-speaker-stopped-on-announcer"}
# The add-ons' faults need the add-ons: only single asks for them. The policy faults need
# a policy agent: only bridge sets network_policy.
NO_ADDONS = {"vlagent-stopped-on-a-worker", "prometheus-stopped", "pod-crash-looping"}
# Only single has a cloud-controller-manager to stop.
NO_CLOUD = {"cloud-controller-manager-stopped"}
NO_POLICY = {"policy-agent-stopped-on-a-node", "network-policy-deny-deleted"}
UNFIT = {
    "ha-stacked": NO_DOCKER | NO_POOL | NO_ADDONS | NO_CLOUD | NO_POLICY,
    "ha-external": NO_DOCKER | NO_POOL | NO_ADDONS | NO_CLOUD | NO_POLICY,
    "bridge": NEEDS_HA | NO_DOCKER | NO_ADDONS | NO_CLOUD,
    "single": NEEDS_HA | NO_DOCKER | NO_POOL | NO_POLICY,
    "runtimes": NEEDS_HA | NO_POOL | NO_ADDONS | NO_CLOUD | NO_POLICY,
}


@pytest.mark.parametrize("lab_name", sorted(UNFIT))
def test_each_shipped_lab_skips_the_faults_it_cannot_take(lab_name: str) -> None:
    lab = load_lab(lab_name)
    reasons = {fault.name: fault.unfit(lab) for fault in faults.FAULTS}
    assert {name for name, reason in reasons.items() if reason} == UNFIT[lab_name]


# Where each runtime's fault stops the runtime: node b of the layout when it runs it (the
# kubelet fault's node), else another node, the test client's node a last.
RUNTIME_NODE = {
    ("ha-stacked", "containerd"): "w2",
    ("ha-external", "containerd"): "w2",
    ("bridge", "containerd"): "w2",
    # One worker: node b is the control plane, whose crictl-listed components fail too.
    ("single", "containerd"): "cp1",
    # Node a is w-containerd, node b w-docker.
    ("runtimes", "containerd"): "cp1",
    ("runtimes", "docker"): "w-docker",
}


@pytest.mark.parametrize(("lab_name", "runtime"), sorted(RUNTIME_NODE))
def test_a_runtime_is_stopped_on_a_node_that_runs_it(lab_name: str, runtime: str) -> None:
    lab = load_lab(lab_name)
    node = faults.runtime_node(scene_of_layout(lab), runtime)
    assert node.name == RUNTIME_NODE[(lab_name, runtime)]
    assert node.container_runtime == runtime
    expected = faults.runtime_expected(runtime)(scene_of_layout(lab))
    assert f"nodes/cri_runtime_service[{node.name}]" in expected
    assert (f"control-plane/apiserver_running[{node.name}]" in expected) == (
        node in lab.control_planes
    )


@pytest.mark.parametrize("lab_name", sorted(UNFIT))
def test_every_lab_takes_the_ranges_fault_on_node_b_and_expects_that_check_alone(
    lab_name: str,
) -> None:
    lab = load_lab(lab_name)
    fault = next(f for f in faults.FAULTS if f.name == "ranges-routed-off-a-worker")
    paper = scene_of_layout(lab)
    assert fault.unfit(lab) == ""
    assert fault.expected(paper) == {f"nodes/cluster_ranges_stay_on_the_node[{paper.worker.name}]"}
    asked: list[tuple[str, str]] = []

    def answer(node: str, command: str) -> tuple[int, str]:
        asked.append((node, command))
        return 0, ""

    fault.inject(PaperScene(lab, cast(Cluster, FakeCluster(answer)), paper.layout))
    [(node, command)] = asked
    assert node == paper.worker.name
    assert command.startswith(f"ip route delete unreachable {lab.network.pod_cidr} && ")
    assert f"iptables -t mangle -D POSTROUTING -d {lab.network.service_cidr} -j DROP" in command


def test_a_cluster_fault_is_judged_on_the_cluster_s_groups_an_add_on_fault_on_addons() -> None:
    by_name = {f.name: f for f in faults.FAULTS}
    assert "addons" not in by_name["kubelet-stopped-on-a-worker"].groups
    for name in NO_ADDONS:
        assert by_name[name].groups == ("addons",)


def test_prometheus_stopped_fails_every_check_that_asks_prometheus() -> None:
    lab = load_lab("single")
    scene = SimpleNamespace(lab=lab, cluster=None, worker=lab.node("cp1"))
    expected = addon_faults.prometheus_expected(scene)  # type: ignore[arg-type]
    assert "addons/prometheus_scrapes_every_kubelet[w1]" in expected
    assert "addons/prometheus_scrapes_every_etcd_member[cp1]" in expected
    assert "addons/prometheus_scrapes_vlagent_on_every_node[cp1]" in expected
    assert "addons/web_ui_renders_in_a_browser[monitoring]" in expected
    assert not any("victoria_logs" in check or "kubectl_top" in check for check in expected)


def test_the_cloud_manager_s_fault_expects_its_own_checks_and_its_pod_may_fall_not_ready() -> None:
    lab = load_lab("single")
    paper = scene_of_layout(lab)
    fault = next(f for f in faults.FAULTS if f.name == "cloud-controller-manager-stopped")
    assert fault.expected(paper) == {
        "cloud-provider/cloud_controller_manager_running[-]",
        "cloud-provider/cloud_controller_manager_holds_its_lease[-]",
        "cloud-provider/cloud_controller_manager_healthy[cp1]",
    }
    # On single, node b (the kubelet fault's "worker") is the control plane.
    kubelet = next(f for f in faults.FAULTS if f.name == "kubelet-stopped-on-a-worker")
    assert kubelet.may_fail(paper) == {"cloud-provider/cloud_controller_manager_running[-]"}
    assert kubelet.may_fail(scene_of_layout(load_lab("ha-stacked"))) == set()


def test_the_policy_faults_check_their_group_alone_and_the_others_leave_it_out() -> None:
    by_name = {f.name: f for f in faults.FAULTS}
    for name in NO_POLICY:
        assert by_name[name].groups == ("network-policy",)
    others = [f for f in faults.FAULTS if f.name not in NO_POLICY]
    assert all("network-policy" not in f.groups for f in others)


def test_the_stopped_agent_fails_its_node_s_checks_and_the_cases_with_a_pod_there() -> None:
    lab = load_lab("bridge")
    expected = faults.policy_agent_expected(scene(lab))
    b = scene(lab).worker.name
    assert f"network-policy/policy_agent_ready_and_manages_pods[{b}]" in expected
    assert "network-policy/default_deny_ingress[pod-other-node]" in expected
    assert "network-policy/default_deny_ingress[pod-same-node]" not in expected


def test_the_deleted_deny_fails_its_cases_and_only_those() -> None:
    expected = faults.deny_deleted_expected(scene(load_lab("bridge")))
    assert "network-policy/ingress_deny_in_force[-]" in expected
    assert {c.split("[")[0] for c in expected} == {
        "network-policy/ingress_deny_in_force",
        "network-policy/default_deny_ingress",
    }
