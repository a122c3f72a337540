"""What the cloud-provider checks read from the cluster, judged against the spec: a Node
as the lab's cloud-controller-manager should have initialised it, and its DaemonSet (its
leader lease is judged by toolkit.leases). Pure functions of the objects' JSON
(unit-tested); the suite fetches them."""

from __future__ import annotations

from typing import Any

from toolkit.lab.spec import Lab, Node

PROVIDER = "k8slab"
NAMESPACE = "kube-system"
NAME = "cloud-controller-manager"  # its DaemonSet, its Pods' k8s-app label and its lease
UNINITIALIZED_TAINT = "node.cloudprovider.kubernetes.io/uninitialized"
SHUTDOWN_TAINT = "node.cloudprovider.kubernetes.io/shutdown"
ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"


def provider_id(lab: Lab, node: Node) -> str:
    return f"{PROVIDER}://{lab.name}/{node.name}"


def initialised_problems(lab: Lab, node: Node, obj: dict[str, Any]) -> list[str]:
    """Whether the manager initialised the Node: its providerID, the taint gone."""
    problems = []
    found = obj.get("spec", {}).get("providerID", "")
    if found != provider_id(lab, node):
        problems.append(f"providerID is {found!r}, not {provider_id(lab, node)!r}")
    taints = [t.get("key") for t in obj.get("spec", {}).get("taints") or []]
    for taint in (UNINITIALIZED_TAINT, SHUTDOWN_TAINT):
        if taint in taints:
            problems.append(f"still tainted {taint}")
    return problems


def topology_problems(lab: Lab, node: Node, obj: dict[str, Any]) -> list[str]:
    """The zone and region labels the spec gives the node."""
    labels = obj.get("metadata", {}).get("labels") or {}
    wanted = {ZONE_LABEL: node.zone, REGION_LABEL: lab.region}
    return [
        f"{key}={labels.get(key)!r}, the spec says {value!r}"
        for key, value in wanted.items()
        if labels.get(key) != value
    ]


def address_problems(node: Node, obj: dict[str, Any]) -> list[str]:
    """The Node's addresses are the spec's: its address the only InternalIP, its name the
    Hostname."""
    addresses = obj.get("status", {}).get("addresses") or []
    by_type: dict[str, list[str]] = {}
    for entry in addresses:
        by_type.setdefault(entry.get("type", ""), []).append(entry.get("address", ""))
    wanted = {"InternalIP": [str(node.address)], "Hostname": [node.name]}
    return [
        f"{kind} is {by_type.get(kind, [])}, the spec says {value}"
        for kind, value in wanted.items()
        if by_type.get(kind, []) != value
    ]


def running_problems(lab: Lab, pods: list[dict[str, Any]]) -> list[str]:
    """One Running, ready manager Pod on every control plane, none elsewhere."""
    planes = {n.name for n in lab.control_planes}
    where: dict[str, list[str]] = {}
    problems = []
    for pod in pods:
        node = pod.get("spec", {}).get("nodeName", "")
        statuses = pod.get("status", {}).get("containerStatuses") or []
        ready = bool(statuses) and all(s.get("ready") for s in statuses)
        if pod.get("status", {}).get("phase") == "Running" and ready:
            where.setdefault(node, []).append(pod["metadata"]["name"])
    for name in sorted(planes):
        if len(where.get(name, [])) != 1:
            problems.append(f"{name} runs {len(where.get(name, []))} ready manager Pods, not 1")
    problems += [
        f"{name} is not a control plane and runs {where[name]}" for name in set(where) - planes
    ]
    return problems
