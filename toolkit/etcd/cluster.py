"""Asking a lab's etcd members about themselves, bounded in time."""

from __future__ import annotations

from toolkit.errors import HostError
from toolkit.etcd.status import (
    ClusterHealth,
    EtcdError,
    MemberInfo,
    cluster_health,
    parse_member_list,
)
from toolkit.etcd.topology import Member, Topology
from toolkit.hosts import remote
from toolkit.poll import PollTimeout, problems_gone, wait_until


def etcdctl_on_any(
    topo: Topology, args: str, avoid: set[str] | None = None, timeout: float = 30
) -> tuple[Member, int, str]:
    """Run ``etcdctl ARGS`` (stderr dropped) on the first member host that answers SSH."""
    last: Exception | None = None
    for member in topo.members:
        if avoid and member.name in avoid:
            continue
        try:
            status, output = remote.try_root(
                topo.lab,
                member.node,
                f"{topo.etcdctl(topo.all_endpoints())} {args} 2>/dev/null",
                timeout=timeout,
            )
        except HostError as exc:
            last = exc
            continue
        return member, status, output
    raise EtcdError(f"no etcd member host of lab {topo.lab.name} answers SSH: {last}")


def health(topo: Topology, avoid: set[str] | None = None) -> ClusterHealth:
    """Every member's endpoint status, asked from one member host."""
    _, _, output = etcdctl_on_any(topo, "endpoint status -w json", avoid)
    return cluster_health(output, [m.client_url for m in topo.members])


def members(topo: Topology, avoid: set[str] | None = None) -> list[MemberInfo]:
    _, status, output = etcdctl_on_any(topo, "member list -w json", avoid)
    if status != 0:
        raise EtcdError(f"lab {topo.lab.name}: `etcdctl member list` failed: {output.strip()}")
    return parse_member_list(output)


def wait_healthy(
    topo: Topology, deadline_s: float = 180, interval_s: float = 2, avoid: set[str] | None = None
) -> float:
    """Wait until every member answers and all agree on one leader; return seconds waited."""
    try:
        return wait_until(
            lambda: health(topo, avoid).problems,
            problems_gone,
            timeout_s=deadline_s,
            interval_s=interval_s,
            what=f"lab {topo.lab.name}: etcd healthy",
            retry_on=(EtcdError, HostError),
        )
    except PollTimeout as exc:
        raise EtcdError(
            f"lab {topo.lab.name}: etcd not healthy within {deadline_s:.0f}s ({exc.last})"
        ) from exc


def leader(topo: Topology) -> Member:
    found = health(topo)
    if not found.healthy:
        raise EtcdError(f"lab {topo.lab.name}: etcd is not healthy: {'; '.join(found.problems)}")
    url = found.leader_endpoint
    return next(m for m in topo.members if m.client_url == url)


def followers(topo: Topology) -> list[Member]:
    found = health(topo)
    return [m for m in topo.members if m.client_url in found.followers()]
