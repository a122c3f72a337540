"""The lab spec: the one hand-written description of a lab, and its typed model.

``inventories/<lab>/lab.yml`` is loaded, checked against a schema (unknown keys, types,
choices), then against rules that span fields (topology, addresses, ranges). Every
problem is reported with the file, the field and the fix, and all of them at once, so
that nothing is created from a spec that is only half right.
"""

from __future__ import annotations

import errno
import ipaddress
import re
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from toolkit import versions
from toolkit.errors import LabNotFoundError, SpecError
from toolkit.paths import INVENTORIES_DIR

SPEC_FILENAME = "lab.yml"
PROVIDERS = ("docker", "libvirt", "virtualbox")
TOPOLOGIES = ("stacked", "external")
RUNTIMES = ("containerd",)
CNIS = ("flannel", "bridge")
ROLES = ("control_planes", "etcd", "workers")
# Matched with fullmatch: a bare `$` also matches before a trailing newline.
HOSTNAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
DEFAULT_CPUS = 2
DEFAULT_MEMORY_MB = 2048
APISERVER_PORT = 6443
DEFAULT_API_PORT = 8443
# What else listens on a control plane, where haproxy binds api_endpoint.port on every
# address (kubeadm's constants and the components' defaults; etcd's only when stacked).
CONTROL_PLANE_PORTS = {
    22: "sshd",
    10248: "the kubelet's healthz",
    10249: "kube-proxy's metrics",
    10250: "the kubelet",
    10256: "kube-proxy's healthz",
    10257: "kube-controller-manager",
    10259: "kube-scheduler",
}
STACKED_ETCD_PORTS = {2379: "etcd's clients", 2380: "etcd's peers", 2381: "etcd's metrics"}
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
# kubeadm's preflight minimums for a control plane (ControlPlaneMem, ControlPlaneNumCPU).
CONTROL_PLANE_MIN_MEMORY_MB = 1700
CONTROL_PLANE_MIN_CPUS = 2
# Ranges whose addresses can never be a node's, a Pod's or a Service's: the kubelet
# refuses such a node-ip, and none of them is unicast routed between hosts.
EXAMPLE_RANGES = {
    "subnet": "172.30.2.0/24",
    "pod_cidr": "10.244.0.0/16",
    "service_cidr": "10.96.0.0/16",
}
UNUSABLE_RANGES = {
    ipaddress.IPv4Network("127.0.0.0/8"): "loopback",
    ipaddress.IPv4Network("169.254.0.0/16"): "link-local",
    ipaddress.IPv4Network("224.0.0.0/4"): "multicast",
}
# A spec of the shipped kind is under 1 KiB; PyYAML's pure-Python parser (the strict
# loader below needs it) reads a dense 32 KiB in about half a second on a busy 2-core host.
MAX_SPEC_BYTES = 32 * 1024
MAX_SPEC_DEPTH = 32


@dataclass(frozen=True)
class Node:
    name: str
    role: str  # one of ROLES, singular meaning: "control_planes" -> a control plane
    address: ipaddress.IPv4Address
    cpus: int
    memory_mb: int
    container_runtime: str


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

    def by_role(self, role: str) -> list[Node]:
        return [node for node in self.nodes if node.role == role]

    @property
    def control_planes(self) -> list[Node]:
        return self.by_role("control_planes")

    @property
    def etcd_hosts(self) -> list[Node]:
        return self.by_role("etcd")

    @property
    def workers(self) -> list[Node]:
        return self.by_role("workers")

    @property
    def etcd_members(self) -> list[Node]:
        """The nodes that run etcd: control planes when stacked, etcd hosts when external."""
        return self.control_planes if self.etcd_topology == "stacked" else self.etcd_hosts

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise SpecError(
            f"lab {self.name!r} has no node {name!r}; its nodes are: "
            + ", ".join(n.name for n in self.nodes)
        )


# --- schema -------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """One allowed key of a mapping: its type, whether it is required, its check."""

    kind: type | tuple[type, ...]
    required: bool = True
    choices: tuple[str, ...] = ()
    hint: str = ""


NODE_KEYS: dict[str, Key] = {
    "name": Key(str, hint="a hostname such as cp1"),
    "address": Key(str, hint="an IPv4 address inside network.subnet"),
    "cpus": Key(int, required=False, hint="a whole number of CPUs, at least 1"),
    "memory_mb": Key(int, required=False, hint="memory in MiB, at least 512"),
    "container_runtime": Key(str, required=False, choices=RUNTIMES),
}
TOP_KEYS: dict[str, Key] = {
    "name": Key(str, hint="the lab's name, the same as its folder"),
    "provider": Key(str, choices=PROVIDERS),
    "kubernetes_version": Key(str, hint="for example " + versions.DEFAULT_KUBERNETES_VERSION),
    "etcd_topology": Key(str, choices=TOPOLOGIES),
    "container_runtime": Key(str, choices=RUNTIMES),
    "cni": Key(str, choices=CNIS),
    "network": Key(dict),
    "api_endpoint": Key(dict),
    "node_defaults": Key(dict, required=False),
    "nodes": Key(dict),
}
NETWORK_KEYS: dict[str, Key] = {
    "subnet": Key(str, hint="the lab network in CIDR form, e.g. 172.30.2.0/24"),
    "pod_cidr": Key(str, hint="the Pod range in CIDR form, e.g. 10.244.0.0/16"),
    "service_cidr": Key(str, hint="the Service range in CIDR form, e.g. 10.96.0.0/16"),
}
API_KEYS: dict[str, Key] = {
    "vip": Key(str, hint="a free IPv4 address inside network.subnet"),
    "port": Key(int, required=False, hint="the load balancer's TCP port, 8443 by default"),
}
DEFAULTS_KEYS: dict[str, Key] = {
    "cpus": NODE_KEYS["cpus"],
    "memory_mb": NODE_KEYS["memory_mb"],
}
NODES_KEYS: dict[str, Key] = {
    "control_planes": Key(list, hint="a list of nodes"),
    "etcd": Key(list, required=False, hint="a list of nodes (external topology only)"),
    "workers": Key(list, required=False, hint="a list of nodes"),
}


def _type_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "a whole number", dict: "a mapping", list: "a list"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


class Problems:
    """Collects every problem of one spec file, each naming the file, field and fix."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []

    def add(self, field_path: str, message: str) -> None:
        self.lines.append(f"{_display(self.path)}: {field_path}: {message}")

    def raise_if_any(self) -> None:
        if self.lines:
            count = len(self.lines)
            head = (
                f"{_display(self.path)}: {count} problem{'s' if count > 1 else ''} in the lab spec"
            )
            raise SpecError("\n".join([head, *("  " + line for line in self.lines)]))


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError, RuntimeError):  # RuntimeError: a symlink loop (Python 3.11)
        return str(path)


def _check_mapping(
    data: dict[str, Any], keys: dict[str, Key], where: str, problems: Problems
) -> dict[str, Any]:
    """Check one mapping against its keys; return only the keys whose value is usable."""
    usable: dict[str, Any] = {}
    prefix = f"{where}." if where else ""
    for key in data:
        if key not in keys:
            near = [k for k in keys if _similar(str(key), k)]
            fix = f"did you mean {near[0]!r}?" if near else "allowed keys: " + ", ".join(keys)
            problems.add(f"{prefix}{key}", f"unknown key; {fix}")
    for key, rule in keys.items():
        if key not in data or data[key] is None:
            if rule.required:
                hint = f" ({rule.hint})" if rule.hint else ""
                choices = f" (one of: {', '.join(rule.choices)})" if rule.choices else ""
                problems.add(f"{prefix}{key}", f"missing; add it{hint or choices}")
            continue
        value = data[key]
        # bool is an int in Python; a YAML `true` where a number belongs is still wrong.
        if not isinstance(value, rule.kind) or (isinstance(value, bool) and rule.kind is int):
            problems.add(
                f"{prefix}{key}",
                f"is {type(value).__name__} {value!r}, expected {_type_name(rule.kind)}",
            )
            continue
        if rule.choices and value not in rule.choices:
            problems.add(
                f"{prefix}{key}",
                f"unknown value {value!r}; use one of: {', '.join(rule.choices)}",
            )
            continue
        usable[key] = value
    return usable


def _similar(a: str, b: str) -> bool:
    a, b = a.lower(), b.lower()
    if a in b or b in a:
        return True
    # one edit apart (typo): same length with one difference, or one char extra
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) <= 1
    short, long_ = sorted((a, b), key=len)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def _parse(
    value: str, parser: Callable[[str], Any], field_path: str, what: str, problems: Problems
) -> Any:
    try:
        return parser(value)
    except ValueError as exc:
        problems.add(field_path, f"{value!r} is not {what} ({exc})")
        return None


def _positive(value: int | None, minimum: int, field_path: str, problems: Problems) -> None:
    if value is not None and value < minimum:
        problems.add(field_path, f"is {value}; it must be at least {minimum}")


# --- loading ------------------------------------------------------------------------


def spec_path(lab_name: str, inventories: Path = INVENTORIES_DIR) -> Path:
    return inventories / lab_name / SPEC_FILENAME


def available_labs(inventories: Path = INVENTORIES_DIR) -> list[str]:
    return sorted(p.parent.name for p in inventories.glob(f"*/{SPEC_FILENAME}"))


def load_lab(name_or_path: str | Path, inventories: Path = INVENTORIES_DIR) -> Lab:
    """Load and validate a lab by name (``inventories/<name>/lab.yml``) or by file path."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yml", ".yaml") or candidate.is_file():
        path = candidate
    else:
        path = spec_path(str(name_or_path), inventories)
        if not path.parent.is_dir():
            labs = ", ".join(available_labs(inventories)) or "none"
            raise LabNotFoundError(
                f"no lab named {str(name_or_path)!r}: {_display(path)} does not exist; "
                f"labs under {_display(inventories)}: {labs}"
            )
    return parse_lab(_read_yaml(path), path)


def _read_yaml(path: Path) -> dict[str, Any]:
    """The spec file's mapping; anything else, or a file that could cost much to read, is
    refused in one line naming the file and the fix."""
    data = _parse_yaml(_read_text(path), path)
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise SpecError(
            f"{_display(path)}: the lab spec must be a YAML mapping (key: value), but it is {kind}"
        )
    return data


def _read_text(path: Path) -> str:
    """The file's text, read only once it is known to be a regular file of a spec's size."""
    where = _display(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise SpecError(f"{where}: cannot read it: it is {kind}; give the path of a lab.yml")
        if info.st_size > MAX_SPEC_BYTES:
            raise SpecError(f"{where}: {_too_big(info.st_size)}")
        with path.open("rb") as handle:
            raw = handle.read(MAX_SPEC_BYTES + 1)  # the file may have grown since stat()
    except FileNotFoundError:
        raise SpecError(f"{where}: file not found; create it (see inventories/single/)") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SpecError(
                f"{where}: is a symbolic link loop; point it at a real lab.yml"
            ) from None
        raise SpecError(f"{where}: cannot read it: {exc.strerror}; check its permissions") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(f"{where}: {_too_big(len(raw))}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"{where}: is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "a lab spec is YAML text"
        ) from None


def _too_big(size: int) -> str:
    shown = f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size} bytes"
    return (
        f"is {shown}; a lab spec is at most {MAX_SPEC_BYTES // 1024} KiB "
        "(the shipped ones are under 1 KiB): is this the right file?"
    )


def _parse_yaml(text: str, path: Path) -> Any:
    where = _display(path)
    try:
        return yaml.load(text, Loader=_SpecLoader)  # a SafeLoader, only stricter
    except RecursionError:
        raise SpecError(f"{where}: nested too deeply to read; is this a lab spec?") from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise SpecError(
            f"{where}: line {line}: contains a control character (0x{exc.character:02x}); "
            "a lab spec is YAML text"
        ) from None
    except _Refused as exc:
        assert exc.problem_mark is not None
        raise SpecError(f"{where}: line {exc.problem_mark.line + 1}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise SpecError(f"{where}: not valid YAML{at}: {problem}") from None


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that a lab spec does not allow."""

    def __init__(self, problem: str, mark: yaml.Mark) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class _SpecLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader without what a lab spec never needs and a hostile file abuses.

    Anchors and aliases are refused where they appear (an alias bomb expands nine of them
    into 9**9 values), and so are merge keys and duplicate keys (YAML keeps the last one
    silently), each with its line. Nesting deeper than a spec's few levels is refused
    before Python's recursion limit turns it into a traceback.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in the stubs
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            sign = "*" if isinstance(event, yaml.AliasEvent) else "&"
            raise _Refused(
                f"{'alias' if sign == '*' else 'anchor'} {sign}{event.anchor}: anchors and "
                "aliases are not allowed in a lab spec; write each value out",
                event.start_mark,
            )
        if self._depth >= MAX_SPEC_DEPTH:
            raise _Refused(
                f"nested more than {MAX_SPEC_DEPTH} levels deep; a lab spec needs four",
                event.start_mark,
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _Refused(
                    "merge keys (<<) are not allowed in a lab spec; write each key out",
                    key_node.start_mark,
                )
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in first_line:
                    raise _Refused(
                        f"key {key!r} appears twice (first on line {first_line[key]}); keep one",
                        key_node.start_mark,
                    )
                first_line[key] = line
            except TypeError:  # an unhashable key: SafeLoader names it below
                pass
        return super().construct_mapping(node, deep)


def parse_lab(data: dict[str, Any], path: Path) -> Lab:
    """Validate ``data`` read from ``path`` and build the model; raise SpecError listing all."""
    problems = Problems(path)
    top = _check_mapping(data, TOP_KEYS, "", problems)

    name = top.get("name")
    if name is not None:
        if not HOSTNAME_RE.fullmatch(name):
            problems.add(
                "name", f"{name!r} is not a valid name; use lowercase letters, digits and '-'"
            )
        elif path.name == SPEC_FILENAME and path.parent.name != name:
            problems.add(
                "name", f"is {name!r} but the folder is {path.parent.name!r}; make them the same"
            )

    version = top.get("kubernetes_version")
    if version is not None and version not in versions.RELEASES:
        problems.add(
            "kubernetes_version",
            f"{version!r} is not a version the toolkit can supply; use one of: "
            + ", ".join(versions.supported_versions()),
        )

    network = _parse_network(top.get("network"), problems)
    api_vip, api_port = _parse_api(top.get("api_endpoint"), problems)
    defaults = (
        _check_mapping(top["node_defaults"], DEFAULTS_KEYS, "node_defaults", problems)
        if "node_defaults" in top
        else {}
    )
    for key in ("cpus", "memory_mb"):
        _positive(defaults.get(key), 1 if key == "cpus" else 512, f"node_defaults.{key}", problems)
    nodes = _parse_nodes(top.get("nodes"), defaults, top.get("container_runtime"), problems)

    _check_topology(top.get("etcd_topology"), nodes, problems)
    _check_addresses(network, api_vip, nodes, problems)
    _check_api_port(api_port, top.get("etcd_topology"), problems)
    _check_pod_ranges(network, nodes, problems)

    problems.raise_if_any()
    assert network is not None and api_vip is not None  # guaranteed: no problems were found
    return Lab(
        name=top["name"],
        provider=top["provider"],
        kubernetes_version=top["kubernetes_version"],
        etcd_topology=top["etcd_topology"],
        container_runtime=top["container_runtime"],
        cni=top["cni"],
        network=network,
        api_vip=api_vip,
        api_port=api_port,
        nodes=tuple(node for node, _ in nodes),
        source=path,
    )


def _parse_network(raw: dict[str, Any] | None, problems: Problems) -> Network | None:
    if raw is None:
        return None
    values = _check_mapping(raw, NETWORK_KEYS, "network", problems)
    ranges: dict[str, ipaddress.IPv4Network] = {}
    for key, value in values.items():
        parsed = _parse(
            value,
            lambda v: ipaddress.IPv4Network(v, strict=True),
            f"network.{key}",
            "an IPv4 network in CIDR form with no host bits set",
            problems,
        )
        if parsed is not None:
            ranges[key] = parsed
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
    if len(ranges) < len(NETWORK_KEYS):
        return None
    return Network(ranges["subnet"], ranges["pod_cidr"], ranges["service_cidr"])


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


def _parse_api(
    raw: dict[str, Any] | None, problems: Problems
) -> tuple[ipaddress.IPv4Address | None, int]:
    if raw is None:
        return None, DEFAULT_API_PORT
    values = _check_mapping(raw, API_KEYS, "api_endpoint", problems)
    port = values.get("port", DEFAULT_API_PORT)
    if not 1 <= port <= 65535:
        problems.add("api_endpoint.port", f"{port} is not a TCP port; use 1-65535")
    vip = None
    if "vip" in values:
        vip = _parse(
            values["vip"], ipaddress.IPv4Address, "api_endpoint.vip", "an IPv4 address", problems
        )
    return vip, port


def _parse_nodes(
    raw: dict[str, Any] | None,
    defaults: dict[str, Any],
    runtime: str | None,
    problems: Problems,
) -> list[tuple[Node, str]]:
    """Nodes with the field path they came from (for messages about them)."""
    if raw is None:
        return []
    groups = _check_mapping(raw, NODES_KEYS, "nodes", problems)
    nodes: list[tuple[Node, str]] = []
    for role in ROLES:
        for index, entry in enumerate(groups.get(role) or []):
            where = f"nodes.{role}[{index}]"
            if not isinstance(entry, dict):
                problems.add(
                    where, f"is {type(entry).__name__}, expected a mapping with name and address"
                )
                continue
            values = _check_mapping(entry, NODE_KEYS, where, problems)
            name = values.get("name")
            if name is not None and not HOSTNAME_RE.fullmatch(name):
                problems.add(
                    f"{where}.name",
                    f"{name!r} is not a valid hostname; use lowercase letters, digits and '-' "
                    "(at most 63, not starting or ending with '-')",
                )
                name = None
            address = None
            if "address" in values:
                address = _parse(
                    values["address"],
                    ipaddress.IPv4Address,
                    f"{where}.address",
                    "an IPv4 address",
                    problems,
                )
            cpus = values.get("cpus", defaults.get("cpus", DEFAULT_CPUS))
            memory = values.get("memory_mb", defaults.get("memory_mb", DEFAULT_MEMORY_MB))
            _positive(values.get("cpus"), 1, f"{where}.cpus", problems)
            _positive(values.get("memory_mb"), 512, f"{where}.memory_mb", problems)
            if role == "control_planes":
                _control_plane_minimum(values, defaults, "cpus", cpus, where, problems)
                _control_plane_minimum(values, defaults, "memory_mb", memory, where, problems)
            if name is None or address is None:
                continue
            node_runtime = values.get("container_runtime", runtime or RUNTIMES[0])
            nodes.append((Node(name, role, address, cpus, memory, node_runtime), where))
    return nodes


def _control_plane_minimum(
    values: dict[str, Any],
    defaults: dict[str, Any],
    key: str,
    value: int,
    where: str,
    problems: Problems,
) -> None:
    """kubeadm's preflight refuses a control plane below its CPU and memory minimums."""
    minimum = CONTROL_PLANE_MIN_CPUS if key == "cpus" else CONTROL_PLANE_MIN_MEMORY_MB
    floor = 1 if key == "cpus" else 512  # below it _positive has said so already
    if not floor <= value < minimum:
        return
    source = "" if key in values else " (from node_defaults)"  # the built-in ones suffice
    problems.add(
        f"{where}.{key}",
        f"is {value}{source}; kubeadm's preflight wants at least {minimum} on a control plane; "
        f"set {key}: {minimum} or more",
    )


def _check_topology(
    topology: str | None, nodes: list[tuple[Node, str]], problems: Problems
) -> None:
    counts = {role: sum(1 for node, _ in nodes if node.role == role) for role in ROLES}
    if counts["control_planes"] == 0:
        problems.add("nodes.control_planes", "is empty; a cluster needs at least one control plane")
    if topology == "external":
        if counts["etcd"] == 0:
            problems.add(
                "nodes.etcd",
                "is empty but etcd_topology is 'external'; list the etcd hosts "
                "or set etcd_topology: stacked",
            )
        elif counts["etcd"] % 2 == 0:
            problems.add(
                "nodes.etcd",
                f"has {counts['etcd']} members; etcd needs an odd number (1, 3 or 5) "
                "to keep quorum",
            )
    elif topology == "stacked":
        if counts["etcd"]:
            problems.add(
                "nodes.etcd",
                "lists etcd hosts but etcd_topology is 'stacked' (etcd runs on the control "
                "planes); remove them or set etcd_topology: external",
            )
        if counts["control_planes"] and counts["control_planes"] % 2 == 0:
            problems.add(
                "nodes.control_planes",
                f"has {counts['control_planes']} nodes, so stacked etcd would have an even "
                "member count; use an odd number (1, 3 or 5)",
            )


def _check_addresses(
    network: Network | None,
    vip: ipaddress.IPv4Address | None,
    nodes: list[tuple[Node, str]],
    problems: Problems,
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
            _check_in_subnet(node.address, network, f"{where}.address", problems)
    if vip is None or network is None:
        return
    _check_in_subnet(vip, network, "api_endpoint.vip", problems)
    if vip in seen_addresses:
        problems.add(
            "api_endpoint.vip",
            f"{vip} is the address of {seen_addresses[vip]}; the VIP must be a free address",
        )


def _check_api_port(port: int, topology: str | None, problems: Problems) -> None:
    """haproxy binds the port on every address of every control plane: it must be free."""
    where, fix = "api_endpoint.port", f"use another, e.g. {DEFAULT_API_PORT}"
    taken = dict(CONTROL_PLANE_PORTS)
    if topology == "stacked":
        taken.update(STACKED_ETCD_PORTS)
    if port == APISERVER_PORT:
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
    count = sum(1 for node, _ in nodes if node.role != "etcd")
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
    address: ipaddress.IPv4Address, network: Network, field_path: str, problems: Problems
) -> None:
    subnet = network.subnet
    if address not in subnet:
        problems.add(
            field_path, f"{address} is outside the lab subnet {subnet}; pick one inside it"
        )
    elif address in (subnet.network_address, subnet.broadcast_address):
        problems.add(field_path, f"{address} is the network or broadcast address of {subnet}")
    elif address == network.gateway:
        problems.add(
            field_path,
            f"{address} is the lab network's gateway (its first address, held by the host); "
            "pick another",
        )


def labs_summary(labs: Iterable[Lab]) -> list[dict[str, Any]]:
    return [
        {
            "name": lab.name,
            "provider": lab.provider,
            "topology": lab.etcd_topology,
            "control_planes": len(lab.control_planes),
            "etcd": len(lab.etcd_hosts),
            "workers": len(lab.workers),
            "kubernetes": lab.kubernetes_version,
        }
        for lab in labs
    ]
