"""``k8slab etcd restore``: etcd's disaster-recovery procedure, for stacked and external etcd.

Order (etcd's "Disaster recovery" guide and Kubernetes' "Operating etcd clusters"):
the snapshot is checked and restored on every member into a NEW data directory with a new
cluster token while everything still runs, so a damaged file is refused with nothing
stopped; then the API servers, controller-managers and schedulers stop (their static Pod
manifests leave the kubelet's directory), etcd stops on every member, each member's old
data directory is renamed aside (kept for rollback) and the restored one takes its place,
etcd starts and elects one leader, the control plane starts again (so no cache in it
predates the restore, as "Operating etcd clusters" recommends), every node comes back
Ready and CoreDNS restarts.

From the first stop on, every host's progress is written to the restore journal
(``journal.py``). A failure, Ctrl-C or SIGTERM ends the run with the journal saying what
each host went through; ``resume`` finishes the remaining steps and ``rollback``
(``rollback.py``) undoes exactly what was done.

The configuration (static Pod manifests, etcd.conf.yml) is never edited: etcd ignores its
``initial-cluster*`` settings once a data directory exists, so provisioning stays
idempotent after a restore.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from toolkit import kube
from toolkit.constants import ETCD_WORK_DIR
from toolkit.errors import K8slabError
from toolkit.etcd import cluster, journal, steps
from toolkit.etcd.journal import Journal
from toolkit.etcd.manifest import SnapshotError
from toolkit.etcd.rollback import rollback_message
from toolkit.etcd.staging import RestorePlan, discard_staged, plan_restore, stage
from toolkit.etcd.steps import (
    CONTROL_PLANE_PODS,
    member_nodes,
    on_each,
)
from toolkit.etcd.topology import Topology, restore_dirs
from toolkit.etcd.workloads import restart_coredns
from toolkit.hosts import remote
from toolkit.lab.spec import Lab, Node
from toolkit.progress import SILENT, Progress


class RestoreError(K8slabError):
    """A restore failed after the lab was changed; the message says how to roll back."""


@dataclass
class RestoreResult:
    lab: str
    snapshot: Path
    revision: int
    seconds: float
    phases: dict[str, float] = field(default_factory=dict)
    old_dirs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    name: str
    message: str
    nodes: list[Node]
    action: Callable[[Node], object]
    after: Callable[[], object] | None = None


def restore_steps(lab: Lab, record: Journal) -> list[Step]:
    """The steps that change the lab, in the journal's order, each one per host."""
    topo = Topology(lab)
    dirs = restore_dirs(record.stamp)
    staged = f"{ETCD_WORK_DIR}/{record.file}"
    return [
        Step(
            "control-plane-stopped",
            "stop every API server, controller-manager and scheduler",
            lab.control_planes,
            lambda node: steps.stop_static_pods(lab, node, CONTROL_PLANE_PODS),
        ),
        Step(
            "etcd-stopped",
            "stop etcd on every member",
            member_nodes(topo),
            lambda node: steps.stop_etcd_on(topo, node),
        ),
        Step(
            "data-swapped",
            f"old data to {dirs.old}",
            member_nodes(topo),
            lambda node: steps.swap_data_dir(lab, node, dirs.restored, dirs.old, staged),
        ),
        Step(
            "etcd-started",
            "start etcd, wait for one leader",
            member_nodes(topo),
            lambda node: steps.start_etcd_on(topo, node),
            after=lambda: cluster.wait_healthy(topo, steps.ETCD_HEALTHY_DEADLINE_S),
        ),
        Step(
            "control-plane-started",
            "start the control plane",
            lab.control_planes,
            lambda node: steps.start_static_pods(lab, node, CONTROL_PLANE_PODS),
        ),
    ]


def run_steps(lab: Lab, record: Journal, progress: Progress, phases: dict[str, float]) -> None:
    """Run every step not yet finished on every host; a host that finished a step is not
    asked again, the step under way when the journal was written is run again where it
    did not finish (each action is safe to repeat)."""
    with steps.interruptible(progress):
        try:
            for step in restore_steps(lab, record):
                pending = [n for n in step.nodes if n.name not in record.finished_on(step.name)]
                if not pending and record.step != step.name:
                    continue
                record.begin(step.name)
                begun = time.monotonic()
                with progress.phase(step.name, step.message):
                    on_each(
                        pending,
                        step.action,
                        done=partial(record.mark, step.name),
                        progress=progress,
                    )
                    if step.after is not None:
                        step.after()
                phases[step.name] = time.monotonic() - begun
                record.end_step()
                steps.check_interrupted()
        except KeyboardInterrupt as exc:
            why = str(exc) or "SIGINT"
            record.close("interrupted", f"{why} in step {record.step!r}")
            raise RestoreError(rollback_message(lab, record, f"interrupted by {why}")) from exc
        except (K8slabError, OSError) as exc:
            record.close("failed", str(exc))
            raise RestoreError(rollback_message(lab, record, str(exc))) from exc


def finish(lab: Lab, record: Journal, progress: Progress, phases: dict[str, float]) -> None:
    """After the control plane is back, nothing is rolled back any more; a failure says
    what stands, and ``--resume`` tries these again."""
    follow_ups: list[tuple[str, str, Callable[[], object]]] = [
        ("nodes-ready", "every node Ready", lambda: kube.wait_for_ready_nodes(lab)),
        (
            "dns-restarted",
            "restart CoreDNS (its cache predates the restore)",
            lambda: restart_coredns(lab),
        ),
    ]
    for name, message, action in follow_ups:
        begun = time.monotonic()
        try:
            with steps.interruptible(progress), progress.phase(name, message):
                action()
                steps.check_interrupted()
        except (K8slabError, OSError, KeyboardInterrupt) as exc:
            record.close("failed", f"{name}: {exc}")
            raise RestoreError(
                f"lab {lab.name}: etcd and the control plane are back from "
                f"{Path(record.snapshot).name}, but {name} failed: {exc or 'interrupted'}; "
                f"`k8slab etcd restore {lab.name} --resume` tries it again. The old data "
                f"directories are in {restore_dirs(record.stamp).old} on each member"
            ) from exc
        phases[name] = time.monotonic() - begun
    record.close("finished")


def restore(lab: Lab, snapshot: Path, progress: Progress = SILENT) -> RestoreResult:
    """Restore ``snapshot`` onto every member of ``lab`` (see the module's docstring)."""
    started = time.monotonic()
    phases: dict[str, float] = {}

    def timed(name: str, message: str, action: Callable[[], object]) -> None:
        begun = time.monotonic()
        with progress.phase(name, message):
            action()
        phases[name] = time.monotonic() - begun

    journal.refuse_if_unfinished(lab.name)
    plans: list[RestorePlan] = []
    timed("check", f"snapshot {snapshot.name}", lambda: plans.append(plan_restore(lab, snapshot)))
    plan = plans[0]
    pods = CONTROL_PLANE_PODS + (["etcd"] if plan.topo.stacked else [])
    try:
        timed(
            "stage",
            "restore into new data directories on every member",
            lambda: stage(plan, progress),
        )
        timed(
            "pin-images",
            "pin the images of what stops",
            lambda: steps.pin_static_pod_images(lab, pods),
        )
        record = journal.start(
            Journal(
                lab=lab.name,
                snapshot=str(snapshot.resolve()),
                file=plan.manifest.file,
                revision=plan.manifest.revision,
                stamp=plan.stamp,
            )
        )
    except (K8slabError, OSError, KeyboardInterrupt) as exc:
        discard_staged(lab, plan.stamp, plan.manifest.file)
        if isinstance(exc, SnapshotError):
            raise
        raise RestoreError(
            f"restore refused before anything was stopped: {exc or 'interrupted'}"
        ) from exc
    run_steps(lab, record, progress, phases)
    finish(lab, record, progress, phases)
    return result_of(lab, record, started, phases)


def resume(lab: Lab, progress: Progress = SILENT) -> RestoreResult:
    """Finish the restore the journal says was cut short, from where each host stands."""
    started = time.monotonic()
    record = journal.load_open(lab.name, "resume")
    steps.check_reachable(lab)
    dirs = restore_dirs(record.stamp)
    not_swapped = [
        node
        for node in member_nodes(Topology(lab))
        if node.name not in record.finished_on("data-swapped")
    ]
    missing = []
    for node in not_swapped:
        found = f"test -d {shlex.quote(dirs.restored)} || test -d {shlex.quote(dirs.old)}"
        status, _ = remote.try_root(lab, node, found)
        if status != 0:
            missing.append(node.name)
    if missing:
        raise RestoreError(
            f"lab {lab.name}: cannot resume the restore of {record.file}: the restored data "
            f"directory {dirs.restored} is gone on {', '.join(missing)}; nothing was changed. "
            f"Undo it with `k8slab etcd restore {lab.name} --rollback`"
        )
    record.close("running")
    progress.say("resume", f"{record.file}, stopped in step {record.step or 'between steps'}")
    phases: dict[str, float] = {}
    run_steps(lab, record, progress, phases)
    finish(lab, record, progress, phases)
    return result_of(lab, record, started, phases)


def result_of(lab: Lab, record: Journal, started: float, phases: dict[str, float]) -> RestoreResult:
    old = restore_dirs(record.stamp).old
    return RestoreResult(
        lab=lab.name,
        snapshot=Path(record.snapshot),
        revision=record.revision,
        seconds=time.monotonic() - started,
        phases=phases,
        old_dirs={m.name: old for m in Topology(lab).members},
    )
