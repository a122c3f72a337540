"""The lab's cloud in its spec: ``cloud_provider`` and each node's ``zone``.

``cloud_provider: k8slab`` gives the lab a cloud-controller-manager (the bundle's
cloud-provider part, roles/cloud_provider) whose cloud is the spec: every Kubernetes node
then needs the zone it sits in, a label value (``topology.kubernetes.io/zone``); the
region is the lab's name. With ``none``, kubeadm's default, no node may name a zone, which
nothing would apply.
"""

from __future__ import annotations

import re

from toolkit.lab.model import Node, Role
from toolkit.lab.schema import Problems

# A Kubernetes label value, not empty (validation.IsValidLabelValue).
ZONE_RE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
ZONE_HINT = "letters, digits, '-', '_' and '.', at most 63, starting and ending alphanumeric"


def check_zones(cloud_provider: str, nodes: list[tuple[Node, str]], problems: Problems) -> None:
    """Each node's zone against the lab's cloud_provider (``nodes``: with their field paths)."""
    cloud = cloud_provider != "none"
    for node, where in nodes:
        field_path = f"{where}.zone"
        if node.role == Role.ETCD:
            if node.zone:
                problems.add(
                    field_path,
                    "an etcd host is not a Kubernetes node, so no cloud provider zones it; "
                    "remove the zone",
                )
        elif not cloud:
            if node.zone:
                problems.add(
                    field_path,
                    f"is {node.zone!r} but the lab has no cloud provider to apply it; add "
                    "`cloud_provider: k8slab` or remove the zone",
                )
        elif not node.zone:
            problems.add(
                field_path,
                f"missing: cloud_provider is {cloud_provider!r}, which zones every Kubernetes "
                f"node; add one (for example zone-a: {ZONE_HINT})",
            )
        elif not ZONE_RE.fullmatch(node.zone):
            problems.add(field_path, f"{node.zone!r} is not a zone name; use {ZONE_HINT}")
