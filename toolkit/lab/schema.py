"""The lab spec's schema: the keys each mapping allows, and the engine that checks them.

A check adds problems (field path and fix) to a :class:`Problems` instead of raising, so
that one pass reports everything wrong with a spec; what is usable comes back to build on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit import versions
from toolkit.constants import CLOUD_PROVIDERS, CRI_RUNTIMES
from toolkit.errors import SpecError
from toolkit.lab.model import EXISTING, Role

PROVIDERS = ("docker", "libvirt", "virtualbox", EXISTING)
TOPOLOGIES = ("stacked", "external")
# The runtimes provisioning installs (toolkit/constants.py: their CRI sockets and units).
RUNTIMES = tuple(CRI_RUNTIMES)
# gVisor, measured in a lab node for issue 13 (docs/labs.md): refused as a node's runtime
# and as a RuntimeClass, since k8slab never patches third-party source.
GVISOR_REFUSAL = (
    "gVisor runs no Pod on these lab hosts unpatched: its containerd shim "
    "(containerd-shim-runsc-v1) fails every sandbox with 'failed to set OOM Score on shim: "
    "... permission denied' (the hosts lack CAP_SYS_RESOURCE), and runsc under containerd's "
    "runc shim never finishes starting a Pod's containers nor reports their exit (it hands "
    "them the stdio of `runsc start` and names the sandbox's PID for each)"
)
# Runtimes the architecture names that these labs cannot have, each with the reason
# (measured on the project's machines for issue 13: the refusals and compile errors).
REFUSED_RUNTIMES = {
    "cri-o": (
        "CRI-O cannot be built here: the Go module proxy serves github.com/cri-o/cri-o only "
        "at v1.34.0, whose dependencies github.com/containerd/nri "
        "v0.9.1-0.20250219030224-e597e7849f24 and github.com/CloudNativeAI/model-spec v0.0.4 "
        "are refused (the checksum database has neither), and neither served nri release "
        "has the API it calls (v0.9.0 lacks UpdatePodSandboxRequest, v0.10.0 "
        "FromCRILinuxResources)"
    ),
    "frakti": (
        "frakti is archived upstream and runs each Pod in a virtual machine; lab hosts here "
        "have no usable hypervisor (/dev/kvm is a paravirtual KVM that boots nothing)"
    ),
    "gvisor": GVISOR_REFUSAL,
}
# Sandboxed runtimes a lab might offer beside runc as RuntimeClasses (the spec's
# runtime_classes): none runs on these hosts, each refused with the reason.
REFUSED_RUNTIME_CLASSES = {
    "gvisor": GVISOR_REFUSAL,
    "kata": (
        "Kata Containers runs each Pod in a virtual machine; lab hosts here have no usable "
        "hypervisor (/dev/kvm is a paravirtual KVM that boots nothing)"
    ),
}
CNIS = ("flannel", "bridge")
# CNI plugins the architecture names that these labs cannot have, each with the reason
# (each exact release tried once at the Go module proxy on 2026-11-28, for issue 14).
REFUSED_CNIS = {
    "calico": (
        "Calico cannot be built here: the Go module proxy refuses github.com/projectcalico/"
        "calico (v3.31.0 and v3.30.3 tried) and github.com/projectcalico/api (its version "
        "list and pseudo-versions), which every Calico component imports"
    ),
    "weave": (
        "Weave Net is archived upstream, and the Go module proxy refuses "
        "github.com/weaveworks/weave (v2.8.1, its last release, tried)"
    ),
    "kube-router": (
        "kube-router is served (github.com/cloudnativelabs/kube-router/v2 v2.1.0) but has "
        "reported security flaws, so the labs do not offer it"
    ),
}
DEFAULT_API_PORT = 8443
# The smallest machine a node may ask for (a control plane needs more: rules.py).
NODE_MINIMUMS = {"cpus": 1, "memory_mb": 512}


@dataclass(frozen=True)
class Key:
    """One allowed key of a mapping: its type, whether it is required, its check."""

    kind: type | tuple[type, ...]
    required: bool = True
    choices: tuple[str, ...] = ()
    hint: str = ""
    # Values known but not offered, each with the reason said instead of "unknown value".
    refused: Mapping[str, str] = field(default_factory=dict)


NODE_KEYS: dict[str, Key] = {
    "name": Key(str, hint="a hostname such as cp1"),
    "address": Key(str, hint="an IPv4 address inside network.subnet"),
    "cpus": Key(
        int, required=False, hint=f"a whole number of CPUs, at least {NODE_MINIMUMS['cpus']}"
    ),
    "memory_mb": Key(
        int, required=False, hint=f"memory in MiB, at least {NODE_MINIMUMS['memory_mb']}"
    ),
    "container_runtime": Key(str, required=False, choices=RUNTIMES, refused=REFUSED_RUNTIMES),
    "zone": Key(str, required=False, hint="the node's zone in the lab's cloud, e.g. zone-a"),
}
# How k8slab reaches an existing host (provider: existing only; toolkit/lab/access.py).
ACCESS_KEYS: dict[str, Key] = {
    "ssh_user": Key(str, required=False, hint="the user to log in as, with sudo"),
    "ssh_key": Key(str, required=False, hint="the path of that user's private key"),
    "ssh_port": Key(int, required=False, hint="sshd's TCP port, 22 by default"),
    "interface": Key(str, required=False, hint="the interface that carries the lab network"),
}
NODE_KEYS.update(ACCESS_KEYS)
HOST_POWER_KEYS: dict[str, Key] = {
    "stop": Key(str, hint="a command that stops the host named {name} (or at {address})"),
    "start": Key(str, hint="a command that starts it again"),
}
TOP_KEYS: dict[str, Key] = {
    "name": Key(str, hint="the lab's name, the same as its folder"),
    "provider": Key(str, choices=PROVIDERS),
    "kubernetes_version": Key(str, hint="for example " + versions.DEFAULT_KUBERNETES_VERSION),
    "etcd_topology": Key(str, choices=TOPOLOGIES),
    "container_runtime": Key(str, choices=RUNTIMES, refused=REFUSED_RUNTIMES),
    "cni": Key(str, choices=CNIS, refused=REFUSED_CNIS),
    "network": Key(dict),
    "api_endpoint": Key(dict),
    "node_defaults": Key(dict, required=False),
    "nodes": Key(dict),
    "addons": Key(
        list,
        required=False,
        hint="cluster add-ons: metrics-server, monitoring, logging (docs/labs.md)",
    ),
    "network_policy": Key(
        bool,
        required=False,
        hint="true: NetworkPolicy is enforced (Cilium chained after the CNI), false by default",
    ),
    "runtime_classes": Key(
        list,
        required=False,
        hint="sandboxed runtimes beside runc; none is offered on these hosts (docs/labs.md)",
    ),
    "host_power": Key(dict, required=False, hint="with provider: existing, stop and start"),
    "load_balancer": Key(
        dict, required=False, hint="LoadBalancer Services: a mapping with pool (docs/labs.md)"
    ),
    "cloud_provider": Key(str, required=False, choices=tuple(CLOUD_PROVIDERS)),
}
LOAD_BALANCER_KEYS: dict[str, Key] = {
    "pool": Key(
        list,
        hint="a list of address ranges inside network.subnet, each a CIDR "
        "(172.30.2.240/29) or first-last (172.30.2.240-172.30.2.250)",
    ),
}
NETWORK_KEYS: dict[str, Key] = {
    "subnet": Key(str, hint="the lab network in CIDR form, e.g. 172.30.2.0/24"),
    "pod_cidr": Key(str, hint="the Pod range in CIDR form, e.g. 10.244.0.0/16"),
    "service_cidr": Key(str, hint="the Service range in CIDR form, e.g. 10.96.0.0/16"),
}
API_KEYS: dict[str, Key] = {
    "vip": Key(str, hint="a free IPv4 address inside network.subnet"),
    "port": Key(
        int, required=False, hint=f"the load balancer's TCP port, {DEFAULT_API_PORT} by default"
    ),
}
DEFAULTS_KEYS: dict[str, Key] = {key: NODE_KEYS[key] for key in (*NODE_MINIMUMS, *ACCESS_KEYS)}
# Keyed by the role's plain string: the messages quote these keys with repr().
NODES_KEYS: dict[str, Key] = {
    Role.CONTROL_PLANE.value: Key(list, hint="a list of nodes"),
    Role.ETCD.value: Key(list, required=False, hint="a list of nodes (external topology only)"),
    Role.WORKER.value: Key(list, required=False, hint="a list of nodes"),
}


def display_path(path: Path) -> str:
    """``path`` as its user sees it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError, RuntimeError):  # RuntimeError: a symlink loop (Python 3.11)
        return str(path)


class Problems:
    """Collects every problem of one spec file, each naming the file, field and fix."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []

    def add(self, field_path: str, message: str) -> None:
        self.lines.append(f"{display_path(self.path)}: {field_path}: {message}")

    def raise_if_any(self) -> None:
        if self.lines:
            count = len(self.lines)
            head = (
                f"{display_path(self.path)}: {count} problem{'s' if count > 1 else ''} "
                "in the lab spec"
            )
            raise SpecError("\n".join([head, *("  " + line for line in self.lines)]))


def check_mapping(
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
        if isinstance(value, str) and value in rule.refused:
            problems.add(
                f"{prefix}{key}",
                f"{value!r} is not offered: {rule.refused[value]}; use one of: "
                + ", ".join(rule.choices),
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


def check_minimums(values: dict[str, Any], where: str, problems: Problems) -> None:
    """A node's (or node_defaults') cpus and memory_mb, if given, against NODE_MINIMUMS."""
    for key, minimum in NODE_MINIMUMS.items():
        value = values.get(key)
        if value is not None and value < minimum:
            problems.add(f"{where}.{key}", f"is {value}; it must be at least {minimum}")


def parse_value(
    value: str, parser: Callable[[str], Any], field_path: str, what: str, problems: Problems
) -> Any:
    """``parser(value)``, or None and a problem saying the value is not ``what``."""
    try:
        return parser(value)
    except ValueError as exc:
        problems.add(field_path, f"{value!r} is not {what} ({exc})")
        return None


def _type_name(kind: type | tuple[type, ...]) -> str:
    names = {
        str: "a string",
        int: "a whole number",
        bool: "true or false",
        dict: "a mapping",
        list: "a list",
    }
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


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
