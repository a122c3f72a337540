"""Run the cluster playbooks phase by phase, with progress, per-host stats and timings.

Idempotence is read from Ansible's own per-host stats: a second run of a converged lab
reports changed=0 on every host.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from toolkit import ansible
from toolkit.bundle import store
from toolkit.bundle.build import build
from toolkit.errors import BundleError, HostError, K8slabError
from toolkit.hosts.lifecycle import record_up_timings
from toolkit.lab.spec import Lab
from toolkit.lab.state import LabState
from toolkit.paths import PLAYBOOKS_DIR
from toolkit.progress import SILENT, Progress
from toolkit.provision.cluster import wait_for_ready_nodes


class ProvisionError(K8slabError):
    """A playbook failed on some hosts."""


@dataclass(frozen=True)
class Phase:
    name: str
    playbook: str


PHASES = (
    Phase("prereqs", "prereqs.yml"),
    Phase("runtime", "runtime.yml"),
    Phase("loadbalancer", "loadbalancer.yml"),
    Phase("control-plane", "control_plane.yml"),
    Phase("workers", "workers.yml"),
    Phase("network", "network.yml"),
)
PHASE_NAMES = tuple(phase.name for phase in PHASES)


@dataclass
class PhaseResult:
    name: str
    seconds: float
    kubeadm_seconds: float
    changed: dict[str, int]
    ok: dict[str, int]


@dataclass
class ProvisionReport:
    lab: str
    phases: list[PhaseResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def changed(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for phase in self.phases:
            for host, count in phase.changed.items():
                total[host] = total.get(host, 0) + count
        return total

    @property
    def hosts(self) -> set[str]:
        """Every host some task ran on."""
        return {host for phase in self.phases for host in phase.ok}

    @property
    def idempotent(self) -> bool:
        """True when no host changed anything: the lab had already converged."""
        return not any(self.changed.values())

    @property
    def kubeadm_seconds(self) -> float:
        return sum(phase.kubeadm_seconds for phase in self.phases)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lab": self.lab,
            "seconds": round(self.seconds, 1),
            "kubeadm_seconds": round(self.kubeadm_seconds, 1),
            "changed_per_host": self.changed,
            "idempotent": self.idempotent,
            "phases": [asdict(phase) for phase in self.phases],
        }


def select_phases(names: list[str] | None) -> list[Phase]:
    if not names:
        return list(PHASES)
    unknown = [name for name in names if name not in PHASE_NAMES]
    if unknown:
        raise K8slabError(
            f"unknown phase {', '.join(unknown)}; phases are: {', '.join(PHASE_NAMES)}"
        )
    return [phase for phase in PHASES if phase.name in names]


def check_ready_to_provision(lab: Lab, state: LabState) -> None:
    """Everything a run needs, checked before any host is changed."""
    if not state.inventory.exists():
        raise HostError(f"lab {lab.name} has no hosts yet; run `k8slab up {lab.name}`")
    if not store.is_complete(lab.kubernetes_version):
        raise BundleError(
            f"no complete bundle for Kubernetes {lab.kubernetes_version}; build it with "
            f"`k8slab bundle build --kubernetes {lab.kubernetes_version}`"
        )
    stats = ansible.run_module(state, "ansible.builtin.ping", name="preflight-ping")
    if stats.unreachable or stats.failures:
        down = sorted({*stats.unreachable, *stats.failures})
        raise HostError(
            f"not reachable over SSH: {', '.join(down)}; nothing was changed. "
            f"See `k8slab status {lab.name}`"
        )


def provision(
    lab: Lab, phase_names: list[str] | None = None, progress: Progress = SILENT
) -> ProvisionReport:
    state = LabState.of(lab.name)
    phases = select_phases(phase_names)
    check_ready_to_provision(lab, state)
    report = ProvisionReport(lab.name)
    started = time.monotonic()
    for phase in phases:
        report.phases.append(_run_phase(lab, state, phase, progress))
    report.seconds = time.monotonic() - started
    state.write_json(state.root / "timings" / "provision.json", report.to_dict())
    return report


def _run_phase(lab: Lab, state: LabState, phase: Phase, progress: Progress) -> PhaseResult:
    tracker = _EventTracker(phase.name, progress)
    begun = time.monotonic()
    with progress.phase(phase.name, phase.playbook):
        run = ansible.run_runner(
            state,
            f"provision-{phase.name}",
            playbook=str(PLAYBOOKS_DIR / phase.playbook),
            extravars={"k8slab_state_dir": str(state.root)},
            event_handler=tracker.handle,
        )
    stats = ansible.RunStats.from_runner(run.status, run.stats)
    if stats.unreachable or stats.failures or run.status != "successful":
        failed = sorted({*stats.failures, *stats.unreachable})
        details = "\n".join(tracker.failures) or f"ansible-runner status {run.status}"
        raise ProvisionError(
            f"phase {phase.name} failed on {', '.join(failed) or 'the controller'}:\n{details}\n"
            f"(log: {state.root / 'ansible' / ('provision-' + phase.name)}); "
            f"fix it and run `k8slab provision {lab.name}` again"
        )
    return PhaseResult(
        phase.name,
        round(time.monotonic() - begun, 1),
        round(tracker.kubeadm_seconds(), 1),
        stats.changed,
        stats.ok,
    )


class _EventTracker:
    """Turns ansible-runner events into progress lines, failures and kubeadm's time."""

    def __init__(self, phase: str, progress: Progress) -> None:
        self.phase = phase
        self.progress = progress
        self.failures: list[str] = []
        self.kubeadm_task_seconds: dict[str, float] = {}

    def handle(self, event: dict[str, Any]) -> bool:
        data = event.get("event_data", {})
        kind = event.get("event", "")
        handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "playbook_on_task_start": self._task_start,
            "runner_on_ok": self._result,
            "runner_on_failed": self._failed,
            "runner_on_unreachable": self._failed,
        }
        if kind in handlers:
            handlers[kind](data)
        return True

    def _task_start(self, data: dict[str, Any]) -> None:
        self.progress.say(self.phase, data.get("task", ""))

    def _result(self, data: dict[str, Any]) -> None:
        task = data.get("task", "")
        if "kubeadm init" in task or "kubeadm join" in task:
            duration = float(data.get("duration") or 0.0)
            # Hosts joining in parallel overlap: count the longest of each task.
            self.kubeadm_task_seconds[task] = max(self.kubeadm_task_seconds.get(task, 0), duration)
        if data.get("res", {}).get("changed"):
            self.progress.say(self.phase, f"changed: {task}", data.get("host", ""))

    def _failed(self, data: dict[str, Any]) -> None:
        if data.get("ignore_errors"):
            return
        result = data.get("res", {})
        message = result.get("msg") or result.get("stderr") or "failed"
        line = f"  {data.get('host', '?')}: {data.get('task', '')}: {str(message).strip()}"
        self.failures.append(line)
        self.progress.say(self.phase, f"FAILED: {data.get('task', '')}", data.get("host", ""))

    def kubeadm_seconds(self) -> float:
        return sum(self.kubeadm_task_seconds.values())


def up_cluster(lab: Lab, progress: Progress = SILENT) -> ProvisionReport:
    """From running hosts to a cluster whose nodes are all Ready."""
    with progress.phase("bundle", f"Kubernetes {lab.kubernetes_version}"):
        build(lab.kubernetes_version, progress=progress)
    report = provision(lab, progress=progress)
    with progress.phase("ready", "waiting for every node to be Ready"):
        wait_for_ready_nodes(lab)
    record_up_timings(lab, progress, kubeadm_s=report.kubeadm_seconds)
    return report
