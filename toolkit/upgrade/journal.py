"""The upgrade journal: which steps of an upgrade are done, kept in the lab's state directory.

Written before the first step and after every step, like the etcd restore's journal
(``toolkit/etcd/journal.py``), so that an upgrade cut short (a failure, Ctrl-C, SIGTERM,
a killed process) goes on from where it was when ``k8slab upgrade`` runs again. It also
keeps what each finished stage measured, so that a resumed run reports the whole upgrade.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolkit.lab.state import LabState, is_lab_name, read_journal_json
from toolkit.upgrade.plan import STEP_NAME_RE, VERSION_RE, UpgradeError

JOURNAL_NAME = "upgrade.json"
MAX_JOURNAL_BYTES = 256 * 1024
# running: an upgrade is at it (or was killed); interrupted, failed: cut short, the next
# run goes on; finished: done.
OPEN_STATES = ("running", "interrupted", "failed")
STATES = (*OPEN_STATES, "finished")
STAMP = re.compile(r"\d{8}T\d{6}Z")
STAGE_RE = re.compile(r"[a-z-]+( [a-z0-9-]+)?")


def journal_path(lab: str) -> Path:
    return LabState.of(lab).root / JOURNAL_NAME


@dataclass
class Journal:
    """What an upgrade did so far: ``steps`` is its plan, ``done`` the steps finished,
    ``step`` the one under way (it may have half happened: it runs again)."""

    lab: str
    from_version: str
    to_version: str
    stamp: str
    steps: list[str]
    state: str = "running"
    step: str = ""
    done: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    plan_output: str = ""
    reason: str = ""
    updated: str = ""

    @property
    def path(self) -> Path:
        return journal_path(self.lab)

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    def pending(self) -> list[str]:
        return [name for name in self.steps if name not in self.done]

    def begin(self, step: str) -> None:
        self.step = step
        self.save()

    def finish(self, step: str, seconds: float) -> None:
        if step not in self.done:
            self.done.append(step)
        self.seconds[step] = round(self.seconds.get(step, 0.0) + seconds, 1)
        self.step = ""
        self.save()

    def close(self, state: str, reason: str = "") -> None:
        self.state, self.reason = state, reason
        self.save()

    def save(self) -> None:
        """Write the journal atomically (a new file renamed over the old, synced first)."""
        self.updated = datetime.now(UTC).isoformat(timespec="seconds")
        LabState.of(self.lab).write_json(self.path, asdict(self), mode=0o600)


def load(lab: str) -> Journal | None:
    """The lab's journal, every field checked, or None when there is none."""
    path = journal_path(lab)
    data = read_journal_json(path, MAX_JOURNAL_BYTES, "upgrade journal", UpgradeError)
    if data is None:
        return None
    problems = journal_problems(data, lab)
    if problems:
        raise UpgradeError(f"{path}: " + "; ".join(problems))
    return Journal(**data)


def journal_problems(data: Any, lab: str) -> list[str]:
    """What is wrong with a journal's fields (step and node names reach hosts' commands)."""
    if not isinstance(data, dict):
        return ["not a JSON object"]
    expected = set(Journal.__dataclass_fields__)
    if set(data) != expected:
        return [f"fields {sorted(data)} are not {sorted(expected)}"]
    problems = []
    if not isinstance(data["lab"], str) or not is_lab_name(data["lab"]) or data["lab"] != lab:
        problems.append(f"lab {data['lab']!r} is not {lab!r}")
    for key in ("from_version", "to_version"):
        if not isinstance(data[key], str) or not VERSION_RE.fullmatch(data[key]):
            problems.append(f"{key} {data[key]!r} is not a version like v1.35.4")
    if not isinstance(data["stamp"], str) or not STAMP.fullmatch(data["stamp"]):
        problems.append(f"stamp {data['stamp']!r} is not like 20261128T220000Z")
    if data["state"] not in STATES:
        problems.append(f"state {data['state']!r} is not one of {', '.join(STATES)}")
    steps = data["steps"]
    if not _names(steps, STEP_NAME_RE):
        problems.append("steps must be a list of step names")
    elif not _names(data["done"], STEP_NAME_RE) or not set(data["done"]) <= set(steps):
        problems.append("done must list steps of the plan")
    elif data["step"] not in ("", *steps):
        problems.append(f"step {data['step']!r} is not a step of the plan")
    seconds = data["seconds"]
    if not isinstance(seconds, dict) or not all(
        name in steps and isinstance(value, int | float) for name, value in seconds.items()
    ):
        problems.append("seconds must map steps of the plan to numbers")
    stages = data["stages"]
    if not isinstance(stages, dict) or not all(
        isinstance(name, str) and STAGE_RE.fullmatch(name) and isinstance(value, dict)
        for name, value in stages.items()
    ):
        problems.append("stages must map stage names to what they measured")
    if not all(isinstance(data[key], str) for key in ("plan_output", "reason", "updated")):
        problems.append("plan_output, reason and updated must be text")
    return problems


def _names(value: Any, pattern: re.Pattern[str]) -> bool:
    return isinstance(value, list) and all(
        isinstance(item, str) and pattern.fullmatch(item) for item in value
    )
