"""What provisioning and etcd used to import from here, now in :mod:`toolkit.kube`.

Kept only until ``toolkit/etcd/restore.py``, ``toolkit/verify/workload.py``,
``toolkit/provision/run.py`` and the e2e tests import :mod:`toolkit.kube` themselves
(issue 12); nothing new is to be added here.
"""

from __future__ import annotations

from toolkit import kube
from toolkit.kube import is_ready, wait_for_ready_nodes, wait_for_system_workloads
from toolkit.lab.spec import Lab

__all__ = ["is_ready", "kubectl", "wait_for_ready_nodes", "wait_for_system_workloads"]


def kubectl(lab: Lab, args: list[str], timeout: float = 120) -> tuple[int, str]:
    """:func:`toolkit.kube.kubectl` on the first control plane, with this old signature."""
    return kube.kubectl(lab, args, timeout=timeout)
