"""The typed model of a lab: what a valid lab spec becomes (``toolkit.lab.spec`` builds it)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from toolkit.constants import CRI_RUNTIMES
from toolkit.errors import SpecError


class Role(StrEnum):
    """A node's role, spelled as its group under ``nodes:`` in the lab spec (so a value
    renders as it is written there: ``Role.CONTROL_PLANE == "control_planes"``)."""

    CONTROL_PLANE = "control_planes"
    ETCD = "etcd"
    WORKER = "workers"


@dataclass(frozen=True)
class Node:
    name: str
    role: Role
    address: ipaddress.IPv4Address
    cpus: int
    memory_mb: int
    container_runtime: str
    # The spec field its runtime comes from: its own, or the top-level one it inherits.
    runtime_field: str = field(default="container_runtime", compare=False)


@dataclass(frozen=True)
class Network:
    subnet: ipaddress.IPv4Network
    pod_cidr: ipaddress.IPv4Network
    service_cidr: ipaddress.IPv4Network

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        """The first address of the subnet: the engine's bridge (or the VM host) holds it."""
        return self.subnet.network_address + 1


@dataclass(frozen=True)
class Lab:
    name: str
    provider: str
    kubernetes_version: str
    etcd_topology: str
    container_runtime: str
    cni: str
    network: Network
    api_vip: ipaddress.IPv4Address
    api_port: int
    nodes: tuple[Node, ...]
    source: Path = field(compare=False)

    def by_role(self, role: Role) -> list[Node]:
        return [node for node in self.nodes if node.role == role]

    @property
    def control_planes(self) -> list[Node]:
        return self.by_role(Role.CONTROL_PLANE)

    @property
    def etcd_hosts(self) -> list[Node]:
        return self.by_role(Role.ETCD)

    @property
    def workers(self) -> list[Node]:
        return self.by_role(Role.WORKER)

    @property
    def etcd_members(self) -> list[Node]:
        """The nodes that run etcd: control planes when stacked, etcd hosts when external."""
        return self.control_planes if self.etcd_topology == "stacked" else self.etcd_hosts

    @property
    def bundle_parts(self) -> dict[str, list[Node]]:
        """The optional bundle parts its Kubernetes nodes' runtimes need, by name, each with
        the nodes that need it (etcd hosts run no container runtime)."""
        needs: dict[str, list[Node]] = {}
        for node in self.control_planes + self.workers:
            part = CRI_RUNTIMES[node.container_runtime].bundle_part
            if part:
                needs.setdefault(part, []).append(node)
        return dict(sorted(needs.items()))

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise SpecError(
            f"lab {self.name!r} has no node {name!r}; its nodes are: "
            + ", ".join(n.name for n in self.nodes)
        )
