"""What a provisioning run's ansible-runner events say: per-phase progress and time, each
host's ok and changed tasks, kubeadm's share of the time, and the failed tasks' messages."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from toolkit.progress import Progress

# The tasks that run kubeadm init or join (roles/control_plane/tasks/init.yml,
# roles/common/tasks/join.yml), by their exact names: a kubeadm phase's time is theirs.
# tests/unit/test_provision.py holds these names and the roles' tasks to each other.
KUBEADM_TASKS = frozenset(
    {
        "Run kubeadm init",
        "Run kubeadm join on control planes, one at a time (etcd adds members one by one)",
        "Run kubeadm join on workers",
    }
)


@dataclass
class PhaseResult:
    name: str
    seconds: float
    kubeadm_seconds: float
    changed: dict[str, int]
    ok: dict[str, int]


class EventTracker:
    """Turns ansible-runner events into per-phase progress, counts, failures and kubeadm time."""

    def __init__(self, progress: Progress, phase_of_play: dict[str, str]) -> None:
        self.progress = progress
        self.phase_of_play = phase_of_play
        self.phase = ""
        self.last_phase = ""
        self.failures: list[str] = []
        self._entered = 0.0
        self._seconds: dict[str, float] = {}
        self._kubeadm: dict[str, dict[str, float]] = {}
        self._ok: dict[str, dict[str, int]] = {}
        self._changed: dict[str, dict[str, int]] = {}

    def handle(self, event: dict[str, Any]) -> bool:
        data = event.get("event_data", {})
        kind = event.get("event", "")
        handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "playbook_on_play_start": self._play_start,
            "playbook_on_task_start": self._task_start,
            "runner_on_ok": self._result,
            "runner_on_failed": self._failed,
            "runner_on_unreachable": self._failed,
        }
        if kind in handlers:
            handlers[kind](data)
        return True

    def finish(self) -> None:
        self._enter("")

    def results(self, phases: list[str]) -> list[PhaseResult]:
        return [
            PhaseResult(
                phase,
                round(self._seconds.get(phase, 0.0), 1),
                round(sum(self._kubeadm.get(phase, {}).values()), 1),
                self._changed.get(phase, {}),
                self._ok.get(phase, {}),
            )
            for phase in phases
        ]

    def _enter(self, phase: str) -> None:
        if phase == self.phase:
            return
        now = time.monotonic()
        if self.phase:
            took = now - self._entered
            self._seconds[self.phase] = self._seconds.get(self.phase, 0.0) + took
            self.progress.say(self.phase, f"done in {took:.1f}s")
            self.last_phase = self.phase
        self.phase, self._entered = phase, now

    def _play_start(self, data: dict[str, Any]) -> None:
        play = data.get("play", "")
        self._enter(self.phase_of_play.get(play, self.phase or "ansible"))
        self.progress.say(self.phase, play)

    def _task_start(self, data: dict[str, Any]) -> None:
        self.progress.say(self.phase, data.get("task", ""))

    def _result(self, data: dict[str, Any]) -> None:
        task, host = data.get("task", ""), data.get("host", "")
        ok = self._ok.setdefault(self.phase, {})
        ok[host] = ok.get(host, 0) + 1
        changed = self._changed.setdefault(self.phase, {})
        changed[host] = changed.get(host, 0)
        if task in KUBEADM_TASKS:
            # Hosts joining in parallel overlap: count the longest of each task.
            kubeadm = self._kubeadm.setdefault(self.phase, {})
            kubeadm[task] = max(kubeadm.get(task, 0.0), float(data.get("duration") or 0.0))
        if data.get("res", {}).get("changed"):
            changed[host] += 1
            self.progress.say(self.phase, f"changed: {task}", host)

    def _failed(self, data: dict[str, Any]) -> None:
        if data.get("ignore_errors"):
            return
        result = data.get("res", {})
        message = result.get("msg") or result.get("stderr") or "failed"
        line = f"  {data.get('host', '?')}: {data.get('task', '')}: {str(message).strip()}"
        self.failures.append(line)
        self.progress.say(self.phase, f"FAILED: {data.get('task', '')}", data.get("host", ""))
