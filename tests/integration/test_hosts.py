"""Real lab hosts: `k8slab up single` through Vagrant's docker provider, reached by
Ansible and testinfra, then `k8slab destroy single` leaving nothing behind."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import testinfra
from click.testing import CliRunner

from toolkit import ansible
from toolkit.cli import main
from toolkit.hosts import engine
from toolkit.lab.spec import Lab, load_lab
from toolkit.lab.state import LabState

pytestmark = [pytest.mark.integration]

LAB = "single"


@pytest.fixture(scope="module")
def lab_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, LabState]]:
    state_root = tmp_path_factory.mktemp("state")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("K8SLAB_STATE_DIR", str(state_root))
        result = CliRunner().invoke(main, ["up", LAB, "--hosts-only"])
        assert result.exit_code == 0, result.output
        yield load_lab(LAB), LabState.of(LAB)
        CliRunner().invoke(main, ["destroy", LAB])


def test_status_shows_every_node_reachable(lab_up: tuple[Lab, LabState]) -> None:
    result = CliRunner().invoke(main, ["status", LAB, "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["name"], r["state"], r["reachable"]) for r in rows] == [
        ("cp1", "running", True),
        ("w1", "running", True),
    ]


def test_ansible_reaches_every_host(lab_up: tuple[Lab, LabState]) -> None:
    lab, state = lab_up
    stats = ansible.ping(state)
    assert stats.status == "successful"
    assert sorted(stats.ok) == sorted(node.name for node in lab.nodes)
    assert not stats.failures and not stats.unreachable


@pytest.fixture(params=["cp1", "w1"])
def host(request: pytest.FixtureRequest, lab_up: tuple[Lab, LabState]) -> testinfra.host.Host:
    _, state = lab_up
    return testinfra.get_host(f"ssh://{request.param}", ssh_config=str(state.ssh_config))


def test_systemd_is_running(host: testinfra.host.Host) -> None:
    assert host.run("systemctl is-system-running").stdout.strip() == "running"


def test_sshd_is_active(host: testinfra.host.Host) -> None:
    assert host.service("ssh").is_running


def test_host_is_debian_13_with_sudo(host: testinfra.host.Host) -> None:
    assert host.system_info.distribution == "debian"
    assert host.system_info.release.startswith("13")
    assert host.run("sudo -n true").rc == 0


def test_hostnames_resolve_on_every_node(
    host: testinfra.host.Host, lab_up: tuple[Lab, LabState]
) -> None:
    lab, _ = lab_up
    for node in lab.nodes:
        assert host.run(f"getent hosts {node.name}").stdout.split()[0] == str(node.address)


def test_var_is_on_a_volume_for_nested_containerd(host: testinfra.host.Host) -> None:
    assert host.run("findmnt -n -o FSTYPE /var").stdout.strip() != "overlay"


def test_machine_ids_differ(lab_up: tuple[Lab, LabState]) -> None:
    _, state = lab_up
    ids = {
        testinfra.get_host(f"ssh://{name}", ssh_config=str(state.ssh_config))
        .file("/etc/machine-id")
        .content_string.strip()
        for name in ("cp1", "w1")
    }
    assert len(ids) == 2


def test_ssh_command_runs_on_the_node(lab_up: tuple[Lab, LabState]) -> None:
    k8slab = Path(sys.executable).parent / "k8slab"
    result = subprocess.run(
        [str(k8slab), "ssh", LAB, "w1", "--", "hostname"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "w1"


def test_a_same_named_lab_of_another_state_directory_is_refused_and_left_alone(
    lab_up: tuple[Lab, LabState], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = engine.lab_objects(LAB)
    monkeypatch.setenv("K8SLAB_STATE_DIR", str(tmp_path / "another-state"))
    up = CliRunner().invoke(main, ["up", LAB, "--hosts-only"])
    assert up.exit_code == 1, up.output
    assert "does not own" in up.output and "container k8slab-single-cp1" in up.output
    down = CliRunner().invoke(main, ["destroy", LAB])
    assert down.exit_code == 0, down.output
    assert "removed 0 objects" in down.output and "another state directory owns" in down.output
    assert engine.lab_objects(LAB) == before


def test_destroy_leaves_nothing_and_is_safe_to_repeat(lab_up: tuple[Lab, LabState]) -> None:
    _, state = lab_up
    for _attempt in range(2):
        result = CliRunner().invoke(main, ["destroy", LAB])
        assert result.exit_code == 0, result.output
    assert engine.lab_objects(LAB) == {"containers": [], "networks": [], "volumes": []}
    assert not state.root.exists()
