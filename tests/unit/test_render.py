"""What is rendered from a lab spec: Vagrant's machine list, inventory, ssh config."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import yaml

from toolkit import constants
from toolkit.hosts.engine import host_run_args
from toolkit.hosts.vagrant import Vagrant
from toolkit.lab import render
from toolkit.lab.spec import Lab, load_lab
from toolkit.lab.state import LabState

PROVIDERS = ("docker", "libvirt", "virtualbox")


def state_for(tmp_path: Path, lab: Lab) -> LabState:
    state = LabState(lab.name, tmp_path / lab.name)
    state.ensure_key_pair()
    return state


@pytest.fixture
def stacked() -> Lab:
    return load_lab("ha-stacked")


def test_docker_machines_carry_the_lab_and_the_engine_flags(tmp_path: Path, stacked: Lab) -> None:
    state = state_for(tmp_path, stacked)
    machines = render.machines(stacked, state, "k8slab-node:abc", host_run_args(False))
    assert [m["name"] for m in machines["machines"]] == ["cp1", "cp2", "cp3", "w1", "w2"]
    assert machines["network"] == {
        "name": "k8slab-ha-stacked",
        "subnet": "172.30.2.0/24",
        "netmask": "255.255.255.0",
    }
    cp1 = machines["machines"][0]
    args = cp1["docker"]["create_args"]
    assert cp1["docker"]["container_name"] == "k8slab-ha-stacked-cp1"
    assert "--cap-drop=SYS_RESOURCE" in args and "--privileged" not in args
    assert "--volume=k8slab-ha-stacked-cp1-var:/var" in args
    assert f"--volume={state.public_key}:/etc/ssh/authorized_keys/k8slab:ro" in args
    assert "--label=k8slab.lab=ha-stacked" in args
    assert f"--label=k8slab.state={state.root}" in args
    assert {a for a in args if a.startswith("--add-host=")} == {
        "--add-host=cp1:172.30.2.11",
        "--add-host=cp2:172.30.2.12",
        "--add-host=cp3:172.30.2.13",
        "--add-host=w1:172.30.2.21",
        "--add-host=w2:172.30.2.22",
    }
    assert "--memory=1536m" in machines["machines"][3]["docker"]["create_args"]


def test_privileged_engine_gets_privileged(tmp_path: Path, stacked: Lab) -> None:
    args = host_run_args(True)
    assert "--privileged" in args and "--cap-add=ALL" not in args


@pytest.mark.parametrize("provider", ["libvirt", "virtualbox"])
def test_vm_machines_have_box_resources_and_addresses(
    tmp_path: Path, stacked: Lab, provider: str
) -> None:
    lab = dataclasses.replace(stacked, provider=provider)
    machines = render.machines(lab, state_for(tmp_path, lab))
    assert machines["box"] == "debian/trixie64"
    w1 = machines["machines"][3]
    assert (w1["cpus"], w1["memory_mb"], w1["address"]) == (2, 1536, "172.30.2.21")
    assert "docker" not in w1


def test_key_pair_is_the_labs_own(tmp_path: Path, stacked: Lab) -> None:
    state = state_for(tmp_path, stacked)
    insecure = Path("/usr/share/rubygems-integration/all/gems/vagrant-2.3.4/keys/vagrant.pub")
    public = state.public_key.read_text()
    assert public.startswith("ssh-ed25519 ") and public.strip().endswith("k8slab-ha-stacked")
    assert state.private_key.stat().st_mode & 0o777 == 0o600
    if insecure.exists():
        assert insecure.read_text().split()[1] != public.split()[1]
    before = state.private_key.read_bytes()
    state.ensure_key_pair()
    assert state.private_key.read_bytes() == before


def test_inventory_groups_follow_the_topology(tmp_path: Path) -> None:
    for lab_name, etcd_members, external in (
        ("ha-stacked", ["cp1", "cp2", "cp3"], []),
        ("ha-external", ["etcd1", "etcd2", "etcd3"], ["etcd1", "etcd2", "etcd3"]),
    ):
        lab = load_lab(lab_name)
        inventory = yaml.safe_load(render.inventory_yaml(lab, state_for(tmp_path, lab)))["all"]
        children = inventory["children"]
        cluster = children["k8s_cluster"]["children"]
        assert list(cluster["kube_control_plane"]["hosts"]) == ["cp1", "cp2", "cp3"]
        assert list(cluster["kube_node"]["hosts"]) == ["w1", "w2"]
        assert list(children["etcd"]["hosts"]) == etcd_members
        assert list(children["external_etcd"]["hosts"] or {}) == external
        assert cluster["kube_node"]["hosts"]["w1"]["ansible_host"] == str(lab.node("w1").address)
        assert inventory["vars"]["k8slab_api_vip"] == str(lab.api_vip)


def test_inventory_gives_the_roles_the_toolkits_node_constants(
    tmp_path: Path, stacked: Lab
) -> None:
    """Paths and ports the toolkit uses on nodes reach Ansible from one home."""
    variables = yaml.safe_load(render.inventory_yaml(stacked, state_for(tmp_path, stacked)))["all"][
        "vars"
    ]
    assert variables["k8slab_apiserver_port"] == constants.APISERVER_PORT
    assert variables["k8slab_etcd_data_dir"] == constants.ETCD_DATA_DIR
    assert variables["k8slab_manifests_dir"] == constants.MANIFESTS_DIR
    assert variables["k8slab_parked_manifests_dir"] == constants.PARKED_MANIFESTS_DIR
    assert variables["k8slab_etcd_work_dir"] == constants.ETCD_WORK_DIR
    assert variables["k8slab_drill_dir"] == constants.DRILL_DIR
    assert variables["k8slab_bin_dir"] == constants.BIN_DIR


def test_ssh_config_names_every_node(tmp_path: Path, stacked: Lab) -> None:
    state = state_for(tmp_path, stacked)
    text = render.ssh_config(stacked, state)
    for node in stacked.nodes:
        assert f"Host {node.name}\n  HostName {node.address}\n" in text
    assert f"IdentityFile {state.private_key}" in text


@pytest.mark.skipif(shutil.which("vagrant") is None, reason="vagrant is not installed")
@pytest.mark.parametrize("provider", PROVIDERS)
def test_vagrant_accepts_the_rendered_machines(tmp_path: Path, stacked: Lab, provider: str) -> None:
    lab = dataclasses.replace(stacked, provider=provider)
    state = state_for(tmp_path, lab)
    state.write_json(
        state.machines, render.machines(lab, state, "k8slab-node:x", host_run_args(False))
    )
    assert "validated successfully" in Vagrant(state).validate(provider)
    assert json.loads(state.machines.read_text())["provider"] == provider


def test_ansible_checks_host_keys_against_the_labs_known_hosts(
    tmp_path: Path, stacked: Lab
) -> None:
    # Under Mitogen, Ansible's host_key_checking came out false and its ssh command began
    # with StrictHostKeyChecking no and UserKnownHostsFile /dev/null; the inventory says so.
    state = state_for(tmp_path, stacked)
    all_vars = render.inventory(stacked, state)["all"]["vars"]
    assert all_vars["ansible_host_key_checking"] is True
    assert f"UserKnownHostsFile={state.known_hosts}" in all_vars["ansible_ssh_common_args"]
    assert "StrictHostKeyChecking=no" not in all_vars["ansible_ssh_common_args"]
