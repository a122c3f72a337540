"""Reaching a lab from this machine as its operator does: the admin kubeconfig for a plain
kubectl or helm, k9s from the bundle's k9s part, and the add-ons' web UIs."""

from __future__ import annotations

import os
from pathlib import Path

from toolkit.bundle import parts
from toolkit.errors import K8slabError
from toolkit.lab import addons
from toolkit.lab.spec import Lab
from toolkit.lab.state import LabState

K9S_PART = "k9s"


def kubeconfig(lab: Lab) -> Path:
    """The lab's admin kubeconfig (its server is the API's VIP, a lab address)."""
    path = LabState.of(lab.name).kubeconfig
    if not path.is_file():
        raise K8slabError(
            f"lab {lab.name} has no admin kubeconfig ({path}); bring it up with "
            f"`k8slab up {lab.name}`"
        )
    return path


def k9s(lab: Lab) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run the bundle's k9s against the lab: the
    admin kubeconfig, and k9s's own settings, logs and API discovery cache kept in the lab's
    state (client-go's cache is otherwise under $HOME, or the working folder without one)."""
    config = kubeconfig(lab)
    part = parts.load_part(lab.kubernetes_version, K9S_PART)
    (binary,) = [a for a in part.artifacts if a.name == "k9s"]
    program = parts.part_dir(lab.kubernetes_version, K9S_PART) / binary.path
    state = LabState.of(lab.name).root / "k9s"
    env = {
        **os.environ,
        "KUBECONFIG": str(config),
        "K9S_CONFIG_DIR": str(state),
        "KUBECACHEDIR": str(state / "cache"),
    }
    return [str(program), "--kubeconfig", str(config)], env


def ui_urls(lab: Lab, name: str = "") -> dict[str, str]:
    """Each web UI of the lab's add-ons (or the one ``name`` names) by name, with its URL."""
    return {ui.name: ui.url(lab) for ui in addons.uis(lab, name)}
