"""Drills: break a lab's etcd or control plane on purpose and prove it recovers.

``run_drills`` refuses to start a drill on a lab that is not healthy, runs it, then judges
the lab with its own health gate and with ``k8slab verify``, and writes a JSON and a
Markdown report to ``<state>/reports/``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from toolkit.drills import backup_restore, control_plane_loss, member_loss, quorum_loss
from toolkit.drills.lab_ops import DrillError, check_host_power, remove_probe_files, wait_healthy
from toolkit.drills.report import DrillResult, report_paths, write_reports
from toolkit.errors import K8slabError
from toolkit.lab.spec import Lab
from toolkit.progress import SILENT, Progress
from toolkit.verify import VerifyReport, run_verify

# Each drill fills a DrillResult with timings, checks and data; run_drill gates it on a
# healthy lab and judges the lab afterwards. One module per drill, its entry point `run`.
DRILLS: dict[str, Callable[[Lab, DrillResult, Progress], None]] = {
    "backup-restore": backup_restore.run,
    "member-loss": member_loss.run,
    "quorum-loss": quorum_loss.run,
    "control-plane-loss": control_plane_loss.run,
}
DRILL_NAMES = tuple(DRILLS)
# The drills that stop and start a whole host (the others stop services with systemctl or
# the kubelet's static Pods): on existing hosts, only with the spec's host_power.
STOPS_HOSTS = ("control-plane-loss",)
AFTER_DRILL_HEALTHY_S = 300
# A loaded machine makes single probes fail now and then; unhealthy means for this long.
GATE_S = 60

__all__ = ["DRILL_NAMES", "DrillError", "DrillResult", "run_drill", "run_drills"]


def run_drill(
    lab: Lab,
    name: str,
    progress: Progress = SILENT,
    verify: Callable[[Lab], VerifyReport] = run_verify,
) -> DrillResult:
    """Run one drill; raises DrillError (nothing touched) when the lab is not healthy."""
    if name not in DRILLS:
        raise DrillError(f"no drill {name!r}; the drills are: {', '.join(DRILL_NAMES)}")
    if name in STOPS_HOSTS:
        check_host_power(lab, f"drill {name}")
    try:
        wait_healthy(lab, GATE_S)
    except DrillError as exc:
        raise DrillError(f"drill {name} does not start: {exc}") from exc
    result = DrillResult(
        drill=name,
        lab=lab.name,
        topology=lab.etcd_topology,
        started=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    started = time.monotonic()
    with progress.phase(name, f"drill on lab {lab.name}"):
        try:
            DRILLS[name](lab, result, progress)
        except K8slabError as exc:
            result.error = str(exc)
        finally:
            unreached = remove_probe_files(lab)
        if unreached:
            progress.say("drill", f"probe files left on {', '.join(unreached)} (unreachable)")
        try:
            result.timings["healthy_again_s"] = wait_healthy(lab, AFTER_DRILL_HEALTHY_S)
            result.check("lab healthy afterwards (API, nodes Ready, etcd one leader)", True)
        except K8slabError as exc:
            result.check(
                "lab healthy afterwards (API, nodes Ready, etcd one leader)", False, str(exc)
            )
        else:
            _judge_with_verify(lab, result, verify, progress)
    result.seconds = time.monotonic() - started
    return result


def _judge_with_verify(
    lab: Lab, result: DrillResult, verify: Callable[[Lab], VerifyReport], progress: Progress
) -> None:
    progress.say("verify", "k8slab verify")
    begun = time.monotonic()
    try:
        report = verify(lab)
    except K8slabError as exc:
        result.check("k8slab verify passes", False, str(exc))
        return
    result.timings["verify_s"] = time.monotonic() - begun
    failed = [f"{r.group}/{r.check}@{r.host}" for r in report.failures]
    result.check(
        "k8slab verify passes",
        report.passed,
        f"report {report.markdown}" + (f"; failed: {', '.join(failed[:10])}" if failed else ""),
    )


def run_drills(
    lab: Lab,
    names: list[str],
    progress: Progress = SILENT,
    on_result: Callable[[DrillResult], None] | None = None,
) -> tuple[list[DrillResult], Path, Path]:
    """Run the drills in order; a drill refused because the lab is unhealthy counts as failed.

    The reports are rewritten after each drill, so a run cut short keeps what it found.
    """
    paths = report_paths(lab.name, names)
    results = []
    for name in names:
        try:
            results.append(run_drill(lab, name, progress))
        except DrillError as exc:
            if len(names) == 1:
                raise
            refused = DrillResult(name, lab.name, lab.etcd_topology, datetime.now(UTC).isoformat())
            refused.error = str(exc)
            results.append(refused)
        write_reports(lab.name, results, paths)
        if on_result:
            on_result(results[-1])
    return results, *paths
