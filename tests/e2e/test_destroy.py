"""End to end: `k8slab destroy` on a real lab deletes nothing outside it, and keeps the
lab's etcd backups unless --purge. Labs: $K8SLAB_E2E_LABS (default: ha-stacked); the
second test destroys the lab, so it runs last on each (marker ``lab_teardown``)."""

from __future__ import annotations

import subprocess

import pytest
from click.testing import CliRunner

from toolkit import kube
from toolkit.cli import main
from toolkit.etcd import backup, list_backups
from toolkit.lab.spec import Lab
from toolkit.lab.state import LabState
from toolkit.paths import state_root

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def lab_containers(lab: Lab) -> list[str]:
    found = subprocess.run(
        ["docker", "ps", "-a", "--format", "{{.Names}}", "--filter", f"name=k8slab-{lab.name}-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return found.stdout.split()


def test_a_lab_argument_that_is_no_lab_name_deletes_nothing(provisioned_lab: Lab) -> None:
    lab = provisioned_lab
    before = sorted(path.name for path in state_root().iterdir())
    key = LabState.of(lab.name).private_key
    for bad in (f"{lab.name}/..", f"{lab.name}/../..", "../x", f"{lab.name}\n"):
        result = CliRunner().invoke(main, ["destroy", bad])
        assert result.exit_code == 1, (bad, result.output)
        assert "is neither a lab name" in result.output, result.output
    assert sorted(path.name for path in state_root().iterdir()) == before
    assert key.is_file()
    assert len(lab_containers(lab)) == len(lab.nodes)
    assert kube.not_ready_nodes(lab) == []


@pytest.mark.lab_teardown
def test_destroy_keeps_the_etcd_backups_unless_purged(provisioned_lab: Lab) -> None:
    lab = provisioned_lab
    taken = backup(lab)
    result = CliRunner().invoke(main, ["destroy", str(lab.source)])
    assert result.exit_code == 0, result.output
    assert "kept" in result.output and "--purge" in result.output, result.output
    assert lab_containers(lab) == []
    root = LabState.of(lab.name).root
    assert [entry.path for entry in list_backups(lab.name)][-1] == taken.path
    assert sorted(path.name for path in root.iterdir() if not path.name.startswith(".")) == [
        "backups"
    ]
    result = CliRunner().invoke(main, ["destroy", "--purge", str(lab.source)])
    assert result.exit_code == 0, result.output
    assert not root.exists()
