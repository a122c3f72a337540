"""How the cloud-provider checks judge what they read: a Node the lab's
cloud-controller-manager initialised, its Pods, its leader lease (toolkit.verify.cloud)."""

from __future__ import annotations

from typing import Any

import pytest

from toolkit.lab.spec import Lab, load_lab
from toolkit.verify import cloud


@pytest.fixture
def lab() -> Lab:
    return load_lab("single")  # cp1 in zone-a, w1 in zone-b


def initialised(lab: Lab, name: str) -> dict[str, Any]:
    node = lab.node(name)
    return {
        "metadata": {
            "name": name,
            "labels": {cloud.ZONE_LABEL: node.zone, cloud.REGION_LABEL: "single"},
        },
        "spec": {
            "providerID": f"k8slab://single/{name}",
            "taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
        },
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": str(node.address)},
                {"type": "Hostname", "address": name},
            ]
        },
    }


def test_a_node_initialised_as_the_spec_says_passes(lab: Lab) -> None:
    for node in lab.nodes:
        obj = initialised(lab, node.name)
        assert cloud.initialised_problems(lab, node, obj) == []
        assert cloud.topology_problems(lab, node, obj) == []
        assert cloud.address_problems(node, obj) == []


def test_an_uninitialised_node_fails(lab: Lab) -> None:
    node = lab.node("w1")
    obj = initialised(lab, "w1")
    obj["spec"] = {"taints": [{"key": cloud.UNINITIALIZED_TAINT, "effect": "NoSchedule"}]}
    assert cloud.initialised_problems(lab, node, obj) == [
        "providerID is '', not 'k8slab://single/w1'",
        f"still tainted {cloud.UNINITIALIZED_TAINT}",
    ]
    obj["spec"] = {"providerID": "k8slab://other/w1", "taints": [{"key": cloud.SHUTDOWN_TAINT}]}
    assert len(cloud.initialised_problems(lab, node, obj)) == 2


def test_a_zone_or_region_other_than_the_spec_s_fails(lab: Lab) -> None:
    node = lab.node("w1")
    obj = initialised(lab, "w1")
    obj["metadata"]["labels"][cloud.ZONE_LABEL] = "zone-a"
    del obj["metadata"]["labels"][cloud.REGION_LABEL]
    assert cloud.topology_problems(lab, node, obj) == [
        "topology.kubernetes.io/zone='zone-a', the spec says 'zone-b'",
        "topology.kubernetes.io/region=None, the spec says 'single'",
    ]


def test_addresses_other_than_the_spec_s_fail(lab: Lab) -> None:
    node = lab.node("w1")
    obj = initialised(lab, "w1")
    obj["status"]["addresses"].append({"type": "InternalIP", "address": "172.17.0.5"})
    assert cloud.address_problems(node, obj) == [
        "InternalIP is ['172.30.1.21', '172.17.0.5'], the spec says ['172.30.1.21']"
    ]
    obj["status"]["addresses"] = []
    assert len(cloud.address_problems(node, obj)) == 2


def pod(name: str, node: str, phase: str = "Running", ready: bool = True) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"nodeName": node},
        "status": {"phase": phase, "containerStatuses": [{"ready": ready}]},
    }


def test_one_ready_manager_on_every_control_plane_and_none_elsewhere(lab: Lab) -> None:
    assert cloud.running_problems(lab, [pod("ccm-a", "cp1")]) == []
    assert cloud.running_problems(lab, []) == ["cp1 runs 0 ready manager Pods, not 1"]
    assert cloud.running_problems(lab, [pod("ccm-a", "cp1", ready=False)]) != []
    assert cloud.running_problems(lab, [pod("ccm-a", "cp1", "Pending")]) != []
    assert cloud.running_problems(lab, [pod("ccm-a", "cp1"), pod("ccm-b", "w1")]) == [
        "w1 is not a control plane and runs ['ccm-b']"
    ]
