"""Rules that span fields of a lab spec: what kubeadm, the API server, etcd or the network
would refuse later, or that would doom the lab, found before anything is created.

Each rule adds its problems to a :class:`Problems`; none raises, so all are reported at once.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from toolkit import constants
from toolkit.lab.model import Network, Node, Role
from toolkit.lab.schema import DEFAULT_API_PORT, NODE_MINIMUMS, Problems

# What else listens on a control plane, where haproxy binds api_endpoint.port on every
# address (kubeadm's constants and the components' defaults; etcd's only when stacked).
CONTROL_PLANE_PORTS = {
    22: "sshd",
    10248: "the kubelet's healthz",
    10249: "kube-proxy's metrics",
    10250: "the kubelet",
    10256: "kube-proxy's healthz",
    constants.CONTROLLER_MANAGER_PORT: "kube-controller-manager",
    constants.SCHEDULER_PORT: "kube-scheduler",
    constants.CLOUD_CONTROLLER_MANAGER_PORT: "the cloud-controller-manager (labs with a cloud)",
}
STACKED_ETCD_PORTS = {
    2379: "etcd's clients",
    2380: "etcd's peers",
    constants.ETCD_METRICS_PORT: "etcd's metrics",
}
# The API server's default --service-node-port-range: kube-proxy DNATs a NodePort on every
# local address, the VIP included, before haproxy sees the connection.
NODE_PORTS = range(30000, 32768)
# kube-controller-manager's per-node Pod range (--node-cidr-mask-size, IPv4 default);
# kubeadm refuses a pod subnet smaller than it or more than 16 bits larger.
NODE_CIDR_PREFIX = 24
MAX_POD_CIDR_BITS = 16
# The API server keeps at most 20 host bits of Service range (/12); kubeadm gives the
# kubernetes Service the first address and the cluster DNS the tenth.
MAX_SERVICE_HOST_BITS = 20
DNS_SERVICE_INDEX = 10
# The runtime of every control plane: see check_control_plane_runtime.
CONTROL_PLANE_RUNTIME = "containerd"
# kubeadm's preflight minimums for a control plane (ControlPlaneNumCPU, ControlPlaneMem).
CONTROL_PLANE_MINIMUMS = {"cpus": 2, "memory_mb": 1700}
# What a message suggests instead of an unusable range, per key of network:.
EXAMPLE_RANGES = {
    "subnet": "172.30.2.0/24",
    "pod_cidr": "10.244.0.0/16",
    "service_cidr": "10.96.0.0/16",
}
# Ranges whose addresses can never be a node's, a Pod's or a Service's: the kubelet
# refuses such a node-ip, and none of them is unicast routed between hosts.
UNUSABLE_RANGES = {
    ipaddress.IPv4Network("127.0.0.0/8"): "loopback",
    ipaddress.IPv4Network("169.254.0.0/16"): "link-local",
    ipaddress.IPv4Network("224.0.0.0/4"): "multicast",
}


def check_lab(
    topology: str | None,
    network: Network | None,
    vip: ipaddress.IPv4Address | None,
    port: int,
    nodes: list[tuple[Node, str]],
    problems: Problems,
    existing: bool = False,
) -> None:
    """The rules across the whole spec, given what of it could be read (None: unusable).
    ``existing``: the hosts are not k8slab's, so no address is reserved for a gateway."""
    _check_topology(topology, nodes, problems)
    _check_addresses(network, vip, nodes, problems, existing)
    _check_api_port(port, topology, problems)
    _check_pod_ranges(network, nodes, problems)


def check_ranges(ranges: dict[str, ipaddress.IPv4Network], problems: Problems) -> None:
    """The network's ranges (those that parsed, by key): usable, of a size kubeadm and the
    API server accept, and disjoint."""
    subnet = ranges.get("subnet")
    if subnet is not None and subnet.prefixlen > 29:
        problems.add("network.subnet", f"{subnet} is too small for a lab; use a /24")
    for key, network in ranges.items():
        for unusable, kind in UNUSABLE_RANGES.items():
            if network.overlaps(unusable):
                problems.add(
                    f"network.{key}",
                    f"{network} overlaps the {kind} range {unusable}, whose addresses cannot "
                    f"be a node's, a Pod's or a Service's; use a private range such as "
                    f"{EXAMPLE_RANGES[key]}",
                )
    _check_range_sizes(ranges, problems)
    names = list(ranges)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            if ranges[first].overlaps(ranges[second]):
                problems.add(
                    f"network.{second}",
                    f"{ranges[second]} overlaps network.{first} {ranges[first]}; "
                    "the lab network, Pod and Service ranges must be disjoint",
                )


def check_control_plane_minimums(
    values: dict[str, Any], resources: dict[str, int], where: str, problems: Problems
) -> None:
    """kubeadm's preflight refuses a control plane below its CPU and memory minimums.

    ``values``: the node's own keys; ``resources``: what it gets, node_defaults included.
    """
    for key, minimum in CONTROL_PLANE_MINIMUMS.items():
        value = resources[key]
        if not NODE_MINIMUMS[key] <= value < minimum:  # below: check_minimums said so
            continue
        source = "" if key in values else " (from node_defaults)"  # the built-in ones suffice
        problems.add(
            f"{where}.{key}",
            f"is {value}{source}; kubeadm's preflight wants at least {minimum} on a control "
            f"plane; set {key}: {minimum} or more",
        )


def check_control_plane_runtime(runtime: str, own: bool, where: str, problems: Problems) -> None:
    """A control plane runs containerd: the etcd restore and the drills stop, start and pin
    its static Pods through containerd's crictl socket and ctr (toolkit/etcd/)."""
    if runtime == CONTROL_PLANE_RUNTIME:
        return
    source = "" if own else " (from the top-level container_runtime)"
    problems.add(
        f"{where}.container_runtime",
        f"is {runtime!r}{source}; control planes run {CONTROL_PLANE_RUNTIME}, which the etcd "
        f"restore and drills drive; give {runtime!r} to workers instead (container_runtime on "
        f"each worker, or set it on the control planes to {CONTROL_PLANE_RUNTIME!r})",
    )


def _check_range_sizes(ranges: dict[str, ipaddress.IPv4Network], problems: Problems) -> None:
    """What kubeadm and the API server refuse of the Pod and Service ranges' sizes."""
    pods = ranges.get("pod_cidr")
    if pods is not None and pods.prefixlen > NODE_CIDR_PREFIX:
        problems.add(
            "network.pod_cidr",
            f"{pods} is smaller than the /{NODE_CIDR_PREFIX} Pod range that "
            "kube-controller-manager gives each node (kubeadm refuses it); use a larger "
            "range, e.g. a /16",
        )
    elif pods is not None and NODE_CIDR_PREFIX - pods.prefixlen > MAX_POD_CIDR_BITS:
        problems.add(
            "network.pod_cidr",
            f"{pods} is larger than kubeadm allows: at most {MAX_POD_CIDR_BITS} bits more than "
            f"the per-node /{NODE_CIDR_PREFIX}, so /{NODE_CIDR_PREFIX - MAX_POD_CIDR_BITS} or "
            "smaller; use e.g. a /16",
        )
    services = ranges.get("service_cidr")
    if services is None:
        return
    if 32 - services.prefixlen > MAX_SERVICE_HOST_BITS:
        problems.add(
            "network.service_cidr",
            f"{services} is larger than the API server allows (at most "
            f"{MAX_SERVICE_HOST_BITS} host bits: /{32 - MAX_SERVICE_HOST_BITS} or smaller); "
            "use e.g. a /16",
        )
    elif services.num_addresses <= DNS_SERVICE_INDEX + 1:
        problems.add(
            "network.service_cidr",
            f"{services} has no room for the cluster DNS Service, which kubeadm puts on the "
            f"range's address number {DNS_SERVICE_INDEX}; use a /28 or larger, e.g. a /16",
        )


def _check_topology(
    topology: str | None, nodes: list[tuple[Node, str]], problems: Problems
) -> None:
    counts = {role: sum(1 for node, _ in nodes if node.role == role) for role in Role}
    control_planes, etcd = counts[Role.CONTROL_PLANE], counts[Role.ETCD]
    if control_planes == 0:
        problems.add("nodes.control_planes", "is empty; a cluster needs at least one control plane")
    if topology == "external":
        if etcd == 0:
            problems.add(
                "nodes.etcd",
                "is empty but etcd_topology is 'external'; list the etcd hosts "
                "or set etcd_topology: stacked",
            )
        elif etcd % 2 == 0:
            problems.add(
                "nodes.etcd",
                f"has {etcd} members; etcd needs an odd number (1, 3 or 5) to keep quorum",
            )
    elif topology == "stacked":
        if etcd:
            problems.add(
                "nodes.etcd",
                "lists etcd hosts but etcd_topology is 'stacked' (etcd runs on the control "
                "planes); remove them or set etcd_topology: external",
            )
        if control_planes and control_planes % 2 == 0:
            problems.add(
                "nodes.control_planes",
                f"has {control_planes} nodes, so stacked etcd would have an even "
                "member count; use an odd number (1, 3 or 5)",
            )


def _check_addresses(
    network: Network | None,
    vip: ipaddress.IPv4Address | None,
    nodes: list[tuple[Node, str]],
    problems: Problems,
    existing: bool,
) -> None:
    seen_names: dict[str, str] = {}
    seen_addresses: dict[ipaddress.IPv4Address, str] = {}
    for node, where in nodes:
        if node.name in seen_names:
            problems.add(
                f"{where}.name",
                f"{node.name!r} is already used by {seen_names[node.name]}; names must be unique",
            )
        else:
            seen_names[node.name] = where
        if node.address in seen_addresses:
            problems.add(
                f"{where}.address",
                f"{node.address} is already used by {seen_addresses[node.address]}; "
                "give each node its own",
            )
        else:
            seen_addresses[node.address] = where
        if network is not None:
            _check_in_subnet(node.address, network, f"{where}.address", problems, existing)
    if vip is None or network is None:
        return
    _check_in_subnet(vip, network, "api_endpoint.vip", problems, existing)
    if vip in seen_addresses:
        problems.add(
            "api_endpoint.vip",
            f"{vip} is the address of {seen_addresses[vip]}; the VIP must be a free address",
        )


def _check_api_port(port: int, topology: str | None, problems: Problems) -> None:
    """haproxy binds the port on every address of every control plane: it must be free."""
    where, fix = "api_endpoint.port", f"use another, e.g. {DEFAULT_API_PORT}"
    taken = CONTROL_PLANE_PORTS | (STACKED_ETCD_PORTS if topology == "stacked" else {})
    if port == constants.APISERVER_PORT:
        problems.add(
            where,
            f"{port} is the port every API server binds on its control plane, where the load "
            f"balancer also runs; {fix}",
        )
    elif port in taken:
        problems.add(
            where,
            f"{port} is the port of {taken[port]} on every control plane, where the load "
            f"balancer binds it too; {fix}",
        )
    elif port in NODE_PORTS:
        problems.add(
            where,
            f"{port} is in the NodePort range {NODE_PORTS.start}-{NODE_PORTS.stop - 1}: a "
            "Service given that port would take the VIP's connections (kube-proxy answers on "
            f"every node address); {fix}",
        )


def _check_pod_ranges(
    network: Network | None, nodes: list[tuple[Node, str]], problems: Problems
) -> None:
    """Every Kubernetes node (etcd hosts are not) needs its own per-node Pod range."""
    if network is None or network.pod_cidr.prefixlen > NODE_CIDR_PREFIX:
        return
    count = sum(1 for node, _ in nodes if node.role != Role.ETCD)
    ranges = 2 ** (NODE_CIDR_PREFIX - network.pod_cidr.prefixlen)
    if count > ranges:
        needed = NODE_CIDR_PREFIX - (count - 1).bit_length()
        problems.add(
            "network.pod_cidr",
            f"{network.pod_cidr} holds {ranges} per-node Pod range{'s' if ranges > 1 else ''} "
            f"(/{NODE_CIDR_PREFIX} each) but the lab has {count} Kubernetes nodes, so "
            f"kube-controller-manager cannot give every node one; use a /{needed} or larger",
        )


def _check_in_subnet(
    address: ipaddress.IPv4Address, network: Network, where: str, problems: Problems, existing: bool
) -> None:
    subnet = network.subnet
    if address not in subnet:
        problems.add(where, f"{address} is outside the lab subnet {subnet}; pick one inside it")
    elif address in (subnet.network_address, subnet.broadcast_address):
        problems.add(where, f"{address} is the network or broadcast address of {subnet}")
    elif address == network.gateway and not existing:
        problems.add(
            where,
            f"{address} is the lab network's gateway (its first address, held by the host); "
            "pick another",
        )
