"""Progress of a running suite, read from its log (go-runner's e2e.log: ginkgo's output).

Ginkgo's default (succinct, ``--no-color``) reporter prints, after ``Will run N of M
specs``, one mark per finished spec on lines of marks (``•`` passed, ``S`` skipped, ``P``
pending) and a block for a spec worth a look, between lines of dashes:
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
        finished = " (finished)" if self.ran is not None else ""
        return f"{self.done}/{self.total} specs done{failures}{finished}"


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
            done += len(open_marks[1])
        return replace(self.progress, done=done, failed=list(self.progress.failed))

    def _line(self, line: str) -> None:
        p = self.progress
        stripped = line.strip()
        if self._name_of is not None:
            if stripped:
                p.failed.append(stripped)
                self._name_of = None
            return
        if match := WILL_RUN.search(line):
            p.total, p.suite = int(match[1]), int(match[2])
            return
        if p.total is None or self._in_summary:
            return
        if match := RAN.match(stripped):
            p.ran = int(match[1])
            return
        if SUMMARY.match(stripped):
            self._in_summary = True
            return
        if match := MARKS.match(stripped):
            p.done += len(match[1])
            return
        if match := BLOCK.match(stripped):
            p.done += 1
            if match[2] in BAD:
                self._name_of = match[2]
