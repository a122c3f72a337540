"""The judgements of verify's redundancy checks, on the text nodes give, and the fault
coverage report (benchmarks/verify_coverage.py), without a lab."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers.modules import load_file
from toolkit import kube
from toolkit.kube import ready_pod_nodes, replicas_on_one_node
from toolkit.lab.spec import load_lab
from toolkit.verify.redundancy import (
    backend_problems,
    connected_to,
    established,
    haproxy_servers,
    haproxy_status,
    interface_addresses,
    keepalived_problems,
    kubeconfig_server,
    parse_keepalived,
    server_endpoint,
    track_scripts,
)

REPO = Path(__file__).resolve().parents[2]
KEEPALIVED = """# managed
global_defs {
    router_id cp2
}
# A script, not track_process { ... }
vrrp_script haproxy_running {
    script "/usr/bin/systemctl is-active --quiet haproxy"
    interval 2
    fall 2
}
vrrp_instance api {
    # nopreempt keeps the VIP where a failover put it
    state BACKUP
    nopreempt
    interface eth1
    virtual_router_id 51
    priority 149
    authentication {
        auth_type PASS
        auth_pass k8slab
    }
    virtual_ipaddress {
        172.30.2.10/24 dev eth1
    }
    track_script {
        haproxy_running
    }
}
"""
IP_ADDR = "2: eth1    inet 172.30.2.12/24 brd 172.30.2.255 scope global eth1\\n"
HAPROXY_CFG = """global
    daemon
frontend apiserver
    bind *:8443
backend apiserver
    option httpchk
    server cp1 172.30.2.11:6443
    server cp2 172.30.2.12:6443 # comment
"""
SHOW_STAT = (
    (
        "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,"
        "wretr,wredis,status,weight\n"
    )
    + """apiserver,FRONTEND,,,0,1,,1,0,0,0,,0,,,,,OPEN,
apiserver,cp1,0,0,0,1,,1,0,0,,0,,0,0,0,0,UP,1
apiserver,cp2,0,0,0,1,,1,0,0,,0,,0,0,0,0,DOWN 1/2,1
apiserver,BACKEND,0,0,0,1,,1,0,0,0,,,0,0,0,0,UP,2
"""
)


def test_keepalived_instance_is_read_from_its_block() -> None:
    instance = parse_keepalived(KEEPALIVED)
    assert instance is not None
    assert (instance.router_id, instance.priority, instance.interface) == (51, 149, "eth1")
    assert instance.addresses == ("172.30.2.10",) and instance.auth_pass == "k8slab"
    assert parse_keepalived("global_defs {}\n") is None


def test_the_tracked_scripts_are_read_with_the_command_each_runs() -> None:
    assert track_scripts(KEEPALIVED) == {
        "haproxy_running": "/usr/bin/systemctl is-active --quiet haproxy"
    }
    # A tracked name no vrrp_script defines has no command; an instance tracking nothing,
    # or no instance at all, tracks no script.
    assert track_scripts(KEEPALIVED.replace("vrrp_script haproxy_running", "vrrp_script x")) == {
        "haproxy_running": ""
    }
    untracked = KEEPALIVED.replace("track_script {\n        haproxy_running\n    }", "")
    assert track_scripts(untracked) == {}
    assert track_scripts("global_defs {}\n") == {}
    unquoted = (
        "vrrp_script a {\n script /bin/true\n}\nvrrp_instance i {\n track_script {\n a\n }\n}\n"
    )
    assert track_scripts(unquoted) == {"a": "/bin/true"}


def test_a_keepalived_able_to_take_over_has_no_problem() -> None:
    mine = parse_keepalived(KEEPALIVED)
    peer = parse_keepalived(KEEPALIVED.replace("priority 149", "priority 150"))
    pairs = interface_addresses(IP_ADDR)
    assert ("eth1", "172.30.2.12") in pairs
    assert (
        keepalived_problems("cp2", "172.30.2.12", "172.30.2.10", mine, {"cp1": peer}, pairs) == []
    )


def test_keepalived_problems_name_each_reason() -> None:
    pairs = interface_addresses(IP_ADDR)
    mine = parse_keepalived(KEEPALIVED.replace("eth1", "k8slab-none"))
    peer = parse_keepalived(KEEPALIVED.replace("virtual_router_id 51", "virtual_router_id 52"))
    problems = keepalived_problems(
        "cp2", "172.30.2.12", "172.30.2.99", mine, {"cp1": peer, "cp3": None}, pairs
    )
    text = "; ".join(problems)
    assert "not the lab's 172.30.2.99" in text
    assert "interface k8slab-none does not carry 172.30.2.12" in text
    assert "cp1's is 52" in text and "also cp1's" in text and "cp3 has no vrrp_instance" in text
    assert keepalived_problems("cp2", "a", "v", None, {}, set()) == [
        "no vrrp_instance in its configuration"
    ]


def test_haproxy_servers_and_status_per_backend() -> None:
    assert haproxy_servers(HAPROXY_CFG, "apiserver") == {
        "cp1": "172.30.2.11:6443",
        "cp2": "172.30.2.12:6443",
    }
    assert haproxy_status(SHOW_STAT, "apiserver") == {"cp1": "UP", "cp2": "DOWN 1/2"}


def test_backend_problems_missing_misplaced_down_and_strangers() -> None:
    wanted = {"cp1": "172.30.2.11:6443", "cp2": "172.30.2.12:6443", "cp3": "172.30.2.13:6443"}
    configured = {"cp1": "172.30.2.11:6443", "cp2": "172.30.2.99:6443", "old": "x:6443"}
    status = {"cp1": "UP 1/3", "cp2": "DOWN"}
    problems = backend_problems(wanted, configured, status)
    assert "cp2 is configured at 172.30.2.99:6443, not 172.30.2.12:6443" in problems
    assert "cp2 (172.30.2.12:6443) is DOWN, not UP" in problems
    assert "cp3 (172.30.2.13:6443) is not a server in its configuration" in problems
    assert "cp3 (172.30.2.13:6443) is absent, not UP" in problems
    assert "servers that are no API server of the lab: ['old']" in problems
    assert not any(p.startswith("cp1") for p in problems)


SS = (
    '0 0 172.30.2.12:41000 172.30.2.12:6443 users:(("kube-scheduler",pid=10,fd=7))\n'
    '0 0 172.30.2.12:41002 172.30.2.12:6443 users:(("kube-controller",pid=11,fd=8))\n'
    "0 0 172.30.2.12:52000 172.30.2.11:2380\n"
)


def test_components_are_matched_by_their_kernel_name_and_the_server() -> None:
    connections = established(SS)
    assert connected_to(connections, "kube-scheduler", "172.30.2.12", "6443")
    # ss shows the kernel's 15-character name of kube-controller-manager.
    assert connected_to(connections, "kube-controller-manager", "172.30.2.12", "6443")
    assert not connected_to(connections, "kube-scheduler", "172.30.2.12", "6449")
    assert not connected_to(connections, "kube-scheduler", "172.30.2.11", "6443")
    assert connected_to(connections, "kube-scheduler", "api.lab", "6443")
    assert [c.local_address for c in connections] == ["172.30.2.12"] * 3


def test_kubeconfig_server_and_endpoint() -> None:
    text = "clusters:\n- cluster:\n    server: https://172.30.2.12:6443\n  name: k\n"
    assert server_endpoint(kubeconfig_server(text)) == ("172.30.2.12", "6443")
    assert kubeconfig_server("not: [a kubeconfig") == ""
    assert server_endpoint("https://api.lab") == ("api.lab", "443")


def pod(name: str, node: str, ready: bool = True, terminating: bool = False) -> dict[str, object]:
    meta: dict[str, object] = {"name": name}
    if terminating:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status = "True" if ready else "False"
    return {
        "metadata": meta,
        "spec": {"nodeName": node},
        "status": {"conditions": [{"type": "Ready", "status": status}]},
    }


def test_ready_replicas_and_their_nodes() -> None:
    pods = [pod("a", "w1"), pod("b", "w1", ready=False), pod("c", "w2", terminating=True)]
    assert ready_pod_nodes({"items": pods}) == {"a": "w1"}
    assert replicas_on_one_node({"items": [pod("a", "w1"), pod("b", "w1")]})
    assert not replicas_on_one_node({"items": [pod("a", "w1"), pod("b", "w2")]})
    assert not replicas_on_one_node({"items": [pod("a", "w1")]})


coverage = load_file("verify_coverage", REPO / "benchmarks" / "verify_coverage.py")


def test_coverage_lists_per_check_the_faults_and_the_uncovered() -> None:
    checks = ["g/a[x]", "g/a[y]", "g/b[-]", "g/c[-]"]
    faults = {
        "f1": coverage.FaultEffect(frozenset({"g/a[x]"}), frozenset({"g/c[-]"})),
        "f2": coverage.FaultEffect(frozenset({"g/a[x]", "g/b[-]", "g/typo[-]"})),
    }
    result = coverage.coverage(checks, faults)
    assert result.by_check == {"g/a[x]": ["f1", "f2"], "g/b[-]": ["f2"]}
    assert result.may_by_check == {"g/c[-]": ["f1"]}
    assert result.uncovered_checks() == ["g/a[y]", "g/c[-]"]
    assert result.uncovered_families() == ["g/c"]  # g/a is covered through g/a[x]
    assert result.unknown == {"g/typo[-]": ["f2"]}
    summary = result.summary()
    assert (summary["checks"], summary["checks_proven_sensitive"]) == (4, 2)
    assert (summary["families"], summary["families_proven_sensitive"]) == (3, 2)
    table = coverage.render_markdown(result)
    assert "| `g/c[-]` | **none** | f1 |" in table and "`g/typo[-]`: f2" in table


def test_check_ids_of_a_junit_report_leave_skipped_checks_out() -> None:
    xml = (
        '<testsuites><testsuite name="s">'
        '<testcase classname="check_nodes" name="test_kubelet_active[w1]" time="0.1"/>'
        '<testcase classname="check_network" name="test_service_forwarding[sctp]" time="0">'
        '<skipped message="no SCTP"/></testcase>'
        '<testcase classname="check_network" name="test_test_pods_ready" time="0"/>'
        "</testsuite></testsuites>"
    )
    assert coverage.check_ids(xml) == ["nodes/kubelet_active[w1]", "network/test_pods_ready[-]"]


def test_every_fault_names_only_checks_the_suites_have() -> None:
    """On paper, for each shipped lab: a fault's expected check that no suite reports is
    a misspelling that the fault module would only find on a real lab."""
    from toolkit.lab.spec import load_lab

    for name in ("ha-stacked", "ha-external", "single", "bridge", "runtimes"):
        lab = load_lab(name)
        result = coverage.coverage(coverage.paper_check_ids(lab), coverage.paper_effects(lab))
        assert result.unknown == {}, name


NODE_READY = re.compile(r"^nodes/node_ready\[(?P<node>.+)\]$")


def test_a_fault_that_takes_a_node_out_of_ready_expects_its_lifecycle_pod_to_fail() -> None:
    """A NotReady node's kubelet runs no new Pod (stopped, without its runtime, its CNI,
    or its API server): the lifecycle check there fails with node_ready, or may with it."""
    from toolkit.lab.spec import load_lab

    for name in ("ha-stacked", "ha-external", "single", "bridge", "runtimes"):
        for fault, effect in coverage.paper_effects(load_lab(name)).items():
            for checks in (effect.expected, effect.expected | effect.may_fail):
                for check in checks:
                    if match := NODE_READY.match(check):
                        lifecycle = f"nodes/pod_runs_logs_execs_and_is_deleted[{match['node']}]"
                        assert lifecycle in checks, (name, fault, check)


def test_coredns_is_spread_by_moving_one_replica_and_waiting_for_its_replacement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = iter(
        [
            {"items": [pod("a", "cp1"), pod("b", "cp1")]},
            {"items": [pod("a", "cp1"), pod("c", "w1", ready=False)]},
            {"items": [pod("a", "cp1"), pod("c", "w1")]},
        ]
    )
    deleted: list[list[str]] = []
    monkeypatch.setattr(kube, "kubectl_json", lambda lab, args, **_: next(answers))
    monkeypatch.setattr(kube, "kubectl_ok", lambda lab, args, **_: deleted.append(args))
    monkeypatch.setattr(kube, "POLL_INTERVAL_S", 0)
    assert kube.spread_coredns(load_lab("single"))
    assert deleted == [["delete", "pod", "-n", "kube-system", "b"]]
    assert next(answers, None) is None  # it waited for the replacement to be ready


def test_coredns_already_on_two_nodes_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        kube, "kubectl_json", lambda lab, args, **_: {"items": [pod("a", "cp1"), pod("b", "w1")]}
    )
    monkeypatch.setattr(kube, "kubectl_ok", lambda lab, args, **_: pytest.fail("moved a replica"))
    assert not kube.spread_coredns(load_lab("single"))
