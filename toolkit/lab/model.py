"""The typed model of a lab: what a valid lab spec becomes (``toolkit.lab.spec`` builds it)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from toolkit.bundle.addons import NAME as ADDONS_PART
from toolkit.bundle.metallb import NAME as LOAD_BALANCER_PART
from toolkit.constants import CLOUD_PROVIDERS, CRI_RUNTIMES
from toolkit.errors import SpecError

# The provider of hosts that k8slab did not make.
EXISTING = "existing"


class Role(StrEnum):
    """A node's role, spelled as its group under ``nodes:`` in the lab spec (so a value
    renders as it is written there: ``Role.CONTROL_PLANE == "control_planes"``)."""

    CONTROL_PLANE = "control_planes"
    ETCD = "etcd"
    WORKER = "workers"


@dataclass(frozen=True)
class Login:
    """How the toolkit logs in to a host it did not make (``provider: existing``): the user
    (who has sudo without a password), the private key and sshd's port."""

    user: str
    key: Path
    port: int = 22


@dataclass(frozen=True)
class Node:
    name: str
    role: Role
    address: ipaddress.IPv4Address
    # Hosts k8slab makes get these; on existing hosts they are what the host must have.
    cpus: int
    memory_mb: int
    container_runtime: str
    # The spec field its runtime comes from: its own, or the top-level one it inherits.
    runtime_field: str = field(default="container_runtime", compare=False)
    # Existing hosts only (None: a host k8slab makes, reached with the lab's own key pair).
    login: Login | None = None
    # The interface that carries the lab network, when the spec names it (existing hosts).
    interface: str | None = None
    # Its zone in the lab's cloud (a lab whose cloud_provider is k8slab); "" without one.
    zone: str = ""


@dataclass(frozen=True)
class HostPower:
    """The commands (argv, run on this machine, no shell) that stop and start a whole
    existing host, for the drills that take one down; ``{name}`` and ``{address}`` in an
    argument become the node's name and address."""

    stop: tuple[str, ...]
    start: tuple[str, ...]

    def argv(self, action: str, node: Node) -> list[str]:
        words = self.stop if action == "stop" else self.start
        return [word.format(name=node.name, address=node.address) for word in words]


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
class AddressRange:
    """A range of IPv4 addresses, first to last inclusive: one entry of a pool."""

    first: ipaddress.IPv4Address
    last: ipaddress.IPv4Address

    def __contains__(self, address: object) -> bool:
        return isinstance(address, ipaddress.IPv4Address) and self.first <= address <= self.last

    def __str__(self) -> str:
        """As MetalLB's IPAddressPool takes it."""
        return f"{self.first}-{self.last}"

    def overlaps(self, other: AddressRange) -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass(frozen=True)
class LoadBalancer:
    """LoadBalancer Services (the spec's ``load_balancer``): MetalLB in L2 mode hands them
    addresses from ``pool``, a part of the lab subnet nothing else uses."""

    pool: tuple[AddressRange, ...]

    def __contains__(self, address: object) -> bool:
        return any(address in entry for entry in self.pool)


@dataclass(frozen=True)
class PolicyAgent:
    """What enforces NetworkPolicy in a lab: a program, the CNI it chains after (empty when
    it is the lab's CNI itself), and the optional bundle part it comes from."""

    name: str
    chained_after: str
    bundle_part: str


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
    # Existing hosts only: how to stop and start one (None: not configured).
    host_power: HostPower | None = None
    load_balancer: LoadBalancer | None = None
    # The cluster add-ons it asks for (toolkit/lab/addons.py), in the catalogue's order.
    addons: tuple[str, ...] = ()
    cloud_provider: str = "none"
    network_policy: bool = False

    @property
    def existing(self) -> bool:
        """Its hosts were made outside k8slab: reached with the spec's logins, never
        created or deleted (``provider: existing``)."""
        return self.provider == EXISTING

    @property
    def region(self) -> str:
        """The lab's region in its cloud: the lab itself (one lab, one region; its nodes'
        zones are inside it)."""
        return self.name

    @property
    def policy_agent(self) -> PolicyAgent | None:
        """What enforces NetworkPolicy: nothing (flannel and bridge do not), or, with
        ``network_policy: true``, Cilium chained after the lab's CNI (generic-veth)."""
        if not self.network_policy:
            return None
        return PolicyAgent("cilium", chained_after=self.cni, bundle_part="cilium")

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

    @property
    def needed_parts(self) -> dict[str, str]:
        """Every optional bundle part the lab needs, by name, with what in its spec asks for
        it (the refusal of a lab whose bundle lacks the part says so)."""
        needs: dict[str, str] = {}
        for part, nodes in self.bundle_parts.items():
            fields = dict.fromkeys(f"{n.runtime_field} is {n.container_runtime!r}" for n in nodes)
            names = ("node " if len(nodes) == 1 else "nodes ") + ", ".join(n.name for n in nodes)
            needs[part] = f"{', '.join(fields)} ({names})"
        if self.policy_agent is not None:
            needs[self.policy_agent.bundle_part] = "network_policy is true"
        if self.load_balancer is not None:
            needs[LOAD_BALANCER_PART] = "load_balancer.pool is set (LoadBalancer Services)"
        if self.addons:
            needs[ADDONS_PART] = f"addons is [{', '.join(self.addons)}]"
        if CLOUD_PROVIDERS[self.cloud_provider]:
            needs[CLOUD_PROVIDERS[self.cloud_provider]] = (
                f"cloud_provider is {self.cloud_provider!r}"
            )
        return dict(sorted(needs.items()))

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise SpecError(
            f"lab {self.name!r} has no node {name!r}; its nodes are: "
            + ", ".join(n.name for n in self.nodes)
        )
