"""What a drill found: pass or fail, its timings, each check with evidence; JSON and Markdown."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolkit.lab.state import LabState


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class DrillResult:
    drill: str
    lab: str
    topology: str
    started: str  # UTC, ISO 8601
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @property
    def passed(self) -> bool:
        return not self.error and bool(self.checks) and all(c.ok for c in self.checks)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, bool(ok), detail))
        return bool(ok)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def render_markdown(results: list[DrillResult]) -> str:
    lines = ["# etcd drills", ""]
    if results:
        first = results[0]
        lines += [f"Lab `{first.lab}` ({first.topology} etcd), started {first.started}.", ""]
    lines += ["| drill | result | time | key timings |", "| --- | --- | --- | --- |"]
    for result in results:
        keys = ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items())
        verdict = "PASS" if result.passed else "FAIL"
        lines.append(f"| {result.drill} | {verdict} | {result.seconds:.1f}s | {keys} |")
    for result in results:
        lines += ["", f"## {result.drill}: {'PASS' if result.passed else 'FAIL'}", ""]
        if result.error:
            lines += [f"Stopped by an error: `{result.error}`", ""]
        for check in result.checks:
            mark = "x" if check.ok else " "
            detail = f": {check.detail}" if check.detail else ""
            lines.append(f"- [{mark}] {check.name}{detail}")
        if result.data:
            lines += ["", "```json", json.dumps(result.data, indent=2, sort_keys=True), "```"]
    return "\n".join(lines) + "\n"


def report_paths(lab: str, names: list[str]) -> tuple[Path, Path]:
    """``<state>/reports/drill-<name|all>-<UTC>.{json,md}`` for a run of these drills."""
    reports = LabState.of(lab).root / "reports"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    label = "all" if len(names) > 1 else names[0]
    return reports / f"drill-{label}-{stamp}.json", reports / f"drill-{label}-{stamp}.md"


def write_reports(
    lab: str, results: list[DrillResult], paths: tuple[Path, Path] | None = None
) -> tuple[Path, Path]:
    """Write (or rewrite) the JSON and Markdown reports; returns both paths."""
    json_path, md_path = paths or report_paths(lab, [r.drill for r in results])
    json_path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "lab": lab,
        "passed": all(r.passed for r in results),
        "drills": [r.to_dict() for r in results],
    }
    json_path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(render_markdown(results), encoding="utf-8")
    return json_path, md_path
