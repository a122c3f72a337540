"""The cluster add-ons a spec may ask for (``addons: [...]``), what each is made of, and the
rules a spec that asks for them must meet (names, the node memory they take).

Provisioning installs them from the bundle's ``addons`` part (roles/addons); verify's group
``addons`` proves each one's purpose. Their memory limits have this one home: the rendered
inventory hands them to the role, and the rules below check them against the nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from toolkit.bundle.addons import IMAGES
from toolkit.errors import K8slabError
from toolkit.lab.model import Lab, Node, Role
from toolkit.lab.schema import Problems

# The optional bundle part every add-on comes from (toolkit/bundle/addons.py).
# The namespace the add-ons run in (metrics-server stays in kube-system, as upstream's).
NAMESPACE = "k8slab-addons"
# Memory limits of each add-on program's container, in MiB (the manifests' limits).
MEMORY_MB = {
    "metrics-server": 128,
    "prometheus": 640,
    "kube-state-metrics": 128,
    "node-exporter": 48,
    "victoria-logs": 256,
    "vlagent": 128,
}
# What a node needs for itself before any add-on: its kubelet, runtime, kube-proxy, the
# CNI's and CoreDNS's Pods; a control plane also runs the API server and its peers.
RESERVED_MB = {Role.WORKER: 1024, Role.CONTROL_PLANE: 1536}


@dataclass(frozen=True)
class Ui:
    """An add-on's web UI, reached from this machine on a NodePort of any node."""

    name: str  # as `k8slab open LAB NAME` takes it
    service: str
    node_port: int
    path: str  # the page a person opens first

    def base(self, lab: Lab) -> str:
        """Its server on the lab's first worker (where the add-ons' Pods run)."""
        return f"http://{lab.workers[0].address}:{self.node_port}"

    def url(self, lab: Lab) -> str:
        return self.base(lab) + self.path


@dataclass(frozen=True)
class Addon:
    name: str
    what: str
    deployments: tuple[str, ...]  # programs that run once, on a worker
    daemonsets: tuple[str, ...]  # programs that run on every node
    # Whether it reads the kubelets' serving endpoints (kubelets then get certificates
    # signed by the cluster's CA, approved by provisioning: no --kubelet-insecure-tls).
    kubelet_serving_certs: bool
    # Whether it scrapes etcd's metrics listener, which then listens on the node's address.
    etcd_metrics: bool
    ui: Ui | None = None

    @property
    def programs(self) -> tuple[str, ...]:
        return self.deployments + self.daemonsets


# Debian's Prometheus serves a page about its UIs at /graph; its classic UI is here.
PROMETHEUS_UI = Ui("prometheus", "prometheus", 30090, "/classic/graph")
LOGS_UI = Ui("logs", "victoria-logs", 30428, "/select/vmui/")
ADDONS = {
    a.name: a
    for a in (
        Addon(
            "metrics-server",
            "resource metrics for kubectl top and the HorizontalPodAutoscaler",
            ("metrics-server",),
            (),
            kubelet_serving_certs=True,
            etcd_metrics=False,
        ),
        Addon(
            "monitoring",
            "Prometheus with kube-state-metrics and node_exporter, and alerting rules",
            ("prometheus", "kube-state-metrics"),
            ("node-exporter",),
            kubelet_serving_certs=True,
            etcd_metrics=True,
            ui=PROMETHEUS_UI,
        ),
        Addon(
            "logging",
            "VictoriaLogs with vlagent shipping every container's log",
            ("victoria-logs",),
            ("vlagent",),
            kubelet_serving_certs=False,
            etcd_metrics=False,
            ui=LOGS_UI,
        ),
    )
}
NAMES = tuple(ADDONS)
# Add-ons the architecture names that these labs cannot have, each with the reason.
REFUSED = {
    "dashboard": (
        "neither the Kubernetes Dashboard nor Headlamp can be built here (the Go module "
        "proxy refuses their modules and no npm registry serves their builds); "
        "`k8slab k9s LAB` runs k9s, a terminal UI, against the lab instead"
    ),
    "grafana": "Grafana is AGPL-licensed; the monitoring add-on's Prometheus has its own UI",
    "loki": "Loki is AGPL-licensed; the logging add-on is VictoriaLogs (Apache-2.0)",
    "alertmanager": (
        "Alertmanager's module does not build here (its web UI is Elm); the monitoring "
        "add-on's alerts are read from Prometheus itself"
    ),
}


def parse(raw: Any, problems: Problems) -> tuple[str, ...]:
    """The add-ons a spec's ``addons:`` names, in the catalogue's order; each problem of
    the list (not a list, unknown or refused names, repeats) added to ``problems``."""
    if raw is None:
        return ()
    chosen: list[str] = []
    for index, name in enumerate(raw):
        where = f"addons[{index}]"
        if not isinstance(name, str):
            problems.add(where, f"is {type(name).__name__} {name!r}, expected an add-on name")
        elif name in REFUSED:
            problems.add(where, f"{name!r} is not offered: {REFUSED[name]}")
        elif name not in ADDONS:
            problems.add(where, f"unknown add-on {name!r}; use some of: {', '.join(NAMES)}")
        elif name in chosen:
            problems.add(where, f"{name!r} is named twice; name each add-on once")
        else:
            chosen.append(name)
    return tuple(n for n in NAMES if n in chosen)


def check_memory(
    addons: tuple[str, ...], nodes: list[tuple[Node, str]], problems: Problems
) -> None:
    """Every Kubernetes node holds its own share plus the add-ons' DaemonSets; the workers
    hold the add-ons' Deployments on top (the manifests set these limits; a node container
    is capped at its memory_mb, so an add-on that does not fit is killed)."""
    if not addons:
        return
    chosen = [ADDONS[name] for name in addons]
    per_node = sum(MEMORY_MB[p] for a in chosen for p in a.daemonsets)
    once = sum(MEMORY_MB[p] for a in chosen for p in a.deployments)
    kube = [(n, w) for n, w in nodes if n.role in RESERVED_MB]
    workers = [(n, w) for n, w in kube if n.role == Role.WORKER]
    if not workers:
        problems.add("addons", "add-ons run on workers; add a worker under nodes.workers")
        return
    for node, where in kube:
        needed = RESERVED_MB[node.role] + per_node
        if node.memory_mb < needed:
            problems.add(
                f"{where}.memory_mb",
                f"is {node.memory_mb}; with the add-ons {', '.join(addons)} node {node.name} "
                f"needs at least {needed} ({RESERVED_MB[node.role]} of its own, {per_node} for "
                "the add-ons' per-node Pods)",
            )
    spare = sum(n.memory_mb - RESERVED_MB[Role.WORKER] - per_node for n, _ in workers)
    if spare < once:
        problems.add(
            "nodes.workers",
            f"have {max(spare, 0)} MiB left for the add-ons' other Pods, which need {once}; "
            f"raise the workers' memory_mb by {once - max(spare, 0)} in all",
        )


def inventory_vars(addons: tuple[str, ...]) -> dict[str, Any]:
    """The add-ons as the rendered inventory gives them to every host."""
    chosen = [ADDONS[name] for name in addons]
    return {
        "k8slab_addons": list(addons),
        "k8slab_addons_namespace": NAMESPACE,
        "k8slab_addons_memory_mb": MEMORY_MB,
        "k8slab_addons_images": {p: IMAGES[p] for a in chosen for p in a.programs},
        # DaemonSets' images go onto every node, the others' onto the workers only.
        "k8slab_addons_node_images": [IMAGES[p] for a in chosen for p in a.daemonsets],
        "k8slab_addons_worker_images": [IMAGES[p] for a in chosen for p in a.deployments],
        "k8slab_addons_node_ports": {a.ui.service: a.ui.node_port for a in chosen if a.ui},
        "k8slab_kubelet_serving_certs": any(a.kubelet_serving_certs for a in chosen),
        "k8slab_etcd_metrics_on_node_address": any(a.etcd_metrics for a in chosen),
    }


def uis(lab: Lab, name: str = "") -> list[Ui]:
    """The web UIs of the lab's add-ons, or the one ``name`` names (a UI's name or its
    add-on's); an error saying which there are otherwise."""
    found = {a.ui.name: (a.name, a.ui) for a in map(ADDONS.get, lab.addons) if a and a.ui}
    if not found:
        raise K8slabError(
            f"lab {lab.name} has no add-on with a web UI; add monitoring or logging to "
            f"addons: in {lab.source}"
        )
    if not name:
        return [ui for _, ui in found.values()]
    for ui_name, (addon, ui) in found.items():
        if name in (ui_name, addon):
            return [ui]
    names = ", ".join(f"{n} ({a})" for n, (a, _) in found.items())
    raise K8slabError(f"lab {lab.name} has no web UI {name!r}; its UIs are: {names}")
