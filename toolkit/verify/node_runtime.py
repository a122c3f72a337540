"""Reading a node's kubelet, container runtime and CNI from the text the node gives: the
kubelet's configuration and kubeadm's flags (which CRI socket), `ss -Hxpn` (the kubelet's
connection to that socket), the runtime's sandboxes and containers, a CNI configuration.

Pure functions and the command lines the nodes suite runs, so that its judgements are
unit-tested without a lab.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

# Where kubeadm, the kubelet and the CNI keep what these functions read.
KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
KUBEADM_FLAGS = "/var/lib/kubelet/kubeadm-flags.env"
CNI_CONF_DIR = "/etc/cni/net.d"
CNI_BIN_DIR = "/opt/cni/bin"

KUBELET_HEALTHZ = "curl -sS --max-time 5 http://127.0.0.1:10248/healthz"
KUBELET_ANONYMOUS = (
    "curl -sk --max-time 5 -o /dev/null -w '%{http_code}' https://127.0.0.1:10250/pods"
)
KUBE_PROXY_RUNNING = "crictl ps --name '^kube-proxy$' --state running -q"
KUBE_PROXY_MODE = "curl -sS --max-time 5 http://127.0.0.1:10249/proxyMode"
KUBE_SERVICES_RULES = "iptables -t nat -S KUBE-SERVICES"
# Each runtime's own list of containers with their images, a header line first: a Pod
# sandbox's ID is its pause container's (containerd), or its sandbox container's in Docker
# Engine (cri-dockerd).
SANDBOX_CONTAINERS = {
    "containerd": "ctr -n k8s.io containers list",
    "docker": "docker ps --no-trunc --format 'table {{.ID}}\t{{.Image}}'",
}
UNIX_SOCKETS = "ss -Hxpn"


def crictl(endpoint: str) -> str:
    return f"crictl --runtime-endpoint {endpoint} --timeout 10s"


def runtime_identity(version: str) -> tuple[str, str]:
    """The runtime's name and version as ``crictl version`` gives them ("" for a field
    missing): containerd says containerd, cri-dockerd says docker."""
    answer = dict(line.split(":", 1) for line in version.splitlines() if ":" in line)
    return answer.get("RuntimeName", "").strip(), answer.get("RuntimeVersion", "").strip()


def pod_left_command(endpoint: str, pod: str) -> str:
    """Prints the IDs of what the runtime still runs of the Pod named ``pod``: its
    containers, and its sandbox while ready (nothing once the Pod is gone)."""
    label = f"io.kubernetes.pod.name={pod}"
    return f"{crictl(endpoint)} ps -q --label {label}; " + (
        f"{crictl(endpoint)} pods -q --state ready --label {label}"
    )


def read_kubelet_config(text: str) -> dict[str, Any]:
    """The kubelet's configuration file, read ({} when it is no YAML mapping)."""
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return config if isinstance(config, dict) else {}


def kubeadm_flag(flags: str, name: str) -> str:
    """The value of ``--<name>`` in kubeadm's flags file ("" without one)."""
    value = ""
    for word in flags.replace('"', " ").split():
        if word.startswith(f"--{name}="):
            value = word.split("=", 1)[1]
    return value


def endpoint_flag(flags: str) -> str:
    """The ``--container-runtime-endpoint`` of kubeadm's flags file ("" without one)."""
    return kubeadm_flag(flags, "container-runtime-endpoint")


def kubelet_connected_to(ss_unix: str, path: str) -> bool:
    """Whether `ss -Hxpn` shows the kubelet connected to the socket listening at ``path``:
    a connection of the kubelet's whose peer inode is that socket's."""
    listening, kubelet_peers = set(), set()
    for line in ss_unix.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        local, local_inode, peer_inode = fields[4], fields[5], fields[7]
        if local == path:
            listening.add(local_inode)
        if '"kubelet"' in line:
            kubelet_peers.add(peer_inode)
    return bool(listening & kubelet_peers)


@dataclass(frozen=True)
class Sandboxes:
    """A node's ready Pod sandboxes and what does not match: a ready sandbox without its
    pause container, a running container without a ready sandbox."""

    ready: frozenset[str]
    without_pause: frozenset[str]
    orphans: frozenset[str]  # container names


def sandboxes(ready: str, containers: str, running: str) -> Sandboxes:
    """From ``crictl pods --state ready -q``, the runtime's SANDBOX_CONTAINERS listing
    (``ctr -n k8s.io containers list``, or ``docker ps`` under cri-dockerd: each sandbox a
    container of the pause image) and ``crictl ps --state running -o json``."""
    pause_ids = {line.split()[0] for line in containers.splitlines()[1:] if "/pause:" in line}
    ready_ids = frozenset(ready.split())
    orphans = {
        c["metadata"]["name"]
        for c in json.loads(running).get("containers", [])
        if c["podSandboxId"] not in ready_ids
    }
    return Sandboxes(ready_ids, ready_ids - pause_ids, frozenset(orphans))


def cni_configurations(listing: str) -> list[str]:
    """The CNI configuration files in a listing of its directory, in the order the runtime
    takes them: it uses the first."""
    return sorted(f for f in listing.split() if f.endswith((".conf", ".conflist")))


def cni_plugin_types(conf: dict[str, Any]) -> list[str]:
    """The plugins a CNI configuration runs: a list's, or a single plugin's own type."""
    return [p["type"] for p in conf.get("plugins", [conf])]


def missing_plugins_command(types: list[str]) -> str:
    """Prints each of the plugins ``types`` that is no executable in the CNI's bin dir."""
    return " ; ".join(f"test -x {CNI_BIN_DIR}/{t} || echo {t}" for t in types)
