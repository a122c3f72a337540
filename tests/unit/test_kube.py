"""The cluster client without a lab: the ssh layer is faked, the command lines it builds
are checked, and where they are shell they run here with stand-ins for kubectl and ip."""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from toolkit import kube, poll
from toolkit.errors import HostError
from toolkit.hosts import remote
from toolkit.hosts.ssh import SshTarget
from toolkit.lab.spec import Lab, load_lab
from toolkit.poll import PollTimeout

Answer = tuple[int, str]


class FakeHosts:
    """Stands in for ``toolkit.hosts.ssh.run_command``: records (host, command) and answers
    with ``answer(host, script)``, the script being what ``sudo sh -c`` would run."""

    def __init__(self, answer: Callable[[str, str], Answer]) -> None:
        self.answer = answer
        self.asked: list[tuple[str, str]] = []

    def __call__(self, target: SshTarget, command: str, timeout: float = 30) -> Answer:
        self.asked.append((target.name, command))
        sudo, sh, flag, script = shlex.split(command)
        assert (sudo, sh, flag) == ("sudo", "sh", "-c"), command
        return self.answer(target.name, script)


@pytest.fixture
def lab(isolated_state: Path) -> Lab:
    return load_lab("ha-stacked")


def fake_hosts(monkeypatch: pytest.MonkeyPatch, answer: Callable[[str, str], Answer]) -> FakeHosts:
    hosts = FakeHosts(answer)
    monkeypatch.setattr(remote, "run_command", hosts)
    return hosts


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def node_list(*ready: tuple[str, bool]) -> str:
    return json.dumps(
        {
            "items": [
                {
                    "metadata": {"name": name},
                    "status": {"conditions": [{"type": "Ready", "status": str(ok)}]},
                }
                for name, ok in ready
            ]
        }
    )


def test_kubectl_runs_as_root_on_the_first_control_plane_with_the_admin_kubeconfig(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts = fake_hosts(monkeypatch, lambda host, script: (0, "pod/a\n"))
    assert kube.kubectl(lab, ["get", "pods", "-l", "app=a b"]) == (0, "pod/a\n")
    ((host, command),) = hosts.asked
    assert host == lab.control_planes[0].name
    script = shlex.split(command)[3]
    assert shlex.split(script) == [
        "kubectl",
        "--kubeconfig",
        "/etc/kubernetes/admin.conf",
        "get",
        "pods",
        "-l",
        "app=a b",
    ]
    kube.kubectl(lab, ["get", "nodes"], on=lab.control_planes[2])
    assert hosts.asked[-1][0] == lab.control_planes[2].name


def test_a_failed_request_raises_with_its_output(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_hosts(monkeypatch, lambda host, script: (1, 'Error from server (NotFound): "x"\n'))
    with pytest.raises(kube.ClusterError, match=r"kubectl get cm x exited 1: .*NotFound"):
        kube.kubectl_ok(lab, ["get", "cm", "x"])


def test_an_unreachable_host_is_a_host_error_naming_it(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(target: SshTarget, command: str, timeout: float = 30) -> Answer:
        raise ConnectionRefusedError("Connection refused")

    monkeypatch.setattr(remote, "run_command", refused)
    with pytest.raises(HostError, match="cp1: cannot run over SSH: Connection refused"):
        kube.kubectl(lab, ["get", "nodes"])


def test_apply_hands_the_manifest_to_kubectl_on_stdin_untouched() -> None:
    manifest = '{"kind": "ConfigMap", "data": {"v": "$HOME `id` \'quoted\'"}}\nEOF\nmore'
    script = 'kubectl() { echo "args: $*"; cat; }; ' + kube.apply_command(manifest)
    output = subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    assert output == "args: --kubeconfig /etc/kubernetes/admin.conf apply -f -\n" + manifest + "\n"


@pytest.mark.parametrize(
    ("addresses", "holds"),
    [("172.30.2.11/24 172.30.2.100/32", True), ("172.30.2.11/24 172.30.2.1000/32", False)],
)
def test_the_vip_holder_is_the_node_with_the_vip_as_a_whole_address(
    lab: Lab, addresses: str, holds: bool
) -> None:
    assert str(lab.api_vip) == "172.30.2.100"
    fake_ip = (
        "ip() { for a in " + addresses + '; do echo "2: eth0    inet $a scope global"; done; }; '
    )
    status = subprocess.run(["sh", "-c", fake_ip + kube.holds_vip_command(lab)], timeout=30)
    assert (status.returncode == 0) == holds


def test_vip_holder_asks_each_control_plane_and_skips_unreachable_ones(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    def answer(host: str, script: str) -> Answer:
        assert script == kube.holds_vip_command(lab)
        if host == "cp1":
            raise OSError("No route to host")
        return (0, "") if host == "cp3" else (1, "")

    fake_hosts(monkeypatch, answer)
    assert kube.vip_holder(lab) == lab.node("cp3")
    fake_hosts(monkeypatch, lambda host, script: (1, ""))
    assert kube.vip_holder(lab) is None


def test_waiting_for_ready_nodes_rides_out_hiccups_and_returns_the_time_waited(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeTime()
    monkeypatch.setattr(poll, "time", clock)
    everyone = [n.name for n in lab.control_planes + lab.workers]
    replies: list[Answer] = [
        (1, "The connection to the server 172.30.2.100:8443 was refused"),
        (0, node_list(*[(name, name != "cp2") for name in everyone])),
        (0, node_list(*[(name, True) for name in everyone])),
    ]
    hosts = fake_hosts(monkeypatch, lambda host, script: replies.pop(0))
    assert kube.wait_for_ready_nodes(lab, timeout_s=60) == 2 * kube.POLL_INTERVAL_S
    assert len(hosts.asked) == 3


def test_nodes_not_ready_in_time_are_named(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(poll, "time", FakeTime())
    everyone = [n.name for n in lab.control_planes + lab.workers]
    reply = node_list(*[(name, name not in ("cp2", "w1")) for name in everyone][:-1])
    fake_hosts(monkeypatch, lambda host, script: (0, reply))
    with pytest.raises(PollTimeout) as raised:
        kube.wait_for_ready_nodes(lab, timeout_s=30)
    missing = sorted({"cp2", "w1", everyone[-1]})
    assert raised.value.last == "; ".join(f"{name} not Ready" for name in missing)
    assert str(raised.value).startswith(f"lab {lab.name}: every node Ready: not within 30s")


def test_waiting_for_system_workloads_reads_deployments_and_daemonsets(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(poll, "time", FakeTime())
    coredns: dict[str, Any] = {
        "kind": "Deployment",
        "metadata": {"namespace": "kube-system", "name": "coredns"},
        "spec": {"replicas": 2},
        "status": {"readyReplicas": 1, "updatedReplicas": 2},
    }
    settled = {**coredns, "status": {"readyReplicas": 2, "updatedReplicas": 2}}
    replies = [{"items": [coredns]}, {"items": [settled]}]

    def answer(host: str, script: str) -> Answer:
        assert "get deployments,daemonsets --all-namespaces -o json" in script
        return 0, json.dumps(replies.pop(0))

    fake_hosts(monkeypatch, answer)
    assert kube.wait_for_system_workloads(lab, timeout_s=60) == kube.POLL_INTERVAL_S


def test_pods_not_ready_on_a_node(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    def pod(name: str, phase: str, ready: bool) -> dict[str, Any]:
        conditions = [{"type": "Ready", "status": str(ready)}]
        return {
            "metadata": {"namespace": "kube-system", "name": name},
            "status": {"phase": phase, "conditions": conditions},
        }

    pods = [
        pod("a", "Running", True),
        pod("b", "Running", False),
        pod("c", "Pending", False),
        pod("job", "Succeeded", False),
    ]
    hosts = fake_hosts(monkeypatch, lambda host, script: (0, json.dumps({"items": pods})))
    assert kube.pods_not_ready_on(lab, lab.node("w1")) == ["kube-system/b", "kube-system/c"]
    assert "--field-selector spec.nodeName=w1" in hosts.asked[0][1]
