"""The lab's cloud-controller-manager (a lab whose cloud_provider is k8slab; the group is
not run for another): every Node initialised by it as the spec says, providerID
``k8slab://<lab>/<node>``, the zone and region labels, the spec's address and name, no
uninitialized taint, each kubelet leaving its Node to it (--cloud-provider=external); the
manager running on every control plane, answering /healthz, one of them holding its leader
lease. How the objects are judged is toolkit.verify.cloud's (pure, unit-tested)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from toolkit import leases
from toolkit.constants import CLOUD_CONTROLLER_MANAGER_PORT
from toolkit.lab.spec import Lab, Node
from toolkit.verify import cloud, node_runtime
from toolkit.verify.checks import expect, registered
from toolkit.verify.cluster import Cluster, Run, eventually

MANAGER_TIMEOUT_S = 30
HEALTHZ = f"curl -sk --max-time 5 https://127.0.0.1:{CLOUD_CONTROLLER_MANAGER_PORT}/healthz"


def prefetch(lab: Lab, node: Node) -> list[str]:
    """The read-only commands this suite runs on a node (run ahead, all nodes at once)."""
    commands = [f"cat {node_runtime.KUBEADM_FLAGS}"] if node not in lab.etcd_hosts else []
    return commands + ([HEALTHZ] if node in lab.control_planes else [])


def test_node_initialised_by_the_cloud(
    lab: Lab, nodes_json: dict[str, Any], kube_node: Node
) -> None:
    node = registered(nodes_json, kube_node)
    problems = cloud.initialised_problems(lab, kube_node, node)
    expect(not problems, f"{kube_node.name}: {'; '.join(problems)}", json.dumps(node["spec"]))


def test_node_zone_and_region_from_the_spec(
    lab: Lab, nodes_json: dict[str, Any], kube_node: Node
) -> None:
    node = registered(nodes_json, kube_node)
    problems = cloud.topology_problems(lab, kube_node, node)
    labels = node["metadata"].get("labels", {})
    expect(not problems, f"{kube_node.name}: {'; '.join(problems)}", json.dumps(labels))


def test_node_addresses_from_the_spec(nodes_json: dict[str, Any], kube_node: Node) -> None:
    node = registered(nodes_json, kube_node)
    problems = cloud.address_problems(kube_node, node)
    addresses = node.get("status", {}).get("addresses")
    expect(not problems, f"{kube_node.name}: {'; '.join(problems)}", json.dumps(addresses))


def test_kubelet_leaves_its_node_to_the_cloud(cluster: Cluster, kube_node: Node) -> None:
    flags = cluster.run(kube_node, f"cat {node_runtime.KUBEADM_FLAGS}")
    found = node_runtime.kubeadm_flag(flags.output, "cloud-provider")
    expect(
        found == "external",
        f"{kube_node.name}'s kubelet runs with --cloud-provider={found!r}, not 'external'",
        flags.evidence,
    )


def test_cloud_controller_manager_running(lab: Lab, cluster: Cluster) -> None:
    def pods() -> list[dict[str, Any]]:
        run = cluster.kubectl(
            "get", "pods", "-n", cloud.NAMESPACE, "-l", f"k8s-app={cloud.NAME}", "-o", "json"
        )
        return json.loads(run.stdout)["items"] if run.ok else []

    ok, found = eventually(pods, lambda p: not cloud.running_problems(lab, p), MANAGER_TIMEOUT_S)
    problems = cloud.running_problems(lab, found)
    states = [
        (p["metadata"]["name"], p["spec"].get("nodeName"), p["status"].get("phase")) for p in found
    ]
    expect(ok, "; ".join(problems), f"kube-system Pods k8s-app={cloud.NAME}: {states}")


def test_cloud_controller_manager_healthy(cluster: Cluster, control_plane: Node) -> None:
    run = cluster.run_until(control_plane, HEALTHZ, lambda r: r.output == "ok", MANAGER_TIMEOUT_S)
    expect(
        run.output == "ok",
        f"the cloud-controller-manager on {control_plane.name} does not answer /healthz",
        run.evidence,
    )


def test_cloud_controller_manager_holds_its_lease(lab: Lab, cluster: Cluster) -> None:
    def lease() -> tuple[list[str], Run]:
        run = cluster.kubectl("get", "lease", "-n", cloud.NAMESPACE, cloud.NAME, "-o", "json")
        clock = cluster.run(cluster.first, "date -u +%Y-%m-%dT%H:%M:%S+00:00", fresh=True)
        if not run.ok or not clock.ok:
            return [f"no lease {cloud.NAMESPACE}/{cloud.NAME}" if not run.ok else "no clock"], run
        now = datetime.fromisoformat(clock.stdout.strip())
        planes = {n.name for n in lab.control_planes}
        return leases.problems(json.loads(run.stdout), planes, now.timestamp()), run

    ok, (problems, run) = eventually(lease, lambda found: not found[0], MANAGER_TIMEOUT_S)
    expect(
        ok, f"the leader lease {cloud.NAMESPACE}/{cloud.NAME}: {'; '.join(problems)}", run.evidence
    )
