"""Molecule scenarios of the Ansible roles: the environment they run in.

Each role has a scenario under roles/<role>/molecule/default; the shared configuration is
.config/molecule/config.yml. The scenarios take the node image, the engine's run flags and
the bundle from here, so they run on the hosts a lab gets and never build or pull.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from toolkit.bundle.store import bundle_dir
from toolkit.hosts import engine
from toolkit.hosts.image import image_present, node_image
from toolkit.paths import ROLES_DIR
from toolkit.versions import DEFAULT_KUBERNETES_VERSION, release

MOLECULE = Path(sys.executable).parent / "molecule"


class MoleculeSetupError(Exception):
    """What a scenario needs is missing; the message says how to make it."""


def roles_with_scenarios() -> list[str]:
    return sorted(path.parents[2].name for path in ROLES_DIR.glob("*/molecule/*/molecule.yml"))


def molecule_env(kubernetes_version: str = DEFAULT_KUBERNETES_VERSION) -> dict[str, str]:
    """The environment of a `molecule` run: node image, the engine's run flags, bundle.

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
    fail_cgroup_v1 = not release(kubernetes_version).needs_fail_cgroup_v1_false
    # molecule runs ansible-config, ansible-playbook... by name: the venv's must come first.
    venv_bin = str(MOLECULE.parent)
    return {
        **os.environ,
        "PATH": os.pathsep.join([venv_bin, os.environ.get("PATH", "")]),
        "K8SLAB_NODE_IMAGE": image,
        "K8SLAB_MOLECULE_RUN_ARGS": json.dumps(
            engine.host_run_args(engine.privileged_allowed(image))
        ),
        "K8SLAB_MOLECULE_BUNDLE_DIR": str(bundle),
        "K8SLAB_MOLECULE_FAIL_CGROUP_V1": str(fail_cgroup_v1).lower(),
    }


def run_molecule(role: str, arguments: list[str], env: dict[str, str]) -> int:
    """Run `molecule ARGUMENTS` (default: test) in the role's folder; return its exit code."""
    role_dir = ROLES_DIR / role
    if role not in roles_with_scenarios():
        raise MoleculeSetupError(
            f"role {role!r} has no molecule scenario (roles/{role}/molecule/default); "
            f"roles with one: {', '.join(roles_with_scenarios())}"
        )
    command = [str(MOLECULE), *(arguments or ["test"])]
    return subprocess.run(command, cwd=role_dir, env=env, check=False).returncode
