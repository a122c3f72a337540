"""Secrets at rest: written with their final mode, removed on every exit path, and not left
behind by a reset (issue 11, finding 5).

The roles and playbooks are read as data: these tests hold the shape of the tasks that
handle kubeadm's credentials and the admin kubeconfig, which only a lab can run.
"""

from __future__ import annotations

from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import yaml

from toolkit.constants import ETCD_DATA_DIR, ETCD_WORK_DIR, PARKED_MANIFESTS_DIR
from toolkit.drills.probes import DRILL_DIR
from toolkit.etcd.restore import RestorePlan
from toolkit.paths import PLAYBOOKS_DIR, ROLES_DIR

CONTROL_PLANE_TASKS = ROLES_DIR / "control_plane" / "tasks"
RESET_ROLE = ROLES_DIR / "reset"
Task = dict[str, Any]


# --- walking a role's tasks -------------------------------------------------------------


def load_tasks(path: Path) -> list[Task]:
    return cast(list[Task], yaml.safe_load(path.read_text(encoding="utf-8")))


def walk(tasks: list[Task]) -> Iterator[Task]:
    """Every task and block, blocks' own sections included, in file order."""
    for task in tasks:
        yield task
        for section in ("block", "rescue", "always"):
            yield from walk(task.get(section) or [])


def block_holding(tasks: list[Task], predicate: Any) -> Task:
    """The innermost block whose own ``block:`` section holds a task matching ``predicate``."""
    found = [t for t in walk(tasks) if any(predicate(child) for child in t.get("block") or [])]
    assert found, "no block holds such a task"
    return found[-1]


def writes(task: Task, dest: str) -> bool:
    module = task.get("ansible.builtin.template") or task.get("ansible.builtin.copy") or {}
    return isinstance(module, dict) and module.get("dest") == dest


def removes(task: Task, path: str) -> bool:
    module = task.get("ansible.builtin.file") or {}
    return module.get("path") == path and module.get("state") == "absent"


def runs_kubeadm_with(task: Task, config: str) -> bool:
    command = task.get("ansible.builtin.command") or ""
    return isinstance(command, str) and command.startswith("kubeadm ") and config in command


KUBEADM_CONFIGS = [
    (CONTROL_PLANE_TASKS / "init.yml", "/etc/kubernetes/kubeadm-init.yaml"),
    (ROLES_DIR / "common" / "tasks" / "join.yml", "/etc/kubernetes/kubeadm-join.yaml"),
]


@pytest.mark.parametrize(("tasks_file", "config"), KUBEADM_CONFIGS)
def test_kubeadm_config_is_written_root_only_and_never_logged(
    tasks_file: Path, config: str
) -> None:
    tasks = load_tasks(tasks_file)
    [write] = [t for t in walk(tasks) if writes(t, config)]
    module = write.get("ansible.builtin.template") or write["ansible.builtin.copy"]
    assert module["mode"] == "0600", "the mode is quoted and final from the start"
    assert write.get("no_log") is True
    assert write.get("diff") is False


@pytest.mark.parametrize(("tasks_file", "config"), KUBEADM_CONFIGS)
def test_kubeadm_config_is_removed_whether_kubeadm_succeeds_or_fails(
    tasks_file: Path, config: str
) -> None:
    tasks = load_tasks(tasks_file)
    block = block_holding(tasks, lambda t: writes(t, config))
    body = block["block"]
    assert any(runs_kubeadm_with(t, config) for t in body), "kubeadm runs in the same block"
    assert any("ansible.builtin.fail" in t for t in body), "a failed kubeadm fails the block"
    assert any(removes(t, config) for t in block.get("always") or [])
    # Removed only there: a removal outside the block would run (and report a change) on
    # every provision, or leave the file behind when kubeadm fails.
    assert [t for t in walk(tasks) if removes(t, config)] == [
        t for t in block["always"] if removes(t, config)
    ]


def test_kubeadm_init_config_is_written_only_when_kubeadm_init_runs() -> None:
    """The file is written under the same guard as kubeadm init, so a second provision of
    a cluster that exists neither writes nor removes it (changed=0)."""
    tasks = load_tasks(CONTROL_PLANE_TASKS / "init.yml")
    [outer] = [
        t for t in tasks if any(writes(c, "/etc/kubernetes/kubeadm-init.yaml") for c in walk([t]))
    ]
    assert "not common_joined | bool" in outer["when"]


def test_no_role_task_stages_a_kubeadm_config_in_tmp() -> None:
    for path in sorted(ROLES_DIR.glob("*/tasks/*.yml")):
        text = path.read_text(encoding="utf-8")
        assert "$(mktemp)" not in text, f"{path}: mktemp without a folder writes into /tmp"
        assert "/tmp/" not in text, f"{path}: secrets are never staged in /tmp"


# --- the admin kubeconfig on the controller ---------------------------------------------

ADMIN_DEST = "{{ control_plane_admin_kubeconfig_dest }}"


def test_admin_kubeconfig_is_created_0600_by_the_task_that_writes_it() -> None:
    tasks = load_tasks(CONTROL_PLANE_TASKS / "kubeconfig.yml")
    [write] = [t for t in walk(tasks) if writes(t, ADMIN_DEST)]
    assert write["ansible.builtin.copy"]["mode"] == "0600"
    assert write.get("no_log") is True
    assert write.get("diff") is False
    assert write.get("delegate_to") == "localhost"
    touching = [
        t
        for t in walk(tasks)
        if not writes(t, ADMIN_DEST)
        and any(
            isinstance(args, dict) and ADMIN_DEST in (args.get("path"), args.get("dest"))
            for args in t.values()
        )
    ]
    assert not touching, "no other task creates or chmods the copy"
    assert not any("ansible.builtin.fetch" in t for t in walk(tasks)), (
        "fetch writes with the umask's mode"
    )


# --- reset removes what restores left --------------------------------------------------


def reset_plays() -> list[Task]:
    return cast(list[Task], yaml.safe_load((PLAYBOOKS_DIR / "reset.yml").read_text()))


def reset_defaults() -> dict[str, Any]:
    return cast(dict[str, Any], yaml.safe_load((RESET_ROLE / "defaults" / "main.yml").read_text()))


def leftovers_tasks() -> list[Task]:
    return load_tasks(RESET_ROLE / "tasks" / "leftovers.yml")


def test_reset_clears_restore_leftovers_on_every_etcd_member() -> None:
    [play] = [
        p
        for p in reset_plays()
        if any(
            r == "reset" or (isinstance(r, dict) and r.get("role") == "reset")
            for r in p.get("roles") or []
        )
    ]
    assert {"k8s_cluster", "external_etcd"} <= set(play["hosts"].split(":"))
    main = load_tasks(RESET_ROLE / "tasks" / "main.yml")
    [leftovers] = [t for t in main if t.get("ansible.builtin.import_tasks") == "leftovers.yml"]
    assert "when" not in leftovers, "every host, node or etcd member, is cleared"


def test_reset_finds_every_directory_a_restore_sets_aside() -> None:
    defaults = reset_defaults()
    [find] = [t["ansible.builtin.find"] for t in leftovers_tasks() if "ansible.builtin.find" in t]
    assert find["paths"] == "{{ reset_etcd_data_dir | dirname }}"
    assert find["patterns"] == "{{ reset_etcd_leftover_patterns }}"
    patterns = defaults["reset_etcd_leftover_patterns"]
    assert defaults["reset_etcd_data_dir"] == ETCD_DATA_DIR
    manifest = SimpleNamespace(file="single-20261126T001500Z.db")
    plan = RestorePlan(cast(Any, None), Path("x"), cast(Any, manifest), "20261126T001500Z")
    for leftover in (plan.old_dir, plan.restored_dir):
        directory, name = leftover.rsplit("/", 1)
        assert str(Path(defaults["reset_etcd_data_dir"]).parent) == directory
        assert any(fnmatch(name, pattern) for pattern in patterns), leftover
    assert not any(fnmatch("etcd", pattern) for pattern in patterns), (
        "the live data directory is not a leftover"
    )


def test_reset_removes_the_found_leftovers_staged_snapshots_and_parked_pods() -> None:
    tasks = leftovers_tasks()
    [find] = [t for t in tasks if "ansible.builtin.find" in t]
    [remove] = [t for t in tasks if "ansible.builtin.file" in t]
    assert remove["ansible.builtin.file"]["state"] == "absent"
    loop = remove["loop"]
    assert find["register"] in loop
    assert "reset_node_state_dirs" in loop
    assert "reset_parked_manifests_dir" in loop
    defaults = reset_defaults()
    assert ETCD_WORK_DIR in defaults["reset_node_state_dirs"]
    assert DRILL_DIR in defaults["reset_node_state_dirs"], (
        "a drill cut short leaves the admin key it decoded there"
    )
    assert defaults["reset_parked_manifests_dir"] == PARKED_MANIFESTS_DIR


def test_the_lab_gives_reset_the_toolkits_own_paths() -> None:
    """The inventory's paths (toolkit/constants.py, which restores and drills import) are
    the ones reset removes."""
    group_vars = yaml.safe_load((PLAYBOOKS_DIR / "group_vars" / "all.yml").read_text())
    assert group_vars["reset_etcd_data_dir"] == "{{ k8slab_etcd_data_dir }}"
    assert group_vars["reset_parked_manifests_dir"] == "{{ k8slab_parked_manifests_dir }}"
    assert group_vars["reset_node_state_dirs"] == [
        "{{ k8slab_etcd_work_dir }}",
        "{{ k8slab_drill_dir }}",
    ]
