"""The restore journal: which host went through which step of a restore, kept on disk.

It is written into the lab's state directory before the first thing stops and after every
host finishes a step, so that a restore cut short (a failure, Ctrl-C, SIGTERM, a lost
terminal) can be finished (``--resume``) or undone (``--rollback``) from what each host
really went through, not from what this process remembered.
"""

from __future__ import annotations

import re
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolkit.errors import K8slabError
from toolkit.etcd.manifest import NAME_RE
from toolkit.lab.spec import HOSTNAME_RE
from toolkit.lab.state import LabState, is_lab_name, read_journal_json

JOURNAL_NAME = "etcd-restore.json"
MAX_JOURNAL_BYTES = 64 * 1024

# The steps that change the lab, in order.
STEPS = (
    "control-plane-stopped",
    "etcd-stopped",
    "data-swapped",
    "etcd-started",
    "control-plane-started",
)
# running: a restore is at it (or was killed); interrupted/failed: cut short, --resume or
# --rollback reads it; rolling-back: only --rollback may go on; finished and rolled-back
# are the two ends.
OPEN_STATES = ("running", "interrupted", "failed", "rolling-back")
STATES = (*OPEN_STATES, "finished", "rolled-back")
STAMP = re.compile(r"\d{8}T\d{6}Z")


class JournalError(K8slabError):
    """The restore journal is missing, unreadable, or says something else is under way."""


def journal_path(lab: str) -> Path:
    return LabState.of(lab).root / JOURNAL_NAME


@dataclass
class Journal:
    """What a restore did so far. ``done`` maps a step to the hosts that finished it;
    ``step`` is the step under way, which may have happened on some hosts only."""

    lab: str
    snapshot: str
    file: str
    revision: int
    stamp: str
    state: str = "running"
    step: str = ""
    done: dict[str, list[str]] = field(default_factory=dict)
    reason: str = ""
    updated: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return journal_path(self.lab)

    def finished_on(self, step: str) -> set[str]:
        return set(self.done.get(step, []))

    def touched(self, step: str) -> bool:
        """Whether ``step`` may have changed anything: finished somewhere, or under way."""
        return bool(self.done.get(step)) or self.step == step

    def begin(self, step: str) -> None:
        with self._lock:
            self.step = step
            self._save()

    def mark(self, step: str, host: str) -> None:
        """``host`` finished ``step`` (called from the worker threads)."""
        with self._lock:
            hosts = self.done.setdefault(step, [])
            if host not in hosts:
                hosts.append(host)
            self._save()

    def end_step(self) -> None:
        with self._lock:
            self.step = ""
            self._save()

    def close(self, state: str, reason: str = "") -> None:
        with self._lock:
            self.state, self.reason = state, reason
            self._save()

    def _save(self) -> None:
        self.updated = datetime.now(UTC).isoformat(timespec="seconds")
        data = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        LabState.of(self.lab).write_json(self.path, data, mode=0o600)


def refuse_if_unfinished(lab: str) -> None:
    """A new restore must not bury the journal of one that was cut short."""
    earlier = load(lab)
    if earlier is not None and earlier.state in OPEN_STATES:
        where = f", in step {earlier.step!r}" if earlier.step else ""
        raise JournalError(
            f"lab {lab}: the restore of {earlier.file} started {earlier.stamp} is "
            f"unfinished ({earlier.state}{where}); finish it with "
            f"`k8slab etcd restore {lab} --resume` or undo it with "
            f"`k8slab etcd restore {lab} --rollback` first"
        )


def start(journal: Journal) -> Journal:
    """Write a new journal; refused while an earlier restore of the lab is unfinished."""
    refuse_if_unfinished(journal.lab)
    journal.path.parent.mkdir(parents=True, exist_ok=True)
    journal.begin("")
    return journal


def load_open(lab: str, wanted: str) -> Journal:
    """The journal of a restore that was cut short, for ``--resume`` or ``--rollback``."""
    found = load(lab)
    if found is None:
        raise JournalError(
            f"lab {lab}: no restore journal at {journal_path(lab)}; no restore was cut "
            f"short, there is nothing to {wanted}"
        )
    if found.state not in OPEN_STATES:
        raise JournalError(
            f"lab {lab}: the last restore ({found.file}, {found.stamp}) is {found.state}; "
            f"there is nothing to {wanted}"
        )
    if found.state == "rolling-back" and wanted == "resume":
        raise JournalError(
            f"lab {lab}: a rollback of the restore of {found.file} was begun; finish it with "
            f"`k8slab etcd restore {lab} --rollback`"
        )
    return found


def load(lab: str) -> Journal | None:
    """The lab's journal, every field checked, or None when there is none."""
    path = journal_path(lab)
    data = read_journal_json(path, MAX_JOURNAL_BYTES, "restore journal", JournalError)
    if data is None:
        return None
    problems = journal_problems(data, lab)
    if problems:
        raise JournalError(f"{path}: " + "; ".join(problems))
    return Journal(**data)


def journal_problems(data: Any, lab: str) -> list[str]:
    """What is wrong with a journal's fields; every value later reaches a host's shell."""
    if not isinstance(data, dict):
        return ["not a JSON object"]
    expected = {
        "lab",
        "snapshot",
        "file",
        "revision",
        "stamp",
        "state",
        "step",
        "done",
        "reason",
        "updated",
    }
    problems = []
    if set(data) != expected:
        problems.append(f"fields {sorted(data)} are not {sorted(expected)}")
        return problems
    if not isinstance(data["lab"], str) or not is_lab_name(data["lab"]) or data["lab"] != lab:
        problems.append(f"lab {data['lab']!r} is not {lab!r}")
    if not isinstance(data["file"], str) or not NAME_RE.fullmatch(data["file"]):
        problems.append(f"file {data['file']!r} is not a snapshot's name")
    if not isinstance(data["snapshot"], str) or Path(data["snapshot"]).name != data["file"]:
        problems.append(f"snapshot {data['snapshot']!r} does not end in file {data['file']!r}")
    if not isinstance(data["revision"], int) or isinstance(data["revision"], bool):
        problems.append(f"revision {data['revision']!r} is not a number")
    if not isinstance(data["stamp"], str) or not STAMP.fullmatch(data["stamp"]):
        problems.append(f"stamp {data['stamp']!r} is not like 20261126T001500Z")
    if data["state"] not in STATES:
        problems.append(f"state {data['state']!r} is not one of {', '.join(STATES)}")
    if data["step"] not in ("", *STEPS):
        problems.append(f"step {data['step']!r} is not one of {', '.join(STEPS)}")
    done = data["done"]
    if not isinstance(done, dict) or not all(
        step in STEPS
        and isinstance(hosts, list)
        and all(isinstance(h, str) and HOSTNAME_RE.fullmatch(h) for h in hosts)
        for step, hosts in done.items()
    ):
        problems.append("done must map steps to lists of host names")
    if not isinstance(data["reason"], str) or not isinstance(data["updated"], str):
        problems.append("reason and updated must be text")
    return problems
