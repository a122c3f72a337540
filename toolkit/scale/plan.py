"""What a ``k8slab scale`` asks for, checked as a whole before anything changes: the names
free and valid, each address inside the lab subnet and free (or the next free one chosen),
the nodes to remove present, and stacked etcd's member count odd and never below one.
The plan holds the lab before and after, and the spec text that describes the after."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from toolkit.errors import K8slabError
from toolkit.lab.model import Lab, Node, Role
from toolkit.lab.schema import display_path
from toolkit.lab.spec import HOSTNAME_RE
from toolkit.scale.spec_edit import NewNode, edited


class ScaleError(K8slabError):
    """A scale was refused before it began, or failed on the way (the message says how to
    go on)."""


@dataclass(frozen=True)
class ScaleRequest:
    """The command line's ask: nodes to add (with an address each, or none at all) or
    nodes to remove."""

    add_workers: tuple[str, ...] = ()
    add_control_planes: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()

    @property
    def adds(self) -> list[tuple[Role, str]]:
        return [(Role.CONTROL_PLANE, n) for n in self.add_control_planes] + [
            (Role.WORKER, n) for n in self.add_workers
        ]


@dataclass(frozen=True)
class ScalePlan:
    before: Lab
    after: Lab
    text_before: str
    text_after: str
    added: tuple[Node, ...] = ()
    removed: tuple[Node, ...] = ()
    # The added nodes whose address the plan chose (none was given).
    chosen: tuple[str, ...] = field(default=())

    @property
    def kind(self) -> str:
        return "add" if self.added else "remove"

    def describe(self) -> str:
        nodes = self.added or self.removed
        what = ", ".join(
            f"{n.name} ({n.role.value[:-1].replace('_', ' ')}, {n.address})" for n in nodes
        )
        return f"{'add' if self.added else 'remove'} {what}"


def members_text(count: int) -> str:
    """``3 members (quorum 2, 1 may fail)``: etcd's arithmetic for a member count."""
    plural = "s" if count != 1 else ""
    return f"{count} member{plural} (quorum {count // 2 + 1}, {(count - 1) // 2} may fail)"


def quorum_problem(lab: Lab, change: int) -> str:
    """Why changing the number of control planes by ``change`` is refused ("" if it is not)."""
    now = len(lab.control_planes)
    then = now + change
    if then < 1:
        return (
            f"a cluster needs at least one control plane; {lab.name} has {now}, and removing "
            f"{-change} would leave {then}"
        )
    if lab.etcd_topology != "stacked" or then % 2 == 1:
        return ""
    step, target = ("add", now + 2) if change > 0 else ("remove", now - 2)
    return (
        f"stacked etcd runs one member per control plane, so {now} control planes are "
        f"{members_text(now)} and {then} would be {members_text(then)}: an even count "
        "tolerates no more failures than the odd count below it, yet needs more members to "
        f"agree; {step} control planes two at a time, so that the count stays odd "
        f"({now} to {target})"
    )


def _next_free(lab: Lab, role: Role, taken: set[ipaddress.IPv4Address]) -> ipaddress.IPv4Address:
    """The first free address after the highest of the role's nodes, else the lowest free."""
    subnet = lab.network.subnet
    usable = [a for a in subnet.hosts() if a not in taken]
    own = [n.address for n in lab.by_role(role)]
    after = [a for a in usable if own and a > max(own)]
    if not (after or usable):
        raise ScaleError(f"lab {lab.name}: the subnet {subnet} has no free address left")
    return (after or usable)[0]


def _address_problem(
    lab: Lab, text: str, taken: dict[ipaddress.IPv4Address, str]
) -> tuple[ipaddress.IPv4Address | None, str]:
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        return None, f"{text!r} is not an IPv4 address"
    subnet = lab.network.subnet
    if address not in subnet:
        return None, f"{address} is outside the lab subnet {subnet}; pick one inside it"
    if address in (subnet.network_address, subnet.broadcast_address):
        return None, f"{address} is the network or broadcast address of {subnet}"
    if address in taken:
        return None, f"{address} is taken by {taken[address]}; pick a free one or give none"
    return address, ""


def next_zone(lab: Lab, adding: list[NewNode]) -> str:
    """The zone a node added to a lab with a cloud is put in: the one with the fewest
    Kubernetes nodes, counting those being added (the first such in the spec's order), as
    a cloud's autoscaler balances its zones; "" in a lab without a cloud."""
    if lab.cloud_provider == "none":
        return ""
    zones = [n.zone for n in lab.control_planes + lab.workers] + [n.zone for n in adding]
    return min(dict.fromkeys(zones), key=zones.count)


def plan(lab: Lab, text: str, request: ScaleRequest) -> ScalePlan:
    """Check the whole request against the lab (every problem at once) and make the plan."""
    where = display_path(lab.source)
    if lab.existing:
        raise ScaleError(
            f"lab {lab.name}'s hosts were not made by k8slab (provider: existing), and scale "
            "makes and destroys hosts; it is refused there (nothing was changed)"
        )
    adds, remove = request.adds, list(request.remove)
    if not adds and not remove:
        raise ScaleError("nothing to do: give --add-worker, --add-control-plane or --remove")
    if adds and remove:
        raise ScaleError(
            "adding and removing nodes are two scales: run one, then the other "
            "(each is journaled and resumed on its own)"
        )
    if request.addresses and len(request.addresses) != len(adds):
        raise ScaleError(
            f"--address given {len(request.addresses)} times for {len(adds)} added nodes; "
            "give one per added node (control planes first, then workers, each in the order "
            "given), or none (the next free ones are chosen)"
        )
    problems: list[str] = []
    lab_names = {node.name for node in lab.nodes}
    names = set(lab_names)
    taken: dict[ipaddress.IPv4Address, str] = {n.address: f"node {n.name}" for n in lab.nodes}
    taken[lab.api_vip] = "the API's virtual IP (api_endpoint.vip)"
    taken[lab.network.gateway] = "the lab network's gateway"
    # MetalLB hands these to LoadBalancer Services: never a node's.
    for entry in lab.load_balancer.pool if lab.load_balancer else ():
        for number in range(int(entry.first), int(entry.last) + 1):
            taken.setdefault(ipaddress.IPv4Address(number), f"load_balancer.pool ({entry})")
    new: list[NewNode] = []
    chosen: list[str] = []
    for index, (role, name) in enumerate(adds):
        if not HOSTNAME_RE.fullmatch(name):
            problems.append(
                f"{name!r} is not a valid node name; use lowercase letters, digits and '-' "
                "(at most 63, not starting or ending with '-')"
            )
            continue
        if name in names:
            problems.append(
                f"{name!r} is already a node of {lab.name} ({where}); pick another name"
                if name in lab_names
                else f"{name!r} is asked for twice"
            )
            continue
        names.add(name)
        if request.addresses:
            address, problem = _address_problem(lab, request.addresses[index], taken)
            if address is None:
                problems.append(f"--address for {name}: {problem}")
                continue
        else:
            address = _next_free(lab, role, set(taken))
            chosen.append(name)
        taken[address] = f"the new node {name}"
        new.append(NewNode(role, name, address, next_zone(lab, new)))
    for name in dict.fromkeys(remove):
        if name not in lab_names:
            problems.append(
                f"{lab.name} has no node {name!r} ({where}); its nodes are: "
                + ", ".join(n.name for n in lab.nodes)
            )
        elif lab.node(name).role == Role.ETCD:
            problems.append(
                f"{name} is an external etcd host; `k8slab scale` adds and removes "
                "Kubernetes nodes (control planes and workers) only"
            )
    change = sum(1 for n in new if n.role == Role.CONTROL_PLANE) - sum(
        1
        for n in dict.fromkeys(remove)
        if n in lab_names and lab.node(n).role == Role.CONTROL_PLANE
    )
    if change:
        problem = quorum_problem(lab, change)
        if problem:
            problems.append(problem)
    if problems:
        raise ScaleError(
            f"lab {lab.name}: scale refused, nothing was changed:\n"
            + "\n".join(f"  {p}" for p in problems)
        )
    gone = list(dict.fromkeys(remove))
    text_after, after = edited(lab, text, new, gone)
    return ScalePlan(
        before=lab,
        after=after,
        text_before=text,
        text_after=text_after,
        added=tuple(after.node(n.name) for n in new),
        removed=tuple(lab.node(name) for name in gone),
        chosen=tuple(chosen),
    )
