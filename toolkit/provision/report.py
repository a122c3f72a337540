"""What a provisioning run did: each phase, its time, and Ansible's own per-host stats."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from toolkit.provision.events import PhaseResult


@dataclass
class ProvisionReport:
    lab: str
    phases: list[PhaseResult] = field(default_factory=list)
    seconds: float = 0.0
    # Ansible's own per-host stats of the run (its PLAY RECAP), not a count of events.
    changed: dict[str, int] = field(default_factory=dict)

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
