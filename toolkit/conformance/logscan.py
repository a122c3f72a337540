"""Progress of a running suite, read from its log (go-runner's e2e.log: ginkgo's output).

Ginkgo's default (succinct, ``--no-color``) reporter prints, after ``Will run N of M
specs``, one mark per spec of the suite on lines of marks: ``•`` passed, ``S`` skipped,
which the specs left out by the focus are too (e2e.test's dry run of the sig-network
focus printed 45 ``•`` among 7,099 ``S``), so only ``•`` counts. A spec worth a look gets
a block, between lines of dashes:
``• [FAILED] [12.3 seconds]`` (or ``[PANICKED]``, ``[TIMEDOUT]``, ``[INTERRUPTED]``) or a
slow pass ``• [31.2 seconds]``, then the spec's name on the next line. It ends with
``Ran N of M Specs in ...`` and a summary that names the failures again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

WILL_RUN = re.compile(r"Will run (\d+) of (\d+) specs")
MARKS = re.compile(r"^([•SP]+)(?:-{5,})?$")
BLOCK = re.compile(r"^([•S]) \[(FAILED|PANICKED|TIMEDOUT|INTERRUPTED|SKIPPED|[\d.]+ seconds)\]")
RAN = re.compile(r"^Ran (\d+) of (\d+) Specs in ([\d.]+) seconds")
SUMMARY = re.compile(r"^Summarizing \d+ Failures?:")
BAD = ("FAILED", "PANICKED", "TIMEDOUT", "INTERRUPTED")


@dataclass
class SuiteProgress:
    total: int | None = None  # specs that will run
    suite: int | None = None  # specs in the suite
    done: int = 0
    failed: list[str] = field(default_factory=list)
    ran: int | None = None  # from the closing "Ran N of M Specs" line

    def line(self) -> str:
        """``37/424 specs done, 1 failed`` (or what is known before the suite starts)."""
        if self.total is None:
            return "starting (no spec list yet)"
        failures = f", {len(self.failed)} failed" if self.failed else ""
        if self.ran is not None:  # a spec skipped while running is not among those that ran
            return f"finished: {self.ran}/{self.total} specs ran{failures}"
        return f"{self.done}/{self.total} specs done{failures}"


class LogScanner:
    """Fed the log as it grows (chunks cut anywhere), keeps :class:`SuiteProgress`."""

    def __init__(self) -> None:
        self.progress = SuiteProgress()
        self._partial = ""
        self._name_of: str | None = None  # the next non-empty line names a failed spec
        self._in_summary = False

    def feed(self, chunk: str) -> SuiteProgress:
        """Read ``chunk``; the progress so far. Ginkgo leaves a line of marks open until a
        block or the end comes: the marks of the open line count already."""
        text = self._partial + chunk
        lines = text.split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._line(line.rstrip("\r"))
        done = self.progress.done
        open_marks = MARKS.match(self._partial.strip())
        if open_marks and self.progress.total is not None and not self._in_summary:
            done += open_marks[1].count("•")
        return replace(self.progress, done=done, failed=list(self.progress.failed))

    def _line(self, line: str) -> None:
        p = self.progress
        stripped = line.strip()
        if self._name_of is not None:
            if stripped:
                # "[sig-x] Thing [It] does [Conformance]": as the JUnit report names it.
                p.failed.append(stripped.replace(" [It] ", " "))
                self._name_of = None
            return
        if match := WILL_RUN.search(line):
            p.total, p.suite = int(match[1]), int(match[2])
            return
        if p.total is None:
            return
        if match := RAN.match(stripped):  # after the summary of failures
            p.ran = int(match[1])
            return
        if self._in_summary:
            return
        if SUMMARY.match(stripped):
            self._in_summary = True
            return
        if match := MARKS.match(stripped):
            p.done += match[1].count("•")
            return
        if match := BLOCK.match(stripped):
            p.done += match[1] == "•"
            if match[2] in BAD:
                self._name_of = match[2]
