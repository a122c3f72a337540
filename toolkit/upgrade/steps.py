"""Running an upgrade's steps in order, journaled, stage by stage with its probes.

A step finished is never run again; the step under way when a run was cut short runs again
(every action is safe to repeat). Each stage (a node's steps, or a whole-lab step) is
measured by probes started before its first pending step and stopped after its last; what
a stage cut short had measured is added to what its resumed part measures.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Protocol

from toolkit.errors import K8slabError
from toolkit.etcd.steps import check_interrupted, interruptible
from toolkit.lab.spec import Node
from toolkit.progress import Progress
from toolkit.upgrade.disruption import Figures, as_dict, from_dict
from toolkit.upgrade.journal import Journal
from toolkit.upgrade.plan import PlannedStep, UpgradeError


class StageProbes(Protocol):
    """Probes around one stage: started on a node the stage leaves alone (returning what
    an earlier, cut-short run's probes there had seen), stopped with what they saw."""

    def start(self, node: Node | None) -> tuple[str, dict[str, Figures]]: ...

    def stop(self) -> dict[str, Figures]: ...


def _merged(*parts: dict[str, Figures]) -> dict[str, Figures]:
    total: dict[str, Figures] = {}
    for part in parts:
        for name, figures in part.items():
            total[name] = total[name].plus(figures) if name in total else figures
    return total


def run_stage(
    record: Journal,
    stage: str,
    steps: list[PlannedStep],
    act: Callable[[PlannedStep], object],
    probes: StageProbes,
    progress: Progress,
) -> None:
    """The pending steps of one stage, between its probes' start and stop."""
    pending = [step for step in steps if step.name not in record.done]
    if not pending:
        return
    resumed = record.step in {s.name for s in steps} or len(pending) < len(steps)
    where, earlier = probes.start(steps[0].node)
    before = from_dict(record.stages.get(stage, {}))
    begun = time.monotonic()
    try:
        for step in pending:
            record.begin(step.name)
            started = time.monotonic()
            with progress.phase(step.name, step.message):
                act(step)
            record.finish(step.name, time.monotonic() - started)
            check_interrupted()
    finally:
        try:
            seen = probes.stop()
        except K8slabError as exc:
            progress.say("probes", f"not read: {exc}", where)
            seen = {}
        figures = _merged(before, earlier if resumed else {}, seen)
        took = record.stages.get(stage, {}).get("seconds", 0.0) + time.monotonic() - begun
        record.stages[stage] = {
            **record.stages.get(stage, {}),
            **as_dict(figures),
            "seconds": round(took, 1),
            "probe_node": where,
        }
        record.save()


def run_steps(
    record: Journal,
    steps: list[PlannedStep],
    act: Callable[[PlannedStep], object],
    probes: StageProbes,
    progress: Progress,
    again: str,
) -> None:
    """Every pending step, stage by stage; a failure or interrupt closes the journal
    ``failed`` or ``interrupted`` and raises an UpgradeError that says how to go on
    (``again``: the command that resumes)."""
    with interruptible(progress):
        try:
            for stage, group in itertools.groupby(steps, key=lambda step: step.stage):
                run_stage(record, stage, list(group), act, probes, progress)
        except KeyboardInterrupt as exc:
            why = str(exc) or "SIGINT"
            record.close("interrupted", f"{why} in step {record.step!r}")
            raise UpgradeError(
                f"lab {record.lab}: the upgrade to {record.to_version} was interrupted "
                f"({why}) in step {record.step or 'between steps'}; `{again}` goes on from there"
            ) from exc
        except (K8slabError, OSError) as exc:
            record.close("failed", f"{record.step}: {exc}")
            raise UpgradeError(
                f"lab {record.lab}: the upgrade to {record.to_version} failed in step "
                f"{record.step}: {exc}\nFix what stops it and run `{again}`: it goes on from "
                "that step"
            ) from exc
