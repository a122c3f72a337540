"""Each role's molecule scenario: `molecule test` (create, prepare, converge, idempotence,
verify, destroy) on lab host containers of the node image, one role at a time.

Roles: $K8SLAB_MOLECULE_ROLES (space-separated; default: every role with a scenario).
The cluster roles (control_plane, worker, cni_*, metallb) kubeadm a cluster in their
prepare step and take many minutes each; see the README for measured times. A scenario
that installs an optional bundle part the bundle lacks, or holds built from an older
recipe, is skipped, naming the command that builds it (scripts/test builds the metallb,
addons, cloud-provider and cilium parts in its --full mode only).
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.molecule import molecule_env, roles_with_scenarios, run_molecule, unusable_part

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROLES = os.environ.get("K8SLAB_MOLECULE_ROLES", " ".join(roles_with_scenarios())).split()


def _molecule_objects() -> list[str]:
    """Containers and networks molecule left in the engine (they carry owner=molecule)."""
    found: list[str] = []
    for command in (["docker", "ps", "--all"], ["docker", "network", "ls"]):
        found += subprocess.run(
            [*command, "--quiet", "--filter", "label=owner=molecule"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    return found


@pytest.mark.parametrize("role", ROLES)
def test_role_scenario_converges_idempotently_and_verifies(role: str) -> None:
    unusable = unusable_part(role)
    if unusable:
        pytest.skip(unusable)
    assert run_molecule(role, ["test"], molecule_env()) == 0, (
        f"`python -m tests.molecule {role} test` failed; its output is above"
    )
    assert _molecule_objects() == [], f"molecule left objects behind after {role}"
