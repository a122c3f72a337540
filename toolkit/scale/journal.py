"""The scale journal: which steps of a ``k8slab scale`` are done, kept in the lab's state
directory so that a run cut short (a failure, Ctrl-C, SIGTERM, a kill) is resumed from
there when run again, and no other scale begins meanwhile.

It holds the spec's text before and after the change: a resumed run rebuilds both labs
from them (validated again), not from the spec file, which is edited only at the end.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolkit.errors import K8slabError
from toolkit.lab.spec import HOSTNAME_RE
from toolkit.lab.state import LabState, is_lab_name, read_journal_json

JOURNAL_NAME = "scale.json"
# Two spec texts of at most 32 KiB each, and the steps.
MAX_JOURNAL_BYTES = 128 * 1024
OPEN_STATES = ("running", "interrupted", "failed")
STATES = (*OPEN_STATES, "finished")
KINDS = ("add", "remove")
# Every step a scale may take; a step on one node is journaled as "step:node".
STEPS = (
    "hosts-created",
    "vip-released",
    "drained",
    "etcd-member-removed",
    "host-reset",
    "node-deleted",
    "host-destroyed",
    "converged",
    "ready",
    "spec-written",
)
STAMP = re.compile(r"\d{8}T\d{6}Z")


class ScaleJournalError(K8slabError):
    """The scale journal is unreadable, or says another scale is unfinished."""


def journal_path(lab: str) -> Path:
    return LabState.of(lab).root / JOURNAL_NAME


def step_key(step: str, node: str = "") -> str:
    return f"{step}:{node}" if node else step


@dataclass
class ScaleJournal:
    lab: str
    kind: str
    nodes: list[str]
    text_before: str
    text_after: str
    stamp: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
    state: str = "running"
    step: str = ""
    done: list[str] = field(default_factory=list)
    reason: str = ""
    updated: str = ""

    def is_done(self, key: str) -> bool:
        return key in self.done

    def begin(self, key: str) -> None:
        self.step = key
        self.save()

    def mark(self, key: str) -> None:
        if key not in self.done:
            self.done.append(key)
        self.step = ""
        self.save()

    def close(self, state: str, reason: str = "") -> None:
        self.state, self.reason = state, reason
        self.save()

    def save(self) -> None:
        self.updated = datetime.now(UTC).isoformat(timespec="seconds")
        LabState.of(self.lab).write_json(journal_path(self.lab), asdict(self), mode=0o600)

    def describe(self) -> str:
        where = f", in step {self.step}" if self.step else ""
        return (
            f"the scale begun {self.stamp} ({self.kind} {', '.join(self.nodes)}) is "
            f"unfinished ({self.state}{where})"
        )


def load(lab: str) -> ScaleJournal | None:
    """The lab's scale journal, every field checked, or None when there is none."""
    path = journal_path(lab)
    data = read_journal_json(path, MAX_JOURNAL_BYTES, "scale journal", ScaleJournalError)
    if data is None:
        return None
    problems = journal_problems(data, lab)
    if problems:
        raise ScaleJournalError(f"{path}: " + "; ".join(problems))
    return ScaleJournal(**data)


def load_open(lab: str) -> ScaleJournal | None:
    """The journal of an unfinished scale of the lab, or None."""
    found = load(lab)
    return found if found is not None and found.state in OPEN_STATES else None


def _valid_key(key: Any) -> bool:
    if not isinstance(key, str):
        return False
    step, _, node = key.partition(":")
    return step in STEPS and (not node or bool(HOSTNAME_RE.fullmatch(node)))


def journal_problems(data: Any, lab: str) -> list[str]:
    """What is wrong with a journal's fields; its node names later reach hosts' shells."""
    if not isinstance(data, dict):
        return ["not a JSON object"]
    expected = {f for f in ScaleJournal.__dataclass_fields__}
    if set(data) != expected:
        return [f"fields {sorted(data)} are not {sorted(expected)}"]
    problems = []
    if not isinstance(data["lab"], str) or not is_lab_name(data["lab"]) or data["lab"] != lab:
        problems.append(f"lab {data['lab']!r} is not {lab!r}")
    if data["kind"] not in KINDS:
        problems.append(f"kind {data['kind']!r} is not one of {', '.join(KINDS)}")
    nodes = data["nodes"]
    if not isinstance(nodes, list) or not nodes:
        problems.append("nodes must be a list of node names")
    elif not all(isinstance(n, str) and HOSTNAME_RE.fullmatch(n) for n in nodes):
        problems.append(f"nodes {nodes!r} are not all node names")
    for key in ("text_before", "text_after", "reason", "updated"):
        if not isinstance(data[key], str):
            problems.append(f"{key} must be text")
    if not isinstance(data["stamp"], str) or not STAMP.fullmatch(data["stamp"]):
        problems.append(f"stamp {data['stamp']!r} is not like 20261128T221500Z")
    if data["state"] not in STATES:
        problems.append(f"state {data['state']!r} is not one of {', '.join(STATES)}")
    if data["step"] != "" and not _valid_key(data["step"]):
        problems.append(f"step {data['step']!r} is not a step of a scale")
    done = data["done"]
    if not isinstance(done, list) or not all(_valid_key(key) for key in done):
        problems.append("done must list steps of a scale")
    return problems
