"""What an upgrade does, before it does anything: the versions it goes between, checked
against kubeadm's skew policy, and its steps in order.

The order is kubeadm's "Upgrading kubeadm clusters": the new kubeadm shows its plan; the
external etcd members go first, one at a time (kubeadm upgrades a stacked etcd itself,
with each control plane); then the control planes one at a time (``kubeadm upgrade
apply`` on the first, ``kubeadm upgrade node`` on the others), then the workers one at a
time, each node given the new kubeadm, upgraded, drained, given the new kubelet and
kubectl, and uncordoned. The spec then records the version and every provisioning phase
runs at it (``converged``): kubeadm upgrades only its own components.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from toolkit.errors import K8slabError
from toolkit.lab.spec import Lab, Node
from toolkit.versions import KubernetesRelease, release

VERSION_RE = re.compile(r"v(\d+)\.(\d+)\.(\d+)")
# A step's name in the journal: a whole-lab step, or NODE:ACTION.
STEP_NAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(:[a-z-]+)?")


class UpgradeError(K8slabError):
    """An upgrade was refused, or failed; the message says what stands and what to do."""


def parse_version(text: str) -> tuple[int, int, int]:
    """``(1, 35, 4)`` for ``v1.35.4``; an UpgradeError for anything else."""
    match = VERSION_RE.fullmatch(text)
    if match is None:
        raise UpgradeError(f"{text!r} is not a Kubernetes version like v1.35.4")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def check_versions(current: str, target: str) -> KubernetesRelease:
    """The target's release, once the move from ``current`` is one kubeadm allows: not a
    downgrade, and at most one minor version up (kubeadm's skew policy: "skipping MINOR
    versions when upgrading is unsupported"). A version the toolkit cannot supply is
    refused with the ones it can."""
    try:
        wanted = release(target)
    except K8slabError as exc:
        raise UpgradeError(str(exc)) from None
    have, want = parse_version(current), parse_version(target)
    if want < have:
        raise UpgradeError(
            f"the cluster runs {current}; {target} would be a downgrade, which kubeadm does "
            f"not do (restore an etcd backup of the older cluster instead)"
        )
    if want[0] != have[0] or want[1] > have[1] + 1:
        step = f"v{have[0]}.{have[1] + 1}"
        raise UpgradeError(
            f"the cluster runs {current}; {target} skips a minor version, which kubeadm's "
            f"skew policy does not allow: upgrade to the newest {step} first"
        )
    return wanted


@dataclass(frozen=True)
class PlannedStep:
    """One step of the plan: its name in the journal, the stage it is measured in, what
    it does (``action``, the key of its implementation) and the node it acts on."""

    name: str
    stage: str
    action: str
    message: str
    node: Node | None = None


# The steps of one node, in kubeadm's order; the first control plane applies, the others
# (and the workers) upgrade their node.
NODE_ACTIONS = {
    "kubeadm": "the target bundle's kubeadm",
    "upgrade": "kubeadm upgrade",
    "drain": "drain (PodDisruptionBudgets respected)",
    "kubelet": "the bundle's kubelet, kubectl and the rest (runtime phase); kubelet restarted",
    "uncordon": "uncordon",
}


def _node_steps(node: Node, stage: str, first: bool) -> list[PlannedStep]:
    steps = []
    for action, message in NODE_ACTIONS.items():
        if action == "upgrade":
            action = "apply" if first else "upgrade-node"
            message = "kubeadm upgrade apply" if first else "kubeadm upgrade node"
        steps.append(PlannedStep(f"{node.name}:{action}", stage, action, message, node))
    return steps


def plan_steps(
    lab: Lab, current: KubernetesRelease, target: KubernetesRelease
) -> list[PlannedStep]:
    """Every step of the upgrade of ``lab`` from ``current`` to ``target``, in order."""
    steps = [
        PlannedStep("plan", "plan", "plan", f"kubeadm {target.version} and its upgrade plan"),
        PlannedStep(
            "prepare",
            "prepare",
            "prepare",
            "the target bundle's images on every node; the kubelet configuration for it",
        ),
    ]
    if lab.etcd_topology == "external" and current.etcd != target.etcd:
        for member in lab.etcd_hosts:
            steps.append(
                PlannedStep(
                    f"{member.name}:etcd",
                    f"etcd {member.name}",
                    "etcd",
                    f"etcd {current.etcd} -> {target.etcd}, then the cluster's health",
                    member,
                )
            )
    for index, node in enumerate(lab.control_planes):
        steps += _node_steps(node, f"control-plane {node.name}", first=index == 0)
    for node in lab.workers:
        steps += _node_steps(node, f"worker {node.name}", first=False)
    steps += [
        PlannedStep("spec", "spec", "spec", f"kubernetes_version: {target.version} in the spec"),
        PlannedStep(
            "converged", "converged", "converged", f"every provisioning phase at {target.version}"
        ),
    ]
    return steps
