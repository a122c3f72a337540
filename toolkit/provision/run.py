"""Run the cluster playbooks phase by phase, with progress, per-host stats and timings.

Idempotence is read from Ansible's own per-host stats: a second run of a converged lab
reports changed=0 on every host.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from toolkit import ansible
from toolkit.bundle import parts, store
from toolkit.bundle.build import base_is_current, build
from toolkit.errors import BundleError, HostError, K8slabError
from toolkit.hosts.lifecycle import reach_hosts, record_up_timings
from toolkit.kube import spread_coredns, wait_for_ready_nodes, wait_for_system_workloads
from toolkit.lab import render
from toolkit.lab.spec import Lab
from toolkit.lab.state import LabState
from toolkit.paths import PLAYBOOKS_DIR
from toolkit.progress import SILENT, Progress
from toolkit.provision.events import EventTracker
from toolkit.provision.report import ProvisionReport


class ProvisionError(K8slabError):
    """A playbook failed on some hosts."""


@dataclass(frozen=True)
class Phase:
    name: str
    playbook: str


PHASES = (
    Phase("prereqs", "prereqs.yml"),
    Phase("runtime", "runtime.yml"),
    Phase("etcd", "etcd.yml"),
    Phase("loadbalancer", "loadbalancer.yml"),
    Phase("control-plane", "control_plane.yml"),
    Phase("workers", "workers.yml"),
    Phase("network", "network.yml"),
    # LoadBalancer Services (MetalLB), for a lab whose spec declares load_balancer.pool.
    Phase("metallb", "metallb.yml"),
    Phase("addons", "addons.yml"),
)
PHASE_NAMES = tuple(phase.name for phase in PHASES)
PREFLIGHT = Phase("preflight", "preflight.yml")
RESET = Phase("reset", "reset.yml")


def select_phases(names: list[str] | None) -> list[Phase]:
    if not names:
        return list(PHASES)
    unknown = [name for name in names if name not in PHASE_NAMES]
    if unknown:
        raise K8slabError(
            f"unknown phase {', '.join(unknown)}; phases are: {', '.join(PHASE_NAMES)}"
        )
    return [phase for phase in PHASES if phase.name in names]


def check_bundle(lab: Lab) -> None:
    """Refuse a lab whose bundle is missing, lacks an optional part the lab needs
    (Lab.needed_parts: docker nodes cri-dockerd, a load_balancer.pool metallb, ...) or was
    built from another recipe than today's (a stale part would install yesterday's
    configuration), naming the spec field that asks for a part and the one command that
    builds what is missing; `up` asks before any host exists."""
    version = lab.kubernetes_version
    command = f"k8slab bundle build --kubernetes {version}" + "".join(
        f" --with {part}" for part in lab.needed_parts
    )
    if not store.is_complete(version):
        raise BundleError(f"no complete bundle for Kubernetes {version}; build it with `{command}`")
    built = parts.present(version)
    problems = [] if base_is_current(version) else [f"the bundle of {version} has an older recipe"]
    problems += [
        f"{why}, which needs the bundle's {part} part"
        for part, why in lab.needed_parts.items()
        if part not in built
    ]
    needed_and_built = [part for part in lab.needed_parts if part in built]
    problems += [
        f"its {part} part has an older recipe"
        for part in parts.out_of_date(version, needed_and_built)
    ]
    if problems:
        raise BundleError(f"{lab.source}: {'; '.join(problems)}: build it with `{command}`")


def check_ready_to_provision(lab: Lab, state: LabState, progress: Progress = SILENT) -> None:
    """Everything a run needs, checked before any host is changed."""
    if not state.inventory.exists():
        raise HostError(f"lab {lab.name} has no hosts yet; run `k8slab up {lab.name}`")
    check_bundle(lab)
    reach_hosts(lab, state, progress)
    refresh_inventory(lab, state)
    tracker = EventTracker(progress, _phase_of_plays([PREFLIGHT]))
    run = ansible.run_runner(
        state,
        "preflight",
        playbook=str(PLAYBOOKS_DIR / PREFLIGHT.playbook),
        event_handler=tracker.handle,
    )
    tracker.finish()
    stats = ansible.RunStats.from_runner(run.status, run.stats)
    if stats.unreachable:
        raise HostError(
            f"not reachable over SSH: {', '.join(sorted(stats.unreachable))}; nothing was "
            f"changed. See `k8slab status {lab.name}`"
        )
    if stats.failures or run.status != "successful":
        details = "\n".join(tracker.failures) or f"ansible-runner status {run.status}"
        raise HostError(f"lab {lab.name} cannot be provisioned:\n{details}")


def refresh_inventory(lab: Lab, state: LabState) -> None:
    """Render the lab's inventory again before a run: the roles' inputs follow the toolkit
    (toolkit/constants.py), so a lab brought up by an older toolkit gets the variables
    this one's playbooks read. The spec and state it is made from are unchanged."""
    state.write_text(state.inventory, render.inventory_yaml(lab, state))


def provision(
    lab: Lab, phase_names: list[str] | None = None, progress: Progress = SILENT
) -> ProvisionReport:
    """Run the chosen phases (all by default) in one ansible-playbook run.

    One run rather than one per phase: Ansible starts, reads the inventory and opens its
    SSH connections once, which is much of what a run that changes nothing costs.
    """
    state = LabState.of(lab.name)
    phases = select_phases(phase_names)
    check_ready_to_provision(lab, state, progress)
    tracker = EventTracker(progress, _phase_of_plays(phases))
    started = time.monotonic()
    stats = _run_playbook(
        state,
        "provision",
        _write_run_playbook(state, phases),
        {},
        tracker,
        failed_in=lambda: f"phase {tracker.last_phase or phases[0].name}",
        fix=f"; fix it and run `k8slab provision {lab.name}` again",
    )
    changed = {host: stats.changed.get(host, 0) for host in {*stats.ok, *stats.changed}}
    report = ProvisionReport(
        lab.name,
        tracker.results([phase.name for phase in phases]),
        time.monotonic() - started,
        changed,
    )
    state.write_json(state.root / "timings" / "provision.json", report.to_dict())
    return report


def _run_playbook(
    state: LabState,
    name: str,
    playbook: Path,
    extravars: dict[str, Any],
    tracker: EventTracker,
    failed_in: Callable[[], str],
    fix: str = "",
    tags: tuple[str, ...] = (),
    limit: str = "",
) -> ansible.RunStats:
    """Run one playbook with the tracker's progress; a ProvisionError if any host failed."""
    run = ansible.run_runner(
        state,
        name,
        playbook=str(playbook),
        extravars={"k8slab_state_dir": str(state.root), **extravars},
        event_handler=tracker.handle,
        **({"tags": ",".join(tags)} if tags else {}),
        limit=limit or None,
    )
    tracker.finish()
    stats = ansible.RunStats.from_runner(run.status, run.stats)
    if stats.unreachable or stats.failures or run.status != "successful":
        raise ProvisionError(
            f"{failed_in()} {_failure_text(run.status, stats, tracker)}\n"
            f"(log: {state.root / 'ansible' / name}){fix}"
        )
    return stats


def _failure_text(status: str, stats: ansible.RunStats, tracker: EventTracker) -> str:
    """'failed on HOSTS:' and each failed task's message, for a run that failed."""
    failed = sorted({*stats.failures, *stats.unreachable})
    details = "\n".join(tracker.failures) or f"ansible-runner status {status}"
    return f"failed on {', '.join(failed) or 'the controller'}:\n{details}"


def _phase_of_plays(phases: list[Phase]) -> dict[str, str]:
    """Each play's name to the phase whose playbook holds it (progress is per phase)."""
    owner: dict[str, str] = {}
    for phase in phases:
        plays = yaml.safe_load((PLAYBOOKS_DIR / phase.playbook).read_text(encoding="utf-8"))
        for play in plays:
            owner[play["name"]] = phase.name
    return owner


def _write_run_playbook(state: LabState, phases: list[Phase]) -> Path:
    path = state.root / "ansible" / "provision.yml"
    imports = [
        {"name": phase.name, "ansible.builtin.import_playbook": str(PLAYBOOKS_DIR / phase.playbook)}
        for phase in phases
    ]
    state.write_text(path, yaml.safe_dump(imports, sort_keys=False))
    return path


def reset(lab: Lab, progress: Progress = SILENT) -> ansible.RunStats:
    """Wipe the cluster from every node (playbooks/reset.yml), leaving hosts to provision again."""
    state = LabState.of(lab.name)
    if not state.inventory.exists():
        raise HostError(f"lab {lab.name} has no hosts; there is nothing to reset")
    reach_hosts(lab, state, progress)
    refresh_inventory(lab, state)
    tracker = EventTracker(progress, _phase_of_plays([RESET]))
    return _run_playbook(
        state,
        "reset",
        PLAYBOOKS_DIR / RESET.playbook,
        {"reset_confirmed": True},
        tracker,
        failed_in=lambda: "reset",
    )


def run_playbook(
    lab: Lab,
    phase: Phase,
    extravars: dict[str, Any],
    *,
    tags: tuple[str, ...] = (),
    limit: str = "",
    progress: Progress = SILENT,
) -> ansible.RunStats:
    """One playbook besides a whole provisioning run (the conformance part's images, an
    upgrade's steps), with their progress and failure report; ``tags``, ``limit`` if given."""
    state = LabState.of(lab.name)
    refresh_inventory(lab, state)
    tracker = EventTracker(progress, _phase_of_plays([phase]))
    return _run_playbook(
        state,
        phase.name,
        PLAYBOOKS_DIR / phase.playbook,
        extravars,
        tracker,
        failed_in=lambda: phase.name,
        tags=tags,
        limit=limit,
    )


def up_cluster(lab: Lab, progress: Progress = SILENT) -> ProvisionReport:
    """From running hosts to a cluster whose nodes are all Ready."""
    with progress.phase("bundle", f"Kubernetes {lab.kubernetes_version}"):
        build(lab.kubernetes_version, progress=progress)
    report = provision_cluster(lab, progress=progress)
    record_up_timings(lab, progress, kubeadm_s=report.kubeadm_seconds)
    return report


def provision_cluster(
    lab: Lab, phase_names: list[str] | None = None, progress: Progress = SILENT
) -> ProvisionReport:
    """`k8slab provision`: the phases, and after a whole run the cluster settled as `up`
    leaves it (nodes Ready, system Pods rolled out, CoreDNS on two nodes), since a reset
    and provision schedule CoreDNS before any worker has joined."""
    report = provision(lab, phase_names, progress)
    if not phase_names:
        with progress.phase("ready", "waiting for every node to be Ready"):
            wait_for_ready_nodes(lab)
        with progress.phase("system", "waiting for CoreDNS, kube-proxy and the CNI's Pods"):
            wait_for_system_workloads(lab)
            spread_coredns(lab)
    return report
