"""Labs on hosts k8slab did not make, without hosts: what is rendered for them (logins, the
interface, the container branches from what the hosts said they are), `up` refusing before
anything changes, `destroy` resetting instead of deleting, and the drills that stop a host."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from tests.helpers.host_facts import good
from tests.helpers.lab_specs import existing, mutated, private_key, write_spec
from toolkit import drills
from toolkit.cli import lab as cli_lab
from toolkit.cli import main
from toolkit.drills import lab_ops
from toolkit.errors import HostError
from toolkit.hosts import facts, lifecycle, preflight
from toolkit.lab import render
from toolkit.lab.model import Lab
from toolkit.lab.spec import load_lab
from toolkit.lab.state import LabState
from toolkit.scale.plan import ScaleError, ScaleRequest, plan


@pytest.fixture
def key(tmp_path: Path) -> Path:
    return private_key(tmp_path / "keys" / "id_ed25519")


def lab_with(tmp_path: Path, key: Path, **top: Any) -> Lab:
    def change(d: dict[str, Any]) -> None:
        existing(d, key, ssh_port=2200)
        d["nodes"]["workers"][0].update(ssh_user="pi", interface="eth1")
        d.update(top)

    return load_lab(write_spec(tmp_path, mutated(change)))


def test_inventory_and_ssh_config_log_in_as_the_spec_says(tmp_path: Path, key: Path) -> None:
    lab = lab_with(tmp_path, key)
    state = LabState(lab.name, tmp_path / "state")
    hosts = render.inventory(lab, state)["all"]["children"]["k8s_cluster"]["children"]
    w1 = hosts["kube_node"]["hosts"]["w1"]
    assert (w1["ansible_user"], w1["ansible_port"]) == ("pi", 2200)
    assert w1["ansible_ssh_private_key_file"] == str(key)
    assert w1["k8slab_lab_interface"] == "eth1"
    assert hosts["kube_control_plane"]["hosts"]["cp1"]["k8slab_lab_interface"] == ""
    config = render.ssh_config(lab, state)
    assert f"Host w1\n  HostName 172.30.9.21\n  Port 2200\n  User pi\n  IdentityFile {key}\n" in (
        config
    )
    target = render.ssh_target(state, lab.node("cp1"))
    assert (target.username, target.port, target.private_key) == ("admin", 2200, key)


@pytest.mark.parametrize(
    ("kinds", "expected"),
    [
        ({}, None),
        ({"cp1": "docker", "cp2": "docker", "cp3": "docker", "w1": "docker"}, (True, "cgroupfs")),
        ({"cp1": "none", "cp2": "none", "cp3": "none", "w1": "none"}, (False, "systemd")),
        ({"cp1": "none", "cp2": "none", "cp3": "none"}, None),  # w1 not reached yet
    ],
    ids=["not-reached", "containers", "machines", "partly-reached"],
)
def test_container_branches_follow_what_the_hosts_are(
    tmp_path: Path, key: Path, kinds: dict[str, str], expected: tuple[bool, str] | None
) -> None:
    lab = lab_with(tmp_path, key)
    state = LabState(lab.name, tmp_path / "state")
    facts.record_kinds(state, kinds)
    variables = render.inventory(lab, state)["all"]["vars"]
    found = (variables.get("k8slab_container_node"), variables.get("k8slab_cgroup_driver"))
    assert found == (expected or (None, None))
    assert "k8slab_bundle_dir_on_node" not in variables, "no bundle mounted into existing hosts"


def test_a_docker_lab_is_a_container_lab_because_its_hosts_say_so(tmp_path: Path) -> None:
    lab = load_lab("single")
    state = LabState(lab.name, tmp_path / "single")
    facts.record_kinds(state, {"cp1": "none", "w1": "none"})
    variables = render.inventory(lab, state)["all"]["vars"]
    assert variables["k8slab_container_node"] is False, "not the provider's name"


def test_a_lab_mixing_containers_and_machines_is_refused(tmp_path: Path, key: Path) -> None:
    lab = lab_with(tmp_path, key)
    state = LabState(lab.name, tmp_path / "state")
    facts.record_kinds(state, {"cp1": "lxc", "cp2": "none", "cp3": "none", "w1": "none"})
    with pytest.raises(HostError, match=r"mixes containers \(cp1\) and machines"):
        render.inventory(lab, state)


def test_up_refuses_existing_hosts_before_writing_anything_for_ansible(
    tmp_path: Path, key: Path, isolated_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = lab_with(tmp_path, key)
    checks = [preflight.HostCheck(node, problems=["has 2048 MiB of swap on"]) for node in lab.nodes]
    monkeypatch.setattr(
        lifecycle, "run_preflight", lambda lab, progress: preflight.Preflight(lab, checks)
    )
    with pytest.raises(
        preflight.PreflightError, match="4 problems on its hosts; nothing was changed"
    ):
        lifecycle.up_hosts(lab)
    state = LabState.of(lab.name)
    assert not state.inventory.exists() and not state.private_key.exists()


def test_preflight_prints_each_host_and_fails_listing_the_problems(
    tmp_path: Path, key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = lab_with(tmp_path, key)
    checks = [preflight.HostCheck(node, good(str(node.address))) for node in lab.nodes]
    checks[0].new_key = "ssh-ed25519 SHA256:abc"
    checks[-1] = preflight.HostCheck(lab.node("w1"), problems=["no SSH at 172.30.9.21:22"])
    monkeypatch.setattr(
        cli_lab, "run_preflight", lambda model, progress: preflight.Preflight(model, checks)
    )
    result = CliRunner().invoke(main, ["preflight", str(lab.source)])
    assert result.exit_code == 1
    assert "cp1       172.30.9.11     Debian GNU/Linux 13 (trixie), " in result.output
    assert "host key trusted on first use: ssh-ed25519 SHA256:abc" in result.output
    assert "w1        172.30.9.21     not reached" in result.output
    assert "error: lab demo: 1 problem on its hosts; nothing was changed on any of them\n" in (
        result.output
    )
    assert "  w1 (172.30.9.21): no SSH at 172.30.9.21:22" in result.output


def test_status_of_existing_hosts_needs_no_vagrant(
    tmp_path: Path, key: Path, isolated_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = lab_with(tmp_path, key)
    monkeypatch.setattr(lifecycle, "Vagrant", lambda state: pytest.fail("Vagrant asked"))
    monkeypatch.setattr(lifecycle, "reachable", lambda target: target.port == 2200)
    statuses = lifecycle.lab_status(lab)
    assert {(s.name, s.state, s.reachable) for s in statuses} >= {("cp1", "existing", True)}
    assert LabState.of(lab.name).root.is_dir(), "ready to record host keys"


def test_destroy_resets_existing_hosts_after_asking_and_forgets_the_state(
    tmp_path: Path, key: Path, isolated_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = lab_with(tmp_path, key)
    state = LabState.of(lab.name)
    state.write_text(state.inventory, "all: {}\n")
    done: list[str] = []

    stats = SimpleNamespace(changed={"cp1": 3})
    monkeypatch.setattr(cli_lab, "reset", lambda model, progress: done.append("reset") or stats)
    refused = CliRunner().invoke(main, ["destroy", str(lab.source)], input="n\n")
    assert refused.exit_code == 1 and "forgets the lab's state. Go on?" in refused.output
    assert done == [] and state.inventory.exists()
    result = CliRunner().invoke(main, ["destroy", "--yes", str(lab.source)])
    assert result.exit_code == 0, result.output
    assert done == ["reset"]
    assert "hosts reset (cp1=3), left running" in result.output
    assert not state.root.exists()


def test_a_drill_that_stops_a_host_needs_host_power_on_existing_hosts(
    tmp_path: Path, key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = lab_with(tmp_path, key)
    monkeypatch.setattr(drills, "wait_healthy", lambda *a, **k: pytest.fail("gate reached"))
    expected = re.escape(
        "drill control-plane-loss needs a way to stop and start a whole host, and lab demo's "
        f"hosts were not made by k8slab: say how in {lab.source}, e.g. host_power: {{stop: "
        "'virsh destroy lab-{name}', start: 'virsh start lab-{name}'} (commands run on this "
        "machine, without a shell; {name} and {address} become the node's)"
    )
    with pytest.raises(drills.DrillError, match=expected):
        drills.run_drill(lab, "control-plane-loss")


def test_host_power_commands_stop_and_start_the_host(
    tmp_path: Path, key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    power = {"stop": "docker stop --time 10 byoh-{name}", "start": "docker start byoh-{name}"}
    lab = lab_with(tmp_path, key, host_power=power)
    ran: list[list[str]] = []
    monkeypatch.setattr(lab_ops, "run", lambda argv, timeout: ran.append(list(argv)))
    monkeypatch.setattr(lab_ops, "wait_until_ready", lambda target, deadline_s: 0.0)
    lab_ops.stop_host(lab, lab.node("cp2"))
    lab_ops.start_host(lab, lab.node("cp2"))
    assert ran == [
        ["docker", "stop", "--time", "10", "byoh-cp2"],
        ["docker", "start", "byoh-cp2"],
    ]


def test_scale_which_makes_and_destroys_hosts_is_refused_on_existing_ones(
    tmp_path: Path, key: Path
) -> None:
    lab = lab_with(tmp_path, key)
    text = lab.source.read_text()
    for request in (ScaleRequest(add_workers=("w9",)), ScaleRequest(remove=("w1",))):
        with pytest.raises(ScaleError, match=r"not made by k8slab .* it is refused there"):
            plan(lab, text, request)


def test_reaching_some_hosts_keeps_what_the_others_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = load_lab("single")
    state = LabState(lab.name, tmp_path / "single")
    facts.record_kinds(state, {"cp1": "docker", "gone": "docker"})
    monkeypatch.setattr(facts, "read_container", lambda target, timeout, hook: "docker")
    lifecycle.reach_hosts(lab, state, nodes=[lab.node("w1")])  # as scale reaches a new node
    assert render.recorded_kinds(state) == {"cp1": "docker", "w1": "docker"}


def test_kinds_are_recorded_as_json(tmp_path: Path) -> None:
    state = LabState("demo", tmp_path / "demo")
    facts.record_kinds(state, {"w1": "none", "cp1": "docker"})
    assert json.loads(state.host_kinds.read_text()) == {
        "cp1": {"container": "docker"},
        "w1": {"container": "none"},
    }
    assert render.recorded_kinds(state) == {"cp1": "docker", "w1": "none"}
