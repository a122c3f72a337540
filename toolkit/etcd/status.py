"""etcd's JSON answers (etcdctl endpoint status / member list, etcdutl snapshot status) as data,
and what makes a cluster healthy: every member answering, all agreeing on one leader; and a
member's own view of its links to its peers (its /metrics)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from toolkit.errors import K8slabError


class EtcdError(K8slabError):
    """etcd answered something unexpected, or is not healthy."""


@dataclass(frozen=True)
class EndpointStatus:
    endpoint: str
    member_id: int
    leader_id: int
    revision: int
    raft_term: int
    version: str
    db_size: int


@dataclass(frozen=True)
class MemberInfo:
    member_id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    learner: bool

    @property
    def hex_id(self) -> str:
        return format(self.member_id, "x")


@dataclass(frozen=True)
class SnapshotStatus:
    hash: int
    revision: int
    total_keys: int
    total_size: int
    version: str


def _load(text: str, what: str) -> Any:
    # etcdctl's client logs JSON lines on stderr; the answer is the line that parses to
    # the expected shape, so take the last line that starts like one.
    lines = [line for line in text.splitlines() if line.startswith(("[", '{"header"', '{"hash"'))]
    if not lines:
        raise EtcdError(f"no JSON in the output of {what}: {text.strip()[-300:] or '(empty)'}")
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise EtcdError(f"unreadable JSON from {what}: {exc}") from None


def parse_endpoint_status(text: str) -> list[EndpointStatus]:
    """``etcdctl endpoint status -w json``; one entry per endpoint that answered.

    etcdctl repeats an earlier entry in place of an endpoint that did not answer, so the
    entries are de-duplicated by endpoint: a silent member is simply absent.
    """
    seen: dict[str, EndpointStatus] = {}
    for entry in _load(text, "etcdctl endpoint status"):
        status = entry["Status"]
        endpoint = entry["Endpoint"]
        seen.setdefault(
            endpoint,
            EndpointStatus(
                endpoint=endpoint,
                member_id=int(status["header"]["member_id"]),
                leader_id=int(status["leader"]),
                revision=int(status["header"]["revision"]),
                raft_term=int(status.get("raftTerm", status["header"].get("raft_term", 0))),
                version=str(status.get("version", "")),
                db_size=int(status.get("dbSize", 0)),
            ),
        )
    return list(seen.values())


def parse_member_list(text: str) -> list[MemberInfo]:
    """``etcdctl member list -w json``."""
    return [
        MemberInfo(
            member_id=int(member["ID"]),
            name=str(member.get("name", "")),
            peer_urls=tuple(member.get("peerURLs") or ()),
            client_urls=tuple(member.get("clientURLs") or ()),
            learner=bool(member.get("isLearner", False)),
        )
        for member in _load(text, "etcdctl member list")["members"]
    ]


def parse_snapshot_status(text: str) -> SnapshotStatus:
    """``etcdutl snapshot status -w json``."""
    data = _load(text, "etcdutl snapshot status")
    return SnapshotStatus(
        hash=int(data["hash"]),
        revision=int(data["revision"]),
        total_keys=int(data["totalKey"]),
        total_size=int(data["totalSize"]),
        version=str(data.get("version", "")),
    )


@dataclass(frozen=True)
class ClusterHealth:
    """What the members said: who answered, who leads, and what is wrong if anything."""

    answered: dict[str, EndpointStatus]  # client URL -> status
    expected: tuple[str, ...]  # client URLs of every member

    @property
    def silent(self) -> list[str]:
        return [url for url in self.expected if url not in self.answered]

    @property
    def leaders(self) -> set[int]:
        return {status.leader_id for status in self.answered.values()}

    @property
    def leader_endpoint(self) -> str | None:
        leaders = self.leaders
        if len(leaders) != 1:
            return None
        (leader,) = leaders
        for url, status in self.answered.items():
            if status.member_id == leader:
                return url
        return None

    @property
    def problems(self) -> list[str]:
        found = [f"{url} does not answer" for url in self.silent]
        leaders = self.leaders - {0}
        if 0 in self.leaders:
            found.append("a member has no leader")
        if len(leaders) > 1:
            found.append(f"members disagree on the leader ({len(leaders)} leaders seen)")
        elif self.answered and self.leader_endpoint is None:
            found.append("the leader is not among the members that answered")
        return found

    @property
    def healthy(self) -> bool:
        return not self.problems

    def followers(self) -> list[str]:
        leader = self.leader_endpoint
        return [url for url in self.expected if url in self.answered and url != leader]


def cluster_health(text: str, expected: list[str]) -> ClusterHealth:
    statuses = parse_endpoint_status(text) if text.strip() else []
    return ClusterHealth({s.endpoint: s for s in statuses}, tuple(expected))


# etcd's own view of its link to each peer (rafthttp's peer status), in its /metrics:
# 1 while the streams it reads from that peer work, 0 once one failed (read or dial) and
# none came back. A peer it never reached has no sample.
ACTIVE_PEERS_METRIC = "etcd_network_active_peers"
_ACTIVE_PEERS = re.compile(rf"^{ACTIVE_PEERS_METRIC}\{{(?P<labels>[^}}]*)\}}\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def active_peers(metrics: str) -> dict[str, float]:
    """Peer member id (hex, as etcd writes it) -> etcd_network_active_peers, from a
    member's /metrics text."""
    found = {}
    for line in metrics.splitlines():
        match = _ACTIVE_PEERS.match(line.strip())
        if not match:
            continue
        labels = dict(_LABEL.findall(match.group("labels")))
        try:
            found[labels.get("Remote", "")] = float(match.group("value"))
        except ValueError:
            continue
    return found


def inactive_peers(metrics: str, members: list[MemberInfo], me: str) -> list[str]:
    """The other members (by name; by hex id if a member has none) that the member named
    ``me`` does not report an active link to in its /metrics text. A socket the kernel
    still calls established is no proof: a link dropped without a reset keeps one for
    minutes, while etcd notices within its 5 s stream read timeout."""
    links = active_peers(metrics)
    return sorted(
        m.name or m.hex_id for m in members if m.name != me and links.get(m.hex_id, 0.0) < 1
    )
