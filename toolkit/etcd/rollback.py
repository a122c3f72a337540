"""Undoing a restore that was cut short, from its journal: each host gets back exactly
what it went through, in reverse, and the same list is what a failure prints for a person
to do by hand."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass

from toolkit import kube
from toolkit.constants import ETCD_DATA_DIR, ETCD_WORK_DIR, MANIFESTS_DIR, PARKED_MANIFESTS_DIR
from toolkit.errors import K8slabError
from toolkit.etcd import cluster, journal, steps
from toolkit.etcd.journal import Journal
from toolkit.etcd.steps import CONTROL_PLANE_PODS, member_nodes, on_each
from toolkit.etcd.topology import Topology, restore_dirs
from toolkit.lab.spec import Lab, Node
from toolkit.progress import SILENT, Progress


class RollbackError(K8slabError):
    """A rollback did not finish; it can be run again."""


@dataclass(frozen=True)
class Undo:
    """One thing to undo on some hosts: what a person would type, and what k8slab runs."""

    what: str
    hosts: list[Node]
    by_hand: str
    action: Callable[[Node], object]
    after: Callable[[], object] | None = None


def touched(record: Journal, step: str, nodes: list[Node]) -> list[Node]:
    """The hosts on which ``step`` may have changed something: those that finished it,
    and every host of the step that was under way when the journal was last written."""
    if record.step == step:
        return nodes
    return [node for node in nodes if node.name in record.finished_on(step)]


def _moves(pods: list[str], source: str, destination: str) -> str:
    return " ".join(f"{source}/{pod}.yaml" for pod in pods) + f" {destination}/"


def undo_list(lab: Lab, record: Journal) -> list[Undo]:
    """What to undo, in order; empty when nothing was stopped or changed."""
    topo = Topology(lab)
    members, cps = member_nodes(topo), lab.control_planes
    dirs = restore_dirs(record.stamp)
    staged = f"{ETCD_WORK_DIR}/{record.file}"
    stop_etcd = (
        f"sudo mv {_moves(['etcd'], MANIFESTS_DIR, PARKED_MANIFESTS_DIR)}"
        if topo.stacked
        else "sudo systemctl stop etcd"
    )
    start_etcd = (
        f"sudo mv {_moves(['etcd'], PARKED_MANIFESTS_DIR, MANIFESTS_DIR)}"
        if topo.stacked
        else "sudo systemctl start etcd"
    )
    swapped = touched(record, "data-swapped", members)

    def unswap(node: Node) -> None:
        steps.unswap_data_dir(lab, node, dirs.old, dirs.failed, dirs.restored, staged)

    undos = [
        Undo(
            "stop the API server, controller-manager and scheduler",
            touched(record, "control-plane-started", cps),
            f"sudo mv {_moves(CONTROL_PLANE_PODS, MANIFESTS_DIR, PARKED_MANIFESTS_DIR)}",
            lambda node: steps.stop_static_pods(lab, node, CONTROL_PLANE_PODS),
        ),
        Undo(
            "stop etcd",
            touched(record, "etcd-started", members),
            stop_etcd,
            lambda node: steps.stop_etcd_on(topo, node),
        ),
        Undo(
            "put the data directory from before the restore back",
            swapped,
            f"sudo sh -c 'if [ -d {dirs.old} ]; then mv {ETCD_DATA_DIR} {dirs.failed}; "
            f"mv {dirs.old} {ETCD_DATA_DIR}; fi; rm -rf {dirs.restored} {shlex.quote(staged)}'",
            unswap,
        ),
        Undo(
            "remove the staged restore",
            [node for node in members if node not in swapped],
            f"sudo rm -rf {dirs.restored} {shlex.quote(staged)}",
            unswap,
        ),
        Undo(
            "start etcd",
            touched(record, "etcd-stopped", members),
            start_etcd,
            lambda node: steps.start_etcd_on(topo, node),
            after=lambda: cluster.wait_healthy(topo, steps.ETCD_HEALTHY_DEADLINE_S),
        ),
        Undo(
            "start the API server, controller-manager and scheduler",
            touched(record, "control-plane-stopped", cps),
            f"sudo mv {_moves(CONTROL_PLANE_PODS, PARKED_MANIFESTS_DIR, MANIFESTS_DIR)}",
            lambda node: steps.start_static_pods(lab, node, CONTROL_PLANE_PODS),
        ),
    ]
    if not any(record.touched(step) for step in journal.STEPS):
        return []
    return [undo for undo in undos if undo.hosts]


def rollback_message(lab: Lab, record: Journal, failure: str) -> str:
    """Why the restore stopped, and both ways on: finish it, or undo it (by k8slab or by
    hand, host by host)."""
    under_way = f"in step '{record.step}'" if record.step else "between steps"
    finished = [
        f"{step} on {', '.join(record.done[step])}" for step in journal.STEPS if step in record.done
    ]
    lines = [
        f"restore of {record.file} onto lab {lab.name} stopped {under_way} "
        f"(finished: {'; '.join(finished) or 'nothing'}): {failure}",
        f"the restore journal is {record.path}",
    ]
    undos = undo_list(lab, record)
    if not undos:
        lines.append("nothing was stopped or changed; the lab runs as before")
        return "\n".join(lines)
    lines += [
        f"to finish the restore: `k8slab etcd restore {lab.name} --resume`",
        f"to undo it: `k8slab etcd restore {lab.name} --rollback`, or by hand:",
    ]
    lines += [
        f"  {n}. on {', '.join(node.name for node in undo.hosts)}: {undo.what}: `{undo.by_hand}`"
        for n, undo in enumerate(undos, 1)
    ]
    swapped = touched(record, "data-swapped", member_nodes(Topology(lab)))
    lines.append(
        f"  the restored data is kept as {restore_dirs(record.stamp).failed} on "
        f"{', '.join(node.name for node in swapped)}"
        if swapped
        else f"  every member's data directory {ETCD_DATA_DIR} is untouched"
    )
    return "\n".join(lines)


def rollback(lab: Lab, progress: Progress = SILENT) -> float:
    """Undo the restore the journal says was cut short; safe to run again if it stops."""
    started = time.monotonic()
    record = journal.load_open(lab.name, "roll back")
    steps.check_reachable(lab)
    record.close("rolling-back", record.reason)
    try:
        for undo in undo_list(lab, record):
            names = ", ".join(node.name for node in undo.hosts)
            with progress.phase("rollback", f"{undo.what} on {names}"):
                on_each(undo.hosts, undo.action, progress=progress)
                if undo.after is not None:
                    undo.after()
        with progress.phase("nodes-ready", "every node Ready"):
            kube.wait_for_ready_nodes(lab)
    except (K8slabError, OSError, KeyboardInterrupt) as exc:
        raise RollbackError(
            f"lab {lab.name}: the rollback of the restore of {record.file} did not finish: "
            f"{exc or 'interrupted'}; every step of it is safe to repeat: run "
            f"`k8slab etcd restore {lab.name} --rollback` again"
        ) from exc
    record.close("rolled-back")
    return time.monotonic() - started
