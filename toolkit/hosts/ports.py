"""The TCP ports a lab's hosts must reach on each other, and probing them from each host
(``port-probe.sh``): before provisioning nothing listens, so a refused connection counts
as reached and only a timeout (or no route) means something between the hosts drops it.

UDP (flannel's VXLAN, 8472) and VRRP (keepalived, IP protocol 112) cannot be probed this
way: a dropped datagram and an unanswered one look alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from toolkit.constants import APISERVER_PORT
from toolkit.lab.model import Lab, Node

PROBE_SCRIPT = resources.files("toolkit.hosts") / "scripts" / "port-probe.sh"
PROBE_TIMEOUT_S = 3
KUBELET_PORT = 10250
ETCD_CLIENT_PORT, ETCD_PEER_PORT = 2379, 2380
REACHED = ("open", "refused")


@dataclass(frozen=True)
class Need:
    """``source`` must reach ``target`` on TCP ``port``, for ``what``."""

    source: Node
    target: Node
    port: int
    what: str


def required(lab: Lab) -> list[Need]:
    """Every (source, target, port) the lab needs, none from a host to itself."""
    kubernetes = lab.control_planes + lab.workers
    needs: list[Need] = []

    def need(sources: list[Node], targets: list[Node], port: int, what: str) -> None:
        needs.extend(
            Need(source, target, port, what)
            for source in sources
            for target in targets
            if source != target
        )

    need(kubernetes, lab.control_planes, APISERVER_PORT, "the API server")
    need(kubernetes, lab.control_planes, lab.api_port, "the API's load balancer")
    need(lab.control_planes, kubernetes, KUBELET_PORT, "the kubelet")
    if lab.etcd_topology == "stacked":
        need(lab.control_planes, lab.control_planes, ETCD_CLIENT_PORT, "etcd's clients")
        need(lab.control_planes, lab.control_planes, ETCD_PEER_PORT, "etcd's peers")
    else:
        need(lab.control_planes, lab.etcd_hosts, ETCD_CLIENT_PORT, "etcd's clients")
        need(lab.etcd_hosts, lab.etcd_hosts, ETCD_PEER_PORT, "etcd's peers")
    return needs


def probe_arguments(needs: list[Need]) -> list[str]:
    """``port-probe.sh``'s arguments for one source's needs (addresses and ports only)."""
    targets = dict.fromkeys(f"{need.target.address}:{need.port}" for need in needs)
    return [str(PROBE_TIMEOUT_S), *targets]


def parse_verdicts(output: str) -> dict[tuple[str, int], str]:
    """``port-probe.sh``'s lines as (address, port) -> verdict."""
    verdicts: dict[tuple[str, int], str] = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit():
            verdicts[(parts[0], int(parts[1]))] = parts[2]
    return verdicts


def unreached(needs: list[Need], verdicts: dict[tuple[str, int], str]) -> list[str]:
    """A problem for each need whose probe did not reach its target (or did not run)."""
    problems = []
    for need in needs:
        verdict = verdicts.get((str(need.target.address), need.port), "not probed")
        if verdict in REACHED:
            continue
        problems.append(
            f"does not reach {need.target.name} ({need.target.address}) on TCP {need.port} "
            f"({need.what}): {verdict} after {PROBE_TIMEOUT_S}s; let the hosts reach each "
            "other on it (a firewall between them drops it)"
        )
    return problems
