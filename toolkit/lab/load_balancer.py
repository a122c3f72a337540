"""The spec's ``load_balancer``: the pool of lab-subnet addresses that MetalLB gives
LoadBalancer Services and announces by ARP (docs/labs.md#loadbalancer-services).

Every entry is checked at once against everything else in the lab that holds an address:
an address the pool shares with a node, the gateway or the API's VIP would be announced
by two hosts at once, and one in the Pod or Service ranges would never reach the lab
network.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from toolkit.lab.model import AddressRange, LoadBalancer, Network, Node
from toolkit.lab.schema import LOAD_BALANCER_KEYS, Problems, check_mapping

WHERE = "load_balancer.pool"


def parse_load_balancer(
    raw: dict[str, Any] | None,
    network: Network | None,
    vip: ipaddress.IPv4Address | None,
    nodes: list[tuple[Node, str]],
    problems: Problems,
) -> LoadBalancer | None:
    """The load balancer a spec declares (None: none), its problems added to ``problems``."""
    if raw is None:
        return None
    values = check_mapping(raw, LOAD_BALANCER_KEYS, "load_balancer", problems)
    if "pool" not in values:
        return None
    if not values["pool"]:
        problems.add(WHERE, f"is empty; {LOAD_BALANCER_KEYS['pool'].hint}")
        return None
    pool: list[AddressRange] = []
    for index, entry in enumerate(values["pool"]):
        where = f"{WHERE}[{index}]"
        parsed = _parse_entry(entry, where, problems)
        if parsed is None:
            continue
        for other_index, other in enumerate(pool):
            if parsed.overlaps(other):
                problems.add(where, f"{parsed} overlaps {WHERE}[{other_index}] {other}")
        if network is not None:
            _check_clear(parsed, network, vip, nodes, where, problems)
        pool.append(parsed)
    return LoadBalancer(tuple(pool))


def _parse_entry(entry: object, where: str, problems: Problems) -> AddressRange | None:
    if not isinstance(entry, str):
        problems.add(where, f"is {type(entry).__name__} {entry!r}, expected an address range")
        return None
    text = entry.strip()
    try:
        if "-" in text:
            first_text, _, last_text = text.partition("-")
            first = ipaddress.IPv4Address(first_text.strip())
            last = ipaddress.IPv4Address(last_text.strip())
            if first > last:
                problems.add(where, f"{entry!r} ends before it starts; write first-last")
                return None
            return AddressRange(first, last)
        network = ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        problems.add(
            where,
            f"{entry!r} is not an IPv4 range ({exc}); write a CIDR with no host bits set "
            "(172.30.2.240/29) or first-last (172.30.2.240-172.30.2.250)",
        )
        return None
    return AddressRange(network.network_address, network.broadcast_address)


def _check_clear(
    entry: AddressRange,
    network: Network,
    vip: ipaddress.IPv4Address | None,
    nodes: list[tuple[Node, str]],
    where: str,
    problems: Problems,
) -> None:
    """Inside the lab subnet, and clear of every address something else in the lab has."""
    subnet = network.subnet
    if entry.first not in subnet or entry.last not in subnet:
        problems.add(
            where,
            f"{entry} is not inside the lab subnet {subnet}: MetalLB answers ARP for its "
            "addresses on the lab network only; pick a range inside it",
        )
        return
    taken = {
        subnet.network_address: f"the network address of {subnet}",
        subnet.broadcast_address: f"the broadcast address of {subnet}",
        network.gateway: "the lab network's gateway, which the host holds",
    }
    if vip is not None:
        taken[vip] = "api_endpoint.vip, the API's virtual IP"
    for node, node_where in nodes:
        taken.setdefault(node.address, f"{node.name}'s address, {node_where}.address")
    clashes = [f"{address}, {what}" for address, what in sorted(taken.items()) if address in entry]
    if clashes:
        problems.add(
            where,
            f"{entry} holds {'; '.join(clashes)}; a Service's address must be one nothing "
            "else in the lab uses: pick a range clear of them",
        )
    for key in ("pod_cidr", "service_cidr"):
        cluster_range: ipaddress.IPv4Network = getattr(network, key)
        if entry.first <= cluster_range.broadcast_address and (
            cluster_range.network_address <= entry.last
        ):
            problems.add(
                where,
                f"{entry} overlaps network.{key} {cluster_range}; the pool must be lab "
                "addresses only",
            )
