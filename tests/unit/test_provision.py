"""The provisioning runner's bookkeeping: phases of plays, per-phase counts from events,
and idempotence from Ansible's own stats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from toolkit import constants, kube
from toolkit.errors import K8slabError
from toolkit.lab.spec import load_lab
from toolkit.lab.state import LabState
from toolkit.paths import PLAYBOOKS_DIR, ROLES_DIR
from toolkit.progress import SILENT
from toolkit.provision.events import KUBEADM_TASKS, EventTracker
from toolkit.provision.run import (
    PHASES,
    ProvisionReport,
    _phase_of_plays,
    _write_run_playbook,
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
