"""The provisioning runner's bookkeeping: phases of plays, per-phase counts from events,
and idempotence from Ansible's own stats."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from tests.helpers.lab_specs import mutated, with_base_bundle, with_part, write_spec
from toolkit import constants, kube
from toolkit.bundle import parts
from toolkit.bundle.manifest import Manifest
from toolkit.bundle.store import bundle_dir
from toolkit.cli import main
from toolkit.errors import BundleError, K8slabError
from toolkit.hosts import lifecycle
from toolkit.lab.spec import Lab, load_lab
from toolkit.lab.state import LabState
from toolkit.paths import PLAYBOOKS_DIR, ROLES_DIR
from toolkit.progress import SILENT
from toolkit.provision.events import KUBEADM_TASKS, EventTracker
from toolkit.provision.run import (
    PHASES,
    ProvisionReport,
    _phase_of_plays,
    _write_run_playbook,
    check_bundle,
    check_ready_to_provision,
    refresh_inventory,
    select_phases,
)


def test_every_play_of_every_phase_has_a_name_of_its_own() -> None:
    owner = _phase_of_plays(list(PHASES))
    plays = [
        play["name"]
        for phase in PHASES
        for play in yaml.safe_load((PLAYBOOKS_DIR / phase.playbook).read_text())
    ]
    assert len(plays) == len(set(plays)) == len(owner)


def test_cluster_yml_imports_every_phase_in_order() -> None:
    imported = [
        entry["ansible.builtin.import_playbook"]
        for entry in yaml.safe_load((PLAYBOOKS_DIR / "cluster.yml").read_text())
    ]
    assert imported == [phase.playbook for phase in PHASES]


def test_unknown_phase_is_refused_with_the_known_ones() -> None:
    with pytest.raises(K8slabError, match="unknown phase nope; phases are: prereqs, runtime"):
        select_phases(["nope"])


def test_run_playbook_imports_the_chosen_phases(isolated_state: Path) -> None:
    state = LabState.of("demo")
    path = _write_run_playbook(state, select_phases(["etcd", "network"]))
    assert path.is_relative_to(isolated_state)
    imports = yaml.safe_load(path.read_text())
    assert [Path(i["ansible.builtin.import_playbook"]).name for i in imports] == [
        "etcd.yml",
        "network.yml",
    ]


def event(kind: str, **data: Any) -> dict[str, Any]:
    return {"event": kind, "event_data": data}


def test_tracker_counts_per_phase_and_keeps_the_longest_kubeadm_join() -> None:
    phases = select_phases(["control-plane", "workers"])
    tracker = EventTracker(SILENT, {"Control plane": "control-plane", "Workers": "workers"})
    for item in [
        event("playbook_on_play_start", play="Control plane"),
        event(
            "runner_on_ok",
            host="cp1",
            task="Run kubeadm init",
            duration=40.0,
            res={"changed": True},
        ),
        event("runner_on_ok", host="cp1", task="Read a file", res={"changed": False}),
        event("playbook_on_play_start", play="Workers"),
        event(
            "runner_on_ok",
            host="w1",
            task="Run kubeadm join on workers",
            duration=12.0,
            res={"changed": True},
        ),
        event(
            "runner_on_ok",
            host="w2",
            task="Run kubeadm join on workers",
            duration=15.0,
            res={"changed": True},
        ),
        event("runner_on_failed", host="w2", task="Boom", res={"msg": "broke"}),
    ]:
        tracker.handle(item)
    tracker.finish()
    control_plane, workers = tracker.results([phase.name for phase in phases])
    assert (control_plane.ok, control_plane.changed) == ({"cp1": 2}, {"cp1": 1})
    assert control_plane.kubeadm_seconds == 40.0
    assert workers.changed == {"w1": 1, "w2": 1}
    assert workers.kubeadm_seconds == 15.0
    assert tracker.failures == ["  w2: Boom: broke"]
    assert tracker.last_phase == "workers"


def _role_tasks(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for task in tasks or []:
        found.append(task)
        for section in ("block", "rescue", "always"):
            found += _role_tasks(task.get(section) or [])
    return found


def test_kubeadm_time_is_that_of_the_tasks_that_run_kubeadm_init_or_join() -> None:
    """The names the tracker times are those of the roles' kubeadm init and join tasks."""
    runs_kubeadm = set()
    for path in ROLES_DIR.glob("*/tasks/*.yml"):
        for task in _role_tasks(yaml.safe_load(path.read_text()) or []):
            command = task.get("ansible.builtin.command")
            if isinstance(command, str) and command.startswith(("kubeadm init ", "kubeadm join ")):
                runs_kubeadm.add(task["name"])
    assert runs_kubeadm == KUBEADM_TASKS


def test_tracker_does_not_count_kubeadm_preparations_as_kubeadm_time() -> None:
    tracker = EventTracker(SILENT, {"Control plane": "control-plane"})
    for item in [
        event("playbook_on_play_start", play="Control plane"),
        event(
            "runner_on_ok",
            host="cp1",
            task="Undo a previous, unfinished kubeadm init",
            duration=9.0,
            res={"changed": True},
        ),
        event(
            "runner_on_ok",
            host="cp1",
            task="Run kubeadm init",
            duration=40.0,
            res={"changed": True},
        ),
    ]:
        tracker.handle(item)
    tracker.finish()
    [control_plane] = tracker.results(["control-plane"])
    assert control_plane.kubeadm_seconds == 40.0


def test_a_run_renders_the_inventory_again_for_the_roles_of_this_toolkit(
    isolated_state: Path,
) -> None:
    """A lab brought up by an older toolkit lacks the inputs today's playbooks read."""
    lab = load_lab("ha-stacked")
    state = LabState.of(lab.name)
    state.write_text(state.inventory, "# rendered by an older toolkit\n")
    refresh_inventory(lab, state)
    variables = yaml.safe_load(state.inventory.read_text())["all"]["vars"]
    assert variables["k8slab_bin_dir"] == constants.BIN_DIR


def test_idempotence_comes_from_ansible_stats() -> None:
    assert ProvisionReport("demo", changed={"cp1": 0, "w1": 0}).idempotent
    assert not ProvisionReport("demo", changed={"cp1": 0, "w1": 2}).idempotent


def test_up_waits_for_every_replica_of_the_clusters_own_workloads() -> None:
    # `up` returned with every node Ready and CoreDNS at 1 of 2 replicas; verify then failed.
    def deployment(ns: str, name: str, replicas: int, ready: int) -> dict[str, object]:
        return {
            "kind": "Deployment",
            "metadata": {"namespace": ns, "name": name},
            "spec": {"replicas": replicas},
            "status": {"readyReplicas": ready, "updatedReplicas": replicas},
        }

    def daemonset(ns: str, name: str, desired: int, ready: int) -> dict[str, object]:
        return {
            "kind": "DaemonSet",
            "metadata": {"namespace": ns, "name": name},
            "status": {
                "desiredNumberScheduled": desired,
                "numberReady": ready,
                "updatedNumberScheduled": desired,
            },
        }

    workloads = {
        "items": [
            deployment("kube-system", "coredns", 2, 1),
            daemonset("kube-system", "kube-proxy", 5, 5),
            daemonset("kube-flannel", "kube-flannel-ds", 5, 4),
            deployment("default", "someones-app", 3, 0),
        ]
    }
    assert kube.not_rolled_out(workloads) == [
        "kube-flannel/kube-flannel-ds 4/5 ready",
        "kube-system/coredns 1/2 ready",
    ]
    settled = {"items": [deployment("kube-system", "coredns", 2, 2)]}
    assert kube.not_rolled_out(settled) == []


def _docker_worker(data: dict[str, Any]) -> None:
    data["nodes"]["workers"].append(
        {"name": "w2", "address": "172.30.9.22", "container_runtime": "docker"}
    )


@pytest.fixture
def docker_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Lab:
    """A lab with a docker worker, and a complete base bundle without any part."""
    monkeypatch.setenv("K8SLAB_CACHE_DIR", str(tmp_path / "cache"))
    return with_base_bundle(load_lab(write_spec(tmp_path, mutated(_docker_worker))))


def _refusal(lab: Lab) -> str:
    return (
        f"{lab.source}: nodes.workers[1].container_runtime is 'docker' (node w2), which needs "
        "the bundle's cri-dockerd part: build it with `k8slab bundle build --kubernetes "
        f"{lab.kubernetes_version} --with cri-dockerd`"
    )


def test_provision_refuses_a_lab_that_needs_a_part_the_bundle_lacks(
    isolated_state: Path, docker_lab: Lab
) -> None:
    state = LabState.of(docker_lab.name)
    state.write_text(state.inventory, "# rendered by `up`\n")
    with pytest.raises(BundleError) as refused:
        check_ready_to_provision(docker_lab, state)
    assert str(refused.value) == _refusal(docker_lab)


def test_up_refuses_a_lab_that_needs_a_part_before_any_host_exists(
    isolated_state: Path, docker_lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[str] = []
    monkeypatch.setattr(lifecycle, "up_hosts", lambda lab, progress: created.append(lab.name))
    result = CliRunner().invoke(main, ["up", str(docker_lab.source)])
    assert result.exit_code == 1
    assert _refusal(docker_lab) in " ".join(result.output.split())
    assert created == []


def test_a_lab_whose_parts_are_built_passes_and_one_of_containerd_needs_none(
    docker_lab: Lab, tmp_path: Path
) -> None:
    part = with_part(docker_lab, "cri-dockerd")
    check_bundle(docker_lab)
    shutil.rmtree(part)
    check_bundle(load_lab(write_spec(tmp_path / "plain", mutated(lambda d: None))))


def test_a_part_built_from_an_older_recipe_is_refused_with_the_command_that_rebuilds_it(
    docker_lab: Lab,
) -> None:
    with_part(docker_lab, "cri-dockerd", recipe="0123456789abcdef")
    with pytest.raises(BundleError) as refused:
        check_bundle(docker_lab)
    assert str(refused.value) == (
        f"{docker_lab.source}: its cri-dockerd part has an older recipe: build it with "
        f"`k8slab bundle build --kubernetes {docker_lab.kubernetes_version} --with cri-dockerd`"
    )


def test_bundle_list_names_what_was_built_from_an_older_recipe(docker_lab: Lab) -> None:
    assert parts.older_recipes(docker_lab.kubernetes_version) == []
    with_part(docker_lab, "cri-dockerd", recipe="0123456789abcdef")
    assert parts.older_recipes(docker_lab.kubernetes_version) == ["cri-dockerd"]
    listed = CliRunner().invoke(main, ["bundle", "list"])
    assert listed.exit_code == 0, listed.output
    assert "older recipe: cri-dockerd (`bundle build` rebuilds)" in listed.output


def test_a_base_bundle_built_from_an_older_recipe_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("K8SLAB_CACHE_DIR", str(tmp_path / "cache"))
    lab = load_lab(write_spec(tmp_path, mutated(lambda d: None)))
    folder = bundle_dir(lab.kubernetes_version)
    folder.mkdir(parents=True)
    Manifest(lab.kubernetes_version, "gomod", {}, [], recipe="0123456789abcdef").write(folder)
    with pytest.raises(BundleError) as refused:
        check_bundle(lab)
    assert str(refused.value) == (
        f"{lab.source}: the bundle of {lab.kubernetes_version} has an older recipe: build it "
        f"with `k8slab bundle build --kubernetes {lab.kubernetes_version}`"
    )


def test_a_runtime_inherited_from_the_top_level_names_that_field(
    docker_lab: Lab, tmp_path: Path
) -> None:
    def docker_workers(data: dict[str, Any]) -> None:
        data["container_runtime"] = "docker"
        for node in data["nodes"]["control_planes"]:
            node["container_runtime"] = "containerd"
        _docker_worker(data)

    lab = load_lab(write_spec(tmp_path / "top", mutated(docker_workers)))
    with pytest.raises(BundleError) as refused:
        check_bundle(lab)
    message = str(refused.value)
    assert (
        "container_runtime is 'docker', nodes.workers[1].container_runtime is 'docker'" in message
    )
    assert "(nodes w1, w2)" in message
