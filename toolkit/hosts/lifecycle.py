"""Bringing a lab's hosts up, reporting on them and removing every trace of them."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import paramiko

from toolkit.bundle.store import bundles_root
from toolkit.errors import HostError
from toolkit.hosts import engine, facts
from toolkit.hosts.image import build_node_image
from toolkit.hosts.preflight import run_preflight
from toolkit.hosts.ssh import reachable, wait_until_ready
from toolkit.hosts.vagrant import Vagrant
from toolkit.lab import render
from toolkit.lab.model import EXISTING
from toolkit.lab.render import ssh_target
from toolkit.lab.spec import Lab, Node
from toolkit.lab.state import LabState
from toolkit.progress import SILENT, Progress

__all__ = ["ssh_target"]


def write_access_files(lab: Lab, state: LabState) -> None:
    """The Ansible inventory and ssh config through which everything else reaches the hosts."""
    state.write_text(state.inventory, render.inventory_yaml(lab, state))
    state.write_text(state.ssh_config, render.ssh_config(lab, state))


def up_hosts(lab: Lab, progress: Progress = SILENT) -> dict[str, float]:
    """Create the lab's hosts with Vagrant and wait until each answers SSH; return timings.
    Hosts k8slab did not make are checked instead (the preflight), and refused with every
    problem found before anything changes on them."""
    if lab.existing:
        return _check_existing_hosts(lab, progress)
    state = LabState.of(lab.name)
    _vagrant_up(lab, state, list(lab.nodes), progress)
    record_up_timings(lab, progress)
    return dict(progress.durations)


def up_nodes(lab: Lab, nodes: list[Node], progress: Progress = SILENT) -> None:
    """Create only ``nodes`` of ``lab`` (its other hosts run already, and are left as they
    are), wait until each answers SSH and record its host key (a key recorded before under
    its address or name belonged to an earlier host, and is forgotten first)."""
    state = LabState.of(lab.name)
    for node in nodes:
        forget_host_key(state, node)
    _vagrant_up(lab, state, nodes, progress)
    reach_hosts(lab, state, progress, nodes)


def _vagrant_up(lab: Lab, state: LabState, nodes: list[Node], progress: Progress) -> None:
    """Render the machine list and access files of ``lab``, then ``vagrant up`` ``nodes``."""
    image_tag = None
    run_args: list[str] = []
    if lab.provider == "docker":
        engine.check_engine()
        engine.refuse_foreign_objects(lab, state.root)
        with progress.phase("image"):
            image_tag = build_node_image(progress).tag
        privileged = engine.privileged_allowed(image_tag)
        progress.say(
            "engine",
            "--privileged allowed"
            if privileged
            else "--privileged refused by this engine; using explicit capabilities instead",
        )
        run_args = engine.host_run_args(privileged)
    state.ensure_key_pair()
    state.write_json(state.machines, render.machines(lab, state, image_tag, run_args))
    write_access_files(lab, state)
    every = len(nodes) == len(lab.nodes)
    names = () if every else tuple(node.name for node in nodes)
    with progress.phase("hosts", f"vagrant up: {len(nodes)} machines ({lab.provider})"):
        if lab.provider == "docker":
            bundles_root().mkdir(parents=True, exist_ok=True)
            with engine.networks_lock(progress):
                engine.ensure_network(lab, state.root)
                engine.ensure_volumes(lab, state.root)
                Vagrant(state).up(lab.provider, progress, machines=names)
        else:
            Vagrant(state).up(lab.provider, progress, machines=names)
    with progress.phase("ssh", "waiting for every host to answer SSH with the lab key"):
        _wait_for_all(nodes, state, progress)


def destroy_node(lab: Lab, node: Node, remaining: Lab, progress: Progress = SILENT) -> list[str]:
    """Destroy one host of ``lab`` (Vagrant, then its /var volume), forget its host key,
    and render the machine list and access files of ``remaining``; what was removed."""
    state = LabState.of(lab.name)
    machines = json.loads(state.machines.read_text(encoding="utf-8"))
    # Vagrant destroys only a machine its list still names (a run cut short after the
    # list was rendered again has destroyed it already).
    listed = (node.name,) if any(m["name"] == node.name for m in machines["machines"]) else ()
    removed: list[str] = []
    with progress.phase("destroy", f"vagrant destroy {node.name}"):
        if lab.provider == "docker":
            with engine.networks_lock(progress):
                if listed:
                    Vagrant(state).destroy(lab.provider, machines=listed)
                removed += engine.remove_node_volume(lab, node, state.root)
        elif listed:
            Vagrant(state).destroy(lab.provider, machines=listed)
    forget_host_key(state, node)
    machines["machines"] = [m for m in machines["machines"] if m["name"] != node.name]
    machines["hosts"] = {n.name: str(n.address) for n in remaining.nodes}
    state.write_json(state.machines, machines)
    write_access_files(remaining, state)
    return [f"host {node.name}" if listed else f"host {node.name} (gone already)", *removed]


def forget_host_key(state: LabState, node: Node) -> None:
    """Drop the node's lines from the lab's known_hosts: a host made again under its name
    or address has a key of its own, which would otherwise be refused as changed."""
    if not state.known_hosts.exists():
        return
    lines = state.known_hosts.read_text(encoding="utf-8").splitlines(keepends=True)
    names = {str(node.address), node.name, f"[{node.address}]:22"}
    kept = [line for line in lines if line.split(" ", 1)[0] not in names]
    if kept != lines:
        state.write_text(state.known_hosts, "".join(kept))


def _check_existing_hosts(lab: Lab, progress: Progress) -> dict[str, float]:
    state = LabState.of(lab.name)
    with progress.phase("preflight", f"checking {len(lab.nodes)} existing hosts"):
        result = run_preflight(lab, progress)
        for check in result.hosts:
            if check.facts is not None:
                progress.say("preflight", check.summary, check.node.name)
        result.raise_if_failed()
    facts.record_kinds(state, {c.node.name: c.facts.container for c in result.hosts if c.facts})
    write_access_files(lab, state)
    record_up_timings(lab, progress)
    return dict(progress.durations)


def record_up_timings(lab: Lab, progress: Progress, **extra: float) -> None:
    """Write ``timings/up.json``: every phase of ``k8slab up`` so far, and the total."""
    state = LabState.of(lab.name)
    state.write_json(
        state.root / "timings" / "up.json",
        {
            "lab": lab.name,
            "recorded_at": time.time(),
            "phases_s": progress.durations,
            "total_s": progress.elapsed(),
            **extra,
        },
    )


def _wait_for_all(nodes: list[Node], state: LabState, progress: Progress) -> None:
    def wait(node: Node) -> None:
        waited = wait_until_ready(ssh_target(state, node))
        progress.say("ssh", f"ready after {waited:.1f}s", node.name)

    with ThreadPoolExecutor(max_workers=min(8, len(nodes))) as pool:
        for future in [pool.submit(wait, node) for node in nodes]:
            future.result()


def reach_hosts(
    lab: Lab, state: LabState, progress: Progress = SILENT, nodes: list[Node] | None = None
) -> None:
    """Connect once to every host (or to ``nodes``) before Ansible, which only checks keys,
    connects: its key goes into the lab's known_hosts on first contact (shown; a changed
    one is refused), and whether it is a container into ``hosts.json``, which the
    inventory's container branches follow."""
    nodes = list(lab.nodes) if nodes is None else nodes
    unreachable: list[str] = []
    kinds: dict[str, str] = {}

    def touch(node: Node) -> None:
        def trusted(name: str, kind: str, fingerprint: str) -> None:
            progress.say("ssh", f"host key trusted on first use: {kind} {fingerprint}", node.name)

        try:
            kinds[node.name] = facts.read_container(ssh_target(state, node), 15, trusted)
        except (TimeoutError, OSError, paramiko.SSHException):
            unreachable.append(node.name)

    with ThreadPoolExecutor(max_workers=min(8, len(nodes))) as pool:
        for future in [pool.submit(touch, node) for node in nodes]:
            future.result()
    if unreachable:
        raise HostError(
            f"not reachable over SSH: {', '.join(sorted(unreachable))}; nothing was changed. "
            f"See `k8slab status {lab.name}`"
        )
    names = {node.name for node in lab.nodes}
    known = {name: kind for name, kind in render.recorded_kinds(state).items() if name in names}
    facts.record_kinds(state, {**known, **kinds})


@dataclass(frozen=True)
class NodeStatus:
    name: str
    role: str
    address: str
    state: str
    reachable: bool


def lab_status(lab: Lab) -> list[NodeStatus]:
    """Each node's state (Vagrant's; ``existing`` for hosts k8slab did not make) and
    whether it answers SSH."""
    state = LabState.of(lab.name)
    if lab.existing:
        state.ensure_root()  # where a host's key is recorded on first contact
        states = {node.name: EXISTING for node in lab.nodes}
    else:
        states = Vagrant(state).status(lab.provider)

    def one(node: Node) -> NodeStatus:
        machine_state = states.get(node.name, "not_created")
        ok = machine_state in ("running", EXISTING) and reachable(ssh_target(state, node))
        return NodeStatus(
            node.name, render.ROLE_NAMES[node.role], str(node.address), machine_state, ok
        )

    with ThreadPoolExecutor(max_workers=min(8, len(lab.nodes))) as pool:
        return list(pool.map(one, lab.nodes))


def status_rows(statuses: list[NodeStatus]) -> list[dict[str, object]]:
    return [asdict(status) for status in statuses]


@dataclass
class Destroyed:
    """What ``destroy`` removed, and the backups folder it kept (None: nothing kept)."""

    removed: list[str] = field(default_factory=list)
    kept_backups: Path | None = None
    # Same-named objects another state directory owns: never this lab's to remove.
    left: list[str] = field(default_factory=list)


def destroy_lab(
    lab_name: str, provider: str, progress: Progress = SILENT, purge: bool = False
) -> Destroyed:
    """Remove the lab's hosts, network, volumes and state; safe to repeat.

    The lab's etcd backups stay in ``<state>/backups`` unless ``purge``: they are what a
    user keeps a lab's state for. The state directory is checked before anything goes.
    Existing hosts are never touched here: only the state is forgotten (the caller resets
    their cluster first).
    """
    state = LabState.of(lab_name)
    state.checked_root()
    result = Destroyed()
    with progress.phase("destroy", f"lab {lab_name}"):
        if provider == EXISTING:
            pass
        elif provider == "docker":
            with engine.networks_lock(progress):
                Vagrant(state).destroy(provider)
                result.removed += engine.remove_lab_objects(lab_name, state.root)
                result.left += engine.foreign_objects(lab_name, state.root)
        else:
            Vagrant(state).destroy(provider)
        if state.exists():
            backups_only = state.only_backups()
            result.kept_backups = state.remove(keep_backups=not purge)
            if result.kept_backups is None:
                result.removed.append(f"state {state.root}")
            elif not backups_only:
                result.removed.append(f"state {state.root} (all but backups/)")
    return result
