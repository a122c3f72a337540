"""Molecule scenarios of the Ansible roles: the environment they run in.

Each role has a scenario under roles/<role>/molecule/default; the shared configuration is
.config/molecule/config.yml. The scenarios take the node image, the engine's run flags and
the bundle from here (create.yml asks `python -m tests.molecule --settings`), so they run
on the hosts a lab gets and never build or pull.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from toolkit import constants
from toolkit.bundle import parts
from toolkit.bundle.store import bundle_dir
from toolkit.hosts import engine
from toolkit.hosts.image import image_present, node_image
from toolkit.lab import addons
from toolkit.paths import ROLES_DIR
from toolkit.versions import DEFAULT_KUBERNETES_VERSION, release

MOLECULE = Path(sys.executable).parent / "molecule"
# The roles whose scenario installs an optional part of the bundle (toolkit/bundle/parts.py).
SCENARIO_PARTS = {
    "docker_engine": "cri-dockerd",
    "metallb": "metallb",
    "addons": "addons",
    "cloud_provider": "cloud-provider",
    "cilium": "cilium",
}


class MoleculeSetupError(Exception):
    """What a scenario needs is missing; the message says how to make it."""


def roles_with_scenarios() -> list[str]:
    return sorted(path.parents[2].name for path in ROLES_DIR.glob("*/molecule/*/molecule.yml"))


def scenario_settings(kubernetes_version: str = DEFAULT_KUBERNETES_VERSION) -> dict[str, Any]:
    """What a scenario's hosts are made of: the node image, the engine's run flags, the bundle.

    tests/molecule/create.yml asks for these (`python -m tests.molecule --settings`) and
    keeps them in the scenario's ephemeral directory, where tests/molecule/group_vars read
    them: a plain `molecule test` in a role's folder needs nothing set beforehand.
    ``$K8SLAB_NODE_IMAGE``, when set, names the image instead of the current recipe's.
    """
    image = os.environ.get("K8SLAB_NODE_IMAGE") or node_image().tag
    if not image_present(image):
        raise MoleculeSetupError(
            f"node image {image} is missing; build it with scripts/setup "
            f"(or name a present one in K8SLAB_NODE_IMAGE)"
        )
    bundle = bundle_dir(kubernetes_version)
    if not (bundle / "bundle.json").is_file():
        raise MoleculeSetupError(
            f"bundle {bundle} is missing; build it with "
            f"`k8slab bundle build --kubernetes {kubernetes_version}`"
        )
    return {
        "node_image": image,
        "run_args": engine.host_run_args(engine.privileged_allowed(image)),
        "bundle_dir": str(bundle),
        "fail_cgroup_v1": not release(kubernetes_version).needs_fail_cgroup_v1_false,
        # The node paths and ports a rendered inventory gives every host.
        "constants": constants.inventory_vars(),
        # What a rendered inventory gives each node for its container runtime.
        "runtimes": {name: constants.node_runtime_vars(name) for name in constants.CRI_RUNTIMES},
        # What a rendered inventory gives every host for no add-on, and for all of them.
        "addons": {"none": addons.inventory_vars(()), "all": addons.inventory_vars(addons.NAMES)},
    }


def molecule_env(kubernetes_version: str = DEFAULT_KUBERNETES_VERSION) -> dict[str, str]:
    """The environment of a `molecule` run: this venv's commands first on PATH.

    molecule runs ansible-config, ansible-playbook... by name, so the venv's must come
    first. The scenario's settings are checked here too, to fail before molecule starts.
    """
    settings = scenario_settings(kubernetes_version)
    venv_bin = str(MOLECULE.parent)
    return {
        **os.environ,
        "PATH": os.pathsep.join([venv_bin, os.environ.get("PATH", "")]),
        "K8SLAB_NODE_IMAGE": settings["node_image"],
    }


def unusable_part(role: str, kubernetes_version: str = DEFAULT_KUBERNETES_VERSION) -> str:
    """Why the bundle part role's scenario installs cannot be used (not built, or built
    from an older recipe, which would test yesterday's part), with the command that builds
    it; empty if it can or the scenario needs none."""
    part = SCENARIO_PARTS.get(role)
    if not part:
        return ""
    if part not in parts.present(kubernetes_version):
        why = "which is not built"
    elif parts.out_of_date(kubernetes_version, [part]):
        why = "which was built from an older recipe"
    else:
        return ""
    return (
        f"role {role}'s scenario installs the bundle's {part} part, {why}: "
        f"run `{parts.build_command(kubernetes_version, part)}`"
    )


def run_molecule(
    role: str,
    arguments: list[str],
    env: dict[str, str],
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION,
) -> int:
    """Run `molecule ARGUMENTS` (default: test) in the role's folder; return its exit code."""
    role_dir = ROLES_DIR / role
    if role not in roles_with_scenarios():
        raise MoleculeSetupError(
            f"role {role!r} has no molecule scenario (roles/{role}/molecule/default); "
            f"roles with one: {', '.join(roles_with_scenarios())}"
        )
    unusable = unusable_part(role, kubernetes_version)
    if unusable:
        raise MoleculeSetupError(unusable)
    command = [str(MOLECULE), *(arguments or ["test"])]
    return subprocess.run(command, cwd=role_dir, env=env, check=False).returncode
