"""What a verification run found: one result per check and host, read back from the JUnit
XML that pytest wrote, and rendered as a table (terminal) and a Markdown report."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

OUTCOMES = ("passed", "failed", "error", "skipped")
# A suite module is named check_<group>.py; its group is spelt with dashes on the CLI.
MODULE_RE = re.compile(r"(?:^|[./])check_(?P<group>[a-z_]+)$")
TEST_RE = re.compile(r"^test_(?P<check>[^\[]+)(?:\[(?P<subject>.*)\])?$")
# pytest prefixes the message of pytest.fail() and pytest.skip() with these.
MESSAGE_PREFIXES = ("Failed: ", "Skipped: ")
# A JUnit property a check records when it passed only after a retry: what failed first.
NOTE_PROPERTY = "k8slab_note"


@dataclass(frozen=True)
class CheckResult:
    """One check on one host (or one subject, such as a pair of Pods)."""

    group: str
    check: str
    host: str
    outcome: str  # one of OUTCOMES
    seconds: float
    evidence: str = ""  # of a passed check: its note (what failed before a retry passed)

    @property
    def ok(self) -> bool:
        return self.outcome in ("passed", "skipped")


@dataclass(frozen=True)
class VerifyReport:
    lab: str
    groups: tuple[str, ...]
    started: str  # UTC, ISO 8601
    seconds: float
    results: tuple[CheckResult, ...]
    junit_xml: Path
    markdown: Path

    @property
    def passed(self) -> bool:
        """True when at least one check ran and none failed or errored."""
        return bool(self.results) and all(r.ok for r in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.ok]

    def counts(self) -> dict[str, int]:
        return {o: sum(1 for r in self.results if r.outcome == o) for o in OUTCOMES}


def group_name(module: str) -> str:
    match = MODULE_RE.search(module)
    return match.group("group").replace("_", "-") if match else module


def parse_junit(xml_text: str) -> list[CheckResult]:
    """The results of a pytest JUnit XML report, in the order the checks ran."""
    root = ET.fromstring(xml_text)
    results = []
    for case in root.iter("testcase"):
        name = case.get("name", "")
        match = TEST_RE.match(name)
        check = match.group("check") if match else name
        subject = (match.group("subject") if match else None) or "-"
        outcome, evidence = "passed", _note(case)
        for tag in ("failure", "error", "skipped"):
            element = case.find(tag)
            if element is not None:
                outcome = "failed" if tag == "failure" else tag
                evidence = _evidence(element)
                break
        results.append(
            CheckResult(
                group=group_name(case.get("classname", "")),
                check=check,
                host=subject,
                outcome=outcome,
                seconds=float(case.get("time", "0") or 0),
                evidence=evidence,
            )
        )
    return results


def _note(case: ET.Element) -> str:
    for prop in case.iter("property"):
        if prop.get("name") == NOTE_PROPERTY:
            return prop.get("value", "")
    return ""


def _evidence(element: ET.Element) -> str:
    """A check's own message (pytest shortens the message attribute, so the element's text
    first); for an error in the check itself, its traceback."""
    message = element.get("message", "")
    for prefix in MESSAGE_PREFIXES:
        message = message.removeprefix(prefix)
    text = (element.text or "").strip()
    if element.tag == "skipped":
        # pytest writes "file:line: reason" into a skipped element's text.
        return message.strip() or text
    return text or message.strip()


def render_table(results: list[CheckResult] | tuple[CheckResult, ...]) -> str:
    """A plain text table: group, check, host, result, time; failures' evidence below it."""
    rows = [("group", "check", "host", "result", "time")]
    rows += [(r.group, r.check, r.host, r.outcome.upper(), f"{r.seconds:.1f}s") for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    out = "\n".join(lines)
    details = [r for r in results if r.evidence]
    for r in details:
        outcome = "PASSED after a retry" if r.outcome == "passed" else r.outcome.upper()
        heading = f"{outcome} {r.group}/{r.check} [{r.host}]"
        out += f"\n\n{heading}\n" + _indent(r.evidence)
    return out


def render_markdown(report: VerifyReport) -> str:
    counts = report.counts()
    summary = ", ".join(f"{n} {o}" for o, n in counts.items() if n)
    lines = [
        f"# k8slab verify {report.lab}",
        "",
        f"- started: {report.started}",
        f"- groups: {', '.join(report.groups)}",
        f"- result: **{'PASSED' if report.passed else 'FAILED'}** ({summary or 'no checks'}) "
        f"in {report.seconds:.1f}s",
        f"- JUnit XML: `{report.junit_xml}`",
        "",
        "| group | check | host | result | time |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in report.results:
        mark = r.outcome if r.ok else f"**{r.outcome}**"
        lines.append(f"| {r.group} | {r.check} | {r.host} | {mark} | {r.seconds:.1f}s |")
    evidence = [r for r in report.results if r.evidence]
    if evidence:
        lines += ["", "## Evidence"]
        for r in evidence:
            outcome = "passed after a retry" if r.outcome == "passed" else r.outcome
            lines += ["", f"### {outcome}: {r.group}/{r.check} [{r.host}]", "", "```"]
            lines += [r.evidence.replace("```", "'''"), "```"]
    return "\n".join(lines) + "\n"


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())
