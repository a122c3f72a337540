"""The network-policy group's cases, Pods and policies (toolkit/verify/policy.py), without
a lab: every case states its ends and verdict, every connection is first proved without
a policy, and a refused connection that is made is a failure."""

from __future__ import annotations

import ipaddress

import yaml

from toolkit.lab.model import Node, Role
from toolkit.verify import policy
from toolkit.verify.run import GROUPS
from toolkit.verify.workload import Layout

A = Node("w1", Role.WORKER, ipaddress.IPv4Address("172.30.2.21"), 1, 1024, "containerd")
B = Node("w2", Role.WORKER, ipaddress.IPv4Address("172.30.2.22"), 1, 1024, "containerd")
LAYOUT = Layout(A, B, "registry.k8s.io/kube-proxy:v1.34.4")
CASES = [c for phase in policy.PHASES.values() for c in phase.values()]


def test_the_group_runs_after_the_network_it_builds_on() -> None:
    assert GROUPS.index("network-policy") == GROUPS.index("network") + 1


def test_every_connection_is_proved_before_any_policy() -> None:
    proved = {(c.source, c.target, c.port) for c in policy.BASELINE.values()}
    assert all(c.allowed for c in policy.BASELINE.values())
    assert {(c.source, c.target, c.port) for c in CASES} == proved


def test_each_case_names_source_destination_nodes_port_and_verdict() -> None:
    described = policy.INGRESS_DENIED["pod-other-node"].describe(LAYOUT)
    assert described == (
        "k8slab-policy-client/client-b on w2 -> k8slab-policy/web-a on w1:8080, expected refused"
    )
    service = policy.INGRESS_DENIED["service-same-node"].describe(LAYOUT)
    assert "Service k8slab-policy/web-a (Pod k8slab-policy/web-a on w1):80" in service
    assert "kube-dns" in policy.EGRESS_DENIED["dns-denied"].describe(LAYOUT)


def test_a_refused_connection_that_is_made_fails() -> None:
    refused = policy.INGRESS_ALLOWED["wrong-label"]
    assert policy.verdict_problem(refused, connected=False, layout=LAYOUT) == ""
    problem = policy.verdict_problem(refused, connected=True, layout=LAYOUT)
    assert problem.startswith("connected, should be refused: k8slab-policy-client/stranger-a")
    allowed = policy.INGRESS_ALLOWED["named-pod-same-node"]
    assert policy.verdict_problem(allowed, connected=False, layout=LAYOUT).startswith(
        "no connection"
    )


def test_the_deny_cases_cross_nodes_and_services_and_the_allow_rule_its_three_ways_out() -> None:
    deny = policy.INGRESS_DENIED
    assert {policy.PODS[c.source][0] for c in deny.values()} == {"a", "b"}
    assert {c.target.startswith("service:") for c in deny.values()} == {True, False}
    refused = {k for k, c in policy.INGRESS_ALLOWED.items() if not c.allowed}
    assert refused == {"wrong-label", "wrong-namespace", "other-port"}


def test_the_allow_rule_needs_that_namespace_and_that_label_in_one_peer() -> None:
    (rule,) = policy.ALLOW_WEB.spec["ingress"]  # type: ignore[misc]
    (peer,) = rule["from"]
    assert set(peer) == {"namespaceSelector", "podSelector"}
    assert rule["ports"] == [{"protocol": "TCP", "port": policy.PORT}]


def test_each_policy_is_polled_with_a_case_of_its_own_phase() -> None:
    for name, sentinel in policy.SENTINELS.items():
        assert sentinel in policy.PHASES[name].values()
    assert [p.name for p in policy.POLICIES] == list(policy.PHASES)


def test_the_pods_are_pinned_to_the_layout_s_nodes() -> None:
    documents = list(yaml.safe_load_all(policy.manifests(LAYOUT)))
    pods = {
        f"{d['metadata']['namespace']}/{d['metadata']['name']}": d
        for d in documents
        if d["kind"] == "Pod"
    }
    assert set(pods) == set(policy.PODS)
    for key, (where, labels) in policy.PODS.items():
        assert pods[key]["spec"]["nodeName"] == {"a": "w1", "b": "w2"}[where]
        assert pods[key]["metadata"]["labels"] == labels
    web = pods["k8slab-policy/web-a"]["spec"]["containers"]
    assert [c["readinessProbe"]["tcpSocket"]["port"] for c in web] == [8080, 9090]
    namespaces = [d["metadata"]["name"] for d in documents if d["kind"] == "Namespace"]
    assert namespaces == list(policy.NAMESPACES)


def test_a_dns_case_resolves_and_a_tcp_case_connects() -> None:
    dns = policy.connection_script(policy.EGRESS_DENIED["dns-denied"], "", 2)
    assert "getent hosts kubernetes.default.svc.cluster.local" in dns and "seq 2" in dns
    tcp = policy.connection_script(policy.INGRESS_DENIED["pod-same-node"], "10.244.1.5", 1)
    assert "/dev/tcp/10.244.1.5/8080" in tcp


def test_the_checks_with_a_pod_on_a_node_are_the_cases_that_need_one_there() -> None:
    on_b = policy.checks_with_a_pod_on("b")
    assert "network-policy/default_deny_ingress[pod-other-node]" in on_b
    assert "network-policy/default_deny_ingress[pod-same-node]" not in on_b
    # A Service's end is its server Pod; the resolver's DNS end is on no test node.
    assert "network-policy/connects_before_any_policy[client-b-to-service-web-a-80]" in on_b
    assert "network-policy/egress_deny_blocks_dns[dns-denied]" not in on_b
    every = {f"network-policy/{c}[{i}]" for c, cases in policy.CHECKS.items() for i in cases}
    assert policy.checks_with_a_pod_on("a") | on_b == every
