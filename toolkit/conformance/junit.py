"""The summary of a conformance run, from the JUnit report e2e.test writes.

e2e.test's ``junit_01.xml`` (test/e2e/framework/internal/junit) has a ``testcase`` for
every spec of the suite, the ones the focus left out included (``status="skipped"``,
``<skipped message="skipped">``), and for the suite's own nodes (``[SynchronizedBeforeSuite]``,
``[ReportAfterSuite] ...``). A failure's text is the element's body (no ``message``
attribute): ``[FAILED] <what>`` on its first line, then where.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from toolkit.errors import K8slabError

# Ginkgo's suite-level nodes: reported like specs, counted as failures only.
SUITE_NODES = (
    "[BeforeSuite]",
    "[AfterSuite]",
    "[SynchronizedBeforeSuite]",
    "[SynchronizedAfterSuite]",
    "[ReportBeforeSuite]",
    "[ReportAfterSuite]",
    "[DeferCleanup (Suite)]",
)
# Ginkgo's message for a spec it never ran (filtered out by focus or skip).
NOT_SELECTED = "skipped"


class JUnitError(K8slabError):
    """The JUnit report is missing or unreadable."""


@dataclass(frozen=True)
class Failure:
    name: str
    status: str  # failed, timedout, panicked, interrupted, aborted
    first_line: str
    seconds: float


@dataclass
class Summary:
    passed: int = 0
    failed: list[Failure] = field(default_factory=list)
    # Skipped while running (an e2eskipper reason: a feature the cluster lacks...).
    skipped: dict[str, str] = field(default_factory=dict)
    not_selected: int = 0  # left out by --focus/--skip
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "failed": [asdict(f) for f in self.failed],
            "skipped": self.skipped,
            "not_selected": self.not_selected,
            "seconds": round(self.seconds, 1),
        }


FIRST_LINE_CHARS = 300


def first_line(text: str) -> str:
    """The failure's message on one line: its text up to where ginkgo says where it
    happened (``In [It] at: ...``). A gomega message spans lines (``[FAILED] Expected`` /
    ``<int>: 1`` / ``to equal`` / ...): they are joined."""
    words: list[str] = []
    for line in text.splitlines():
        if line.strip().startswith("In [") and words:
            break
        words += line.split()
    joined = " ".join(words) or "(no failure text)"
    return joined if len(joined) <= FIRST_LINE_CHARS else joined[: FIRST_LINE_CHARS - 3] + "..."


def summarize(xml_text: str) -> Summary:
    """Count a junit_01.xml's specs by outcome."""
    try:
        root = ElementTree.fromstring(xml_text)
    except ElementTree.ParseError as exc:
        raise JUnitError(f"the JUnit report is not XML: {exc}") from None
    summary = Summary()
    for case in root.iter("testcase"):
        # Specs are named "[It] <full text>"; the suite's own nodes "[SynchronizedBeforeSuite]"...
        name = case.get("name", "").removeprefix("[It] ")
        status = case.get("status", "")
        seconds = float(case.get("time") or 0)
        summary.seconds += seconds
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            kind = problem.get("type") or status or "failed"
            summary.failed.append(Failure(name, kind, first_line(problem.text or ""), seconds))
            continue
        skipped = case.find("skipped")
        if skipped is not None:
            message = skipped.get("message", "")
            if message in (NOT_SELECTED, "pending"):
                summary.not_selected += 1
            else:
                summary.skipped[name] = message.removeprefix(f"{NOT_SELECTED} - ")
            continue
        if not name.startswith(SUITE_NODES):
            summary.passed += 1
    return summary


def read_summary(path: Path) -> Summary:
    try:
        return summarize(path.read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:
        raise JUnitError(f"{path} is missing: e2e.test wrote no JUnit report") from None
