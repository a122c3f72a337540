"""The lab spec: the one hand-written description of a lab, and where it is read from.

``inventories/<lab>/lab.yml`` is read safely (``loader``), checked against a schema of
unknown keys, types and choices (``schema``), then against rules that span fields:
topology, addresses, ranges (``rules``). Every problem is reported with the file, the
field and the fix, and all of them at once, so that nothing is created from a spec that is
only half right. The result is the typed model (``model``).

This module is the entry point other packages import: the model's classes and the
functions that find, load and summarize labs.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from toolkit import versions
from toolkit.errors import LabNotFoundError
from toolkit.lab import access, addons, cloud, rules
from toolkit.lab.load_balancer import parse_load_balancer
from toolkit.lab.loader import read_spec
from toolkit.lab.model import EXISTING, Lab, Network, Node, Role
from toolkit.lab.schema import (
    API_KEYS,
    DEFAULT_API_PORT,
    DEFAULTS_KEYS,
    NETWORK_KEYS,
    NODE_KEYS,
    NODES_KEYS,
    REFUSED_RUNTIME_CLASSES,
    RUNTIMES,
    TOP_KEYS,
    Problems,
    check_mapping,
    check_minimums,
    display_path,
    parse_value,
)
from toolkit.paths import INVENTORIES_DIR

__all__ = [
    "HOSTNAME_RE",
    "SPEC_FILENAME",
    "Lab",
    "Network",
    "Node",
    "Role",
    "available_labs",
    "labs_summary",
    "load_lab",
    "parse_lab",
    "spec_path",
]

SPEC_FILENAME = "lab.yml"
# Matched with fullmatch: a bare `$` also matches before a trailing newline.
HOSTNAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
DEFAULT_CPUS = 2
DEFAULT_MEMORY_MB = 2048


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
                f"no lab named {str(name_or_path)!r}: {display_path(path)} does not exist; "
                f"labs under {display_path(inventories)}: {labs}"
            )
    return parse_lab(read_spec(path), path)


def parse_lab(data: dict[str, Any], path: Path) -> Lab:
    """Validate ``data`` read from ``path`` and build the model; raise SpecError listing all."""
    problems = Problems(path)
    top = check_mapping(data, TOP_KEYS, "", problems)

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
        check_mapping(top["node_defaults"], DEFAULTS_KEYS, "node_defaults", problems)
        if "node_defaults" in top
        else {}
    )
    check_minimums(defaults, "node_defaults", problems)
    provider = top.get("provider")
    access.check_defaults(provider, defaults, problems)
    logins = access.Access(provider, path.parent.absolute(), defaults)
    nodes = _parse_nodes(top.get("nodes"), defaults, top.get("container_runtime"), logins, problems)
    host_power = access.parse_host_power(top.get("host_power"), provider, problems)

    rules.check_lab(
        top.get("etcd_topology"), network, api_vip, api_port, nodes, problems, provider == EXISTING
    )
    _check_runtime_classes(top.get("runtime_classes"), problems)
    load_balancer = parse_load_balancer(top.get("load_balancer"), network, api_vip, nodes, problems)
    chosen = addons.parse(top.get("addons"), problems)
    addons.check_memory(chosen, nodes, problems)
    cloud_provider = top.get("cloud_provider", "none")
    if "cloud_provider" in top or "cloud_provider" not in data:
        cloud.check_zones(cloud_provider, nodes, problems)

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
        host_power=host_power,
        load_balancer=load_balancer,
        addons=chosen,
        cloud_provider=cloud_provider,
        network_policy=top.get("network_policy", False),
    )


def _parse_network(raw: dict[str, Any] | None, problems: Problems) -> Network | None:
    if raw is None:
        return None
    values = check_mapping(raw, NETWORK_KEYS, "network", problems)
    ranges: dict[str, ipaddress.IPv4Network] = {}
    for key, value in values.items():
        parsed = parse_value(
            value,
            lambda v: ipaddress.IPv4Network(v, strict=True),
            f"network.{key}",
            "an IPv4 network in CIDR form with no host bits set",
            problems,
        )
        if parsed is not None:
            ranges[key] = parsed
    rules.check_ranges(ranges, problems)
    if len(ranges) < len(NETWORK_KEYS):
        return None
    return Network(ranges["subnet"], ranges["pod_cidr"], ranges["service_cidr"])


def _parse_api(
    raw: dict[str, Any] | None, problems: Problems
) -> tuple[ipaddress.IPv4Address | None, int]:
    if raw is None:
        return None, DEFAULT_API_PORT
    values = check_mapping(raw, API_KEYS, "api_endpoint", problems)
    port = values.get("port", DEFAULT_API_PORT)
    if not 1 <= port <= 65535:
        problems.add("api_endpoint.port", f"{port} is not a TCP port; use 1-65535")
    vip = None
    if "vip" in values:
        vip = parse_value(
            values["vip"], ipaddress.IPv4Address, "api_endpoint.vip", "an IPv4 address", problems
        )
    return vip, port


def _check_runtime_classes(raw: list[Any] | None, problems: Problems) -> None:
    """No sandboxed runtime class runs on these hosts: each one asked for is refused, a
    known one with the measured reason. An empty list asks for none."""
    for index, name in enumerate(raw or []):
        where = f"runtime_classes[{index}]"
        if not isinstance(name, str):
            problems.add(where, f"is {type(name).__name__} {name!r}, expected a class name")
        elif name in REFUSED_RUNTIME_CLASSES:
            problems.add(where, f"{name!r} is not offered: {REFUSED_RUNTIME_CLASSES[name]}")
        else:
            problems.add(
                where,
                f"unknown value {name!r}; no runtime class is offered on these hosts "
                f"(refused, each with its reason: {', '.join(REFUSED_RUNTIME_CLASSES)})",
            )


def _parse_nodes(
    raw: dict[str, Any] | None,
    defaults: dict[str, Any],
    runtime: str | None,
    logins: access.Access,
    problems: Problems,
) -> list[tuple[Node, str]]:
    """Nodes with the field path they came from (for messages about them)."""
    if raw is None:
        return []
    groups = check_mapping(raw, NODES_KEYS, "nodes", problems)
    nodes: list[tuple[Node, str]] = []
    for role in Role:
        for index, entry in enumerate(groups.get(role) or []):
            where = f"nodes.{role}[{index}]"
            if not isinstance(entry, dict):
                problems.add(
                    where, f"is {type(entry).__name__}, expected a mapping with name and address"
                )
                continue
            values = check_mapping(entry, NODE_KEYS, where, problems)
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
                address = parse_value(
                    values["address"],
                    ipaddress.IPv4Address,
                    f"{where}.address",
                    "an IPv4 address",
                    problems,
                )
            built_in = {"cpus": DEFAULT_CPUS, "memory_mb": DEFAULT_MEMORY_MB}
            least = access.resource_defaults(logins.provider, role, built_in)
            cpus = values.get("cpus", defaults.get("cpus", least["cpus"]))
            memory = values.get("memory_mb", defaults.get("memory_mb", least["memory_mb"]))
            login, interface = logins.node(values, where, problems)
            check_minimums(values, where, problems)
            if role == Role.CONTROL_PLANE:
                resources = {"cpus": cpus, "memory_mb": memory}
                rules.check_control_plane_minimums(values, resources, where, problems)
            if name is None or address is None:
                continue
            node_runtime = values.get("container_runtime", runtime or RUNTIMES[0])
            own_runtime = "container_runtime" in values
            runtime_field = f"{where}.container_runtime" if own_runtime else "container_runtime"
            if role == Role.CONTROL_PLANE:
                rules.check_control_plane_runtime(node_runtime, own_runtime, where, problems)
            node = Node(
                name,
                role,
                address,
                cpus,
                memory,
                node_runtime,
                runtime_field,
                login,
                interface,
                zone=values.get("zone", ""),
            )
            nodes.append((node, where))
    return nodes


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
