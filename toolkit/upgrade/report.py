"""What an upgrade did and cost: its steps' times, each stage's probe figures, the checks
that judge it; ``<state>/reports/upgrade-<stamp>.{json,md}``, like the drills' reports."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from toolkit.drills.report import Check
from toolkit.lab.state import LabState

# Issue 16's bounds: a client of the API through the VIP never waits longer than this for
# an answer, and no request to the Service fails.
API_GAP_BUDGET_S = 5.0
SERVICE_FAILURES_BUDGET = 0


@dataclass
class UpgradeResult:
    lab: str
    topology: str
    from_version: str
    to_version: str
    started: str  # UTC, ISO 8601: when the upgrade's journal was begun
    seconds: float = 0.0  # this run's time (a resumed run: since it resumed)
    steps: dict[str, float] = field(default_factory=dict)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    converged_changed: dict[str, int] = field(default_factory=dict)
    plan_output: str = ""
    nothing_to_do: bool = False

    @property
    def passed(self) -> bool:
        return self.nothing_to_do or (bool(self.checks) and all(c.ok for c in self.checks))

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, bool(ok), detail))
        return bool(ok)

    def worst(self, probe: str) -> tuple[float, int]:
        """The longest gap and the failed requests of one probe over every stage."""
        figures = [stage[probe] for stage in self.stages.values() if probe in stage]
        return (
            max((f["longest_gap_s"] for f in figures), default=0.0),
            sum(f["failed"] for f in figures),
        )

    def to_dict(self) -> dict[str, Any]:
        api_gap, api_failed = self.worst("api")
        service_gap, service_failed = self.worst("service")
        return {
            **asdict(self),
            "passed": self.passed,
            "api": {"longest_gap_s": api_gap, "failed": api_failed},
            "service": {"longest_gap_s": service_gap, "failed": service_failed},
        }


def _figures(stage: dict[str, Any], probe: str) -> str:
    found = stage.get(probe)
    if not found:
        return "-"
    return f"{found['requests']} / {found['failed']} / {found['longest_gap_s']:.1f}s"


def render_markdown(result: UpgradeResult) -> str:
    verdict = "PASS" if result.passed else "FAIL"
    api_gap, api_failed = result.worst("api")
    service_gap, service_failed = result.worst("service")
    lines = [
        f"# Upgrade of {result.lab}: {result.from_version} -> {result.to_version}: {verdict}",
        "",
        f"Lab `{result.lab}` ({result.topology} etcd), begun {result.started}; this run "
        f"took {result.seconds:.0f}s.",
        "",
        f"- API through the VIP: longest gap {api_gap:.1f}s, {api_failed} failed requests",
        f"- Service (3 replicas, a PodDisruptionBudget): longest gap {service_gap:.1f}s, "
        f"{service_failed} failed requests",
        "",
        "## Checks",
        "",
    ]
    for check in result.checks:
        detail = f": {check.detail}" if check.detail else ""
        lines.append(f"- [{'x' if check.ok else ' '}] {check.name}{detail}")
    lines += [
        "",
        "## Stages",
        "",
        "Probes every 0.25 s from a node the stage leaves alone: requests / failed / longest gap.",
        "",
        "| stage | time | probes on | API | Service |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, stage in result.stages.items():
        lines.append(
            f"| {name} | {stage.get('seconds', 0):.0f}s | {stage.get('probe_node', '-')} | "
            f"{_figures(stage, 'api')} | {_figures(stage, 'service')} |"
        )
    lines += ["", "## Steps", "", "| step | time |", "| --- | --- |"]
    lines += [f"| {name} | {seconds:.1f}s |" for name, seconds in result.steps.items()]
    if result.converged_changed:
        changed = ", ".join(f"{h}={n}" for h, n in sorted(result.converged_changed.items()))
        lines += ["", f"The converged step's provision changed: {changed}."]
    if result.plan_output:
        lines += ["", "## kubeadm upgrade plan", "", "```", result.plan_output.strip(), "```"]
    return "\n".join(lines) + "\n"


def report_paths(lab: str, stamp: str) -> tuple[Path, Path]:
    """``<state>/reports/upgrade-<stamp>.{json,md}``: a resumed run rewrites its upgrade's."""
    reports = LabState.of(lab).root / "reports"
    return reports / f"upgrade-{stamp}.json", reports / f"upgrade-{stamp}.md"


def write_reports(result: UpgradeResult, stamp: str) -> tuple[Path, Path]:
    json_path, md_path = report_paths(result.lab, stamp)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    md_path.write_text(render_markdown(result), encoding="utf-8")
    return json_path, md_path
