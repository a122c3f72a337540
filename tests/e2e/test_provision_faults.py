"""End to end, on the `single` lab: provisioning survives being killed, refuses hosts it
must not touch, and `k8slab reset` returns the hosts to a state it can provision again.

Destructive: it kills runs, fakes another cluster's marker and wipes the lab's cluster.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from tests.helpers.processes import killed_when
from toolkit.cli import main
from toolkit.errors import HostError
from toolkit.hosts.lifecycle import ssh_target
from toolkit.hosts.ssh import run_command
from toolkit.kube import wait_for_ready_nodes
from toolkit.lab.spec import Lab, Node, load_lab
from toolkit.lab.state import LabState
from toolkit.provision.run import provision

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.destructive]

LAB = "single"
MARKER = "/etc/kubernetes/k8slab-cluster"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    CliRunner().invoke(main, ["destroy", LAB])
    result = CliRunner().invoke(main, ["up", LAB, "--hosts-only"])
    assert result.exit_code == 0, result.output
    yield load_lab(LAB)
    if not os.environ.get("K8SLAB_KEEP_LABS"):
        CliRunner().invoke(main, ["destroy", LAB])


def on(lab: Lab, node: Node, command: str) -> tuple[int, str]:
    return run_command(ssh_target(LabState.of(lab.name), node), command, timeout=60)


def test_a_run_killed_inside_kubeadm_init_converges_when_run_again(lab: Lab) -> None:
    # Killed well inside kubeadm init: certificates and static Pods are half made.
    killed_when(
        ["provision", LAB],
        lambda line: "control-plane" in line and "Run kubeadm init" in line,
        timeout_s=900,
        then_s=8,
    )
    cp = lab.control_planes[0]
    assert on(lab, cp, "test -e /etc/kubernetes/k8slab-joined")[0] != 0, "init had finished"

    report = provision(lab)
    assert not report.idempotent
    wait_for_ready_nodes(lab)
    assert provision(lab).idempotent


def test_a_node_of_another_cluster_is_refused_before_anything_changes(lab: Lab) -> None:
    worker = lab.workers[0]
    assert on(lab, worker, f"echo other-lab | sudo tee {MARKER}")[0] == 0
    try:
        with pytest.raises(HostError, match=rf"{worker.name} belongs to cluster 'other-lab'"):
            provision(lab)
    finally:
        on(lab, worker, f"echo {LAB} | sudo tee {MARKER}")
    assert provision(lab).idempotent


def test_reset_returns_hosts_that_provision_again(lab: Lab) -> None:
    result = CliRunner().invoke(main, ["reset", LAB, "--yes"])
    assert result.exit_code == 0, result.output
    for node in lab.nodes:
        assert on(lab, node, "systemctl is-active kubelet")[1].strip() != "active", node.name
        assert on(lab, node, "test -e /etc/kubernetes")[0] != 0, node.name
        assert on(lab, node, "sudo iptables-save | grep -c KUBE-")[1].strip() == "0", node.name
        assert on(lab, node, "ip link show flannel.1")[0] != 0, node.name
    provision(lab)
    wait_for_ready_nodes(lab)
