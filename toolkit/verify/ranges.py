"""The lab's Pod and Service ranges kept on each node (roles/prereqs containment.yml): how a
node shows it, read by verify's nodes suite and undone by the fault module."""

from __future__ import annotations

from toolkit.lab.spec import Lab

# The comment the prereqs role tags its Service-range rule with.
CONTAIN_COMMENT = "k8slab-contain"


def contained_commands(lab: Lab) -> tuple[str, str]:
    """Where an address of the Pod range that no node claims (its last one) is routed, and
    whether the Service range's drop rule is there."""
    unclaimed = lab.network.pod_cidr.broadcast_address - 1
    return (
        f"ip route get {unclaimed}",
        f"iptables -t mangle -C POSTROUTING -d {lab.network.service_cidr} -j DROP "
        f"-m comment --comment {CONTAIN_COMMENT}",
    )
