"""Reading the standby parts that HA depends on, from the text the nodes give: keepalived's
configuration, haproxy's configuration and its `show stat`, `ss` listings, a kubeconfig.

Pure functions, so that the suites' judgements are unit-tested without a lab.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import yaml

# Where the loadbalancer role and kubeadm put what these functions read (the fault module
# breaks the same files).
KEEPALIVED_CONF = "/etc/keepalived/keepalived.conf"
HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"
HAPROXY_BACKEND = "apiserver"
HAPROXY_STAT = "echo 'show stat' | socat stdio /run/haproxy/admin.sock"
# The kubeconfig each component's leader election and informers use.
COMPONENT_KUBECONFIGS = {
    "kube-scheduler": "/etc/kubernetes/scheduler.conf",
    "kube-controller-manager": "/etc/kubernetes/controller-manager.conf",
}

# A process's name as ss shows it: the kernel's comm, cut to 15 characters
# ("kube-controller-manager" is "kube-controller").
COMM_LENGTH = 15


@dataclass(frozen=True)
class VrrpInstance:
    """What a keepalived vrrp_instance needs to take the VIP over."""

    router_id: int | None
    priority: int | None
    interface: str
    addresses: tuple[str, ...]  # virtual_ipaddress entries, without prefix length
    auth_pass: str

    def describe(self) -> str:
        return (
            f"virtual_router_id {self.router_id}, priority {self.priority}, interface "
            f"{self.interface or '?'}, VIP {', '.join(self.addresses) or '?'}"
        )


def _int(match: re.Match[str] | None) -> int | None:
    return int(match.group(1)) if match else None


def _strip_comments(text: str) -> str:
    return re.sub(r"[#!].*", "", text)  # keepalived's comments


def _block(text: str, header: str) -> str | None:
    """The body of the first ``header {...}`` block of keepalived's configuration (braces
    nested inside it kept); None when there is none."""
    start = re.search(header + r"\s*\{", text)
    if not start:
        return None
    depth, end = 0, len(text)
    for index in range(start.end() - 1, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                end = index
                break
    return text[start.end() : end]


def parse_keepalived(text: str) -> VrrpInstance | None:
    """The first vrrp_instance of a keepalived.conf; None when there is none."""
    body = _block(_strip_comments(text), r"\bvrrp_instance\s+\S+")
    if body is None:
        return None
    vips = re.search(r"\bvirtual_ipaddress\s*\{([^}]*)\}", body)
    addresses = tuple(
        line.split()[0].split("/")[0]
        for line in (vips.group(1).splitlines() if vips else [])
        if line.split()
    )
    interface = re.search(r"^\s*interface\s+(\S+)", body, re.MULTILINE)
    auth = re.search(r"\bauth_pass\s+(\S+)", body)
    return VrrpInstance(
        router_id=_int(re.search(r"\bvirtual_router_id\s+(\d+)", body)),
        priority=_int(re.search(r"\bpriority\s+(\d+)", body)),
        interface=interface.group(1) if interface else "",
        addresses=addresses,
        auth_pass=auth.group(1) if auth else "",
    )


def track_scripts(text: str) -> dict[str, str]:
    """The scripts the first vrrp_instance of a keepalived.conf tracks: name -> the command
    line its ``vrrp_script`` block runs ("" when no block defines it). A failing script
    with no weight (the loadbalancer role's) puts the instance in FAULT: it releases the
    VIP, or cannot take it."""
    text = _strip_comments(text)
    instance = _block(text, r"\bvrrp_instance\s+\S+") or ""
    tracked = _block(instance, r"\btrack_script") or ""
    scripts = {}
    for name in tracked.split():
        body = _block(text, rf"\bvrrp_script\s+{re.escape(name)}") or ""
        script = re.search(r"^\s*script\s+(?:\"([^\"]*)\"|(\S+))", body, re.MULTILINE)
        scripts[name] = (script.group(1) or script.group(2)) if script else ""
    return scripts


def interface_addresses(ip_output: str) -> set[tuple[str, str]]:
    """(interface, address) pairs of `ip -o -4 addr show`."""
    pairs = set()
    for line in ip_output.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] == "inet":
            pairs.add((fields[1], fields[3].split("/")[0]))
    return pairs


def keepalived_problems(
    node: str,
    address: str,
    vip: str,
    mine: VrrpInstance | None,
    peers: dict[str, VrrpInstance | None],
    addresses: set[tuple[str, str]],
) -> list[str]:
    """Why keepalived on ``node`` could not take the VIP over from its ``peers`` (the other
    control planes' instances): an empty list when it could."""
    if mine is None:
        return ["no vrrp_instance in its configuration"]
    problems = []
    if vip not in mine.addresses:
        problems.append(f"its VIP is {list(mine.addresses)}, not the lab's {vip}")
    if mine.router_id is None or not 1 <= mine.router_id <= 255:
        problems.append(f"virtual_router_id {mine.router_id} is not 1-255")
    if mine.priority is None or not 1 <= mine.priority <= 254:
        problems.append(f"priority {mine.priority} is not 1-254")
    if (mine.interface, address) not in addresses:
        problems.append(f"interface {mine.interface or '(none)'} does not carry {address}")
    for peer, theirs in sorted(peers.items()):
        if theirs is None:
            problems.append(f"peer {peer} has no vrrp_instance")
            continue
        if theirs.router_id != mine.router_id:
            problems.append(
                f"virtual_router_id {mine.router_id}, but {peer}'s is {theirs.router_id}"
            )
        if theirs.auth_pass != mine.auth_pass:
            problems.append(f"its authentication differs from {peer}'s")
        if theirs.priority == mine.priority:
            problems.append(f"priority {mine.priority} is also {peer}'s (no clear order)")
    return problems


def haproxy_servers(config: str, backend: str) -> dict[str, str]:
    """name -> address:port of the ``server`` lines of ``backend`` in haproxy.cfg."""
    servers: dict[str, str] = {}
    inside = False
    for raw in config.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] in ("global", "defaults", "frontend", "backend", "listen", "resolvers"):
            inside = words[0] == "backend" and len(words) > 1 and words[1] == backend
            continue
        if inside and words[0] == "server" and len(words) >= 3:
            servers[words[1]] = words[2]
    return servers


def haproxy_status(show_stat: str, backend: str) -> dict[str, str]:
    """server -> status (UP, DOWN, MAINT, "UP 1/3"...) of ``backend`` in `show stat`'s CSV."""
    columns: list[str] = []
    statuses = {}
    for line in show_stat.splitlines():
        if line.startswith("# "):
            columns = line[2:].split(",")
            continue
        fields = line.split(",")
        if not columns or len(fields) < len(columns) - 1:
            continue
        row = dict(zip(columns, fields, strict=False))
        if row.get("pxname") == backend and row.get("svname") not in ("FRONTEND", "BACKEND"):
            statuses[row["svname"]] = row.get("status", "")
    return statuses


def backend_problems(
    wanted: dict[str, str], configured: dict[str, str], status: dict[str, str]
) -> list[str]:
    """Why an haproxy lacks an API server it should balance to: every wanted server
    (name -> address:port) configured at its address and UP. Empty when it has them all."""
    problems = []
    for name, address in sorted(wanted.items()):
        if name not in configured:
            problems.append(f"{name} ({address}) is not a server in its configuration")
        elif configured[name] != address:
            problems.append(f"{name} is configured at {configured[name]}, not {address}")
        state = status.get(name, "absent")
        if not state.startswith("UP"):
            problems.append(f"{name} ({address}) is {state}, not UP")
    strangers = sorted(set(configured) - set(wanted))
    if strangers:
        problems.append(f"servers that are no API server of the lab: {strangers}")
    return problems


@dataclass(frozen=True)
class Connection:
    local: str  # address:port
    peer: str  # address:port
    processes: frozenset[str]

    @property
    def local_address(self) -> str:
        return self.local.rsplit(":", 1)[0].strip("[]")

    @property
    def peer_address(self) -> str:
        return self.peer.rsplit(":", 1)[0].strip("[]")

    @property
    def peer_port(self) -> str:
        return self.peer.rsplit(":", 1)[-1]


# Every established TCP connection with the processes that hold it.
ESTABLISHED_WITH_PROCESSES = "ss -Htnp state established"


def established(ss_output: str) -> list[Connection]:
    """The connections of `ss -Htn[p] state established` (Recv-Q Send-Q Local Peer [Process])."""
    connections = []
    for line in ss_output.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        processes = frozenset(re.findall(r'\("([^"]+)",pid=', line))
        connections.append(Connection(fields[2], fields[3], processes))
    return connections


def comm(process: str) -> str:
    return process[:COMM_LENGTH]


def kubeconfig_server(text: str) -> str:
    """The server URL of a kubeconfig's first cluster ("" when unreadable)."""
    try:
        config: Any = yaml.safe_load(text)
        return str(config["clusters"][0]["cluster"]["server"])
    except (yaml.YAMLError, KeyError, IndexError, TypeError):
        return ""


def server_endpoint(url: str) -> tuple[str, str]:
    """(host, port) of an https URL; port 443 when it names none."""
    parts = urlsplit(url)
    return (parts.hostname or "", str(parts.port or 443))


def connected_to(connections: list[Connection], process: str, host: str, port: str) -> bool:
    """Whether ``process`` holds an established connection to ``host``:``port`` (a host
    that is a name, not an address, matches any address on that port)."""
    try:
        ipaddress.ip_address(host)
        by_address = True
    except ValueError:
        by_address = False
    return any(
        comm(process) in c.processes
        and c.peer_port == port
        and (not by_address or c.peer_address == host)
        for c in connections
    )
