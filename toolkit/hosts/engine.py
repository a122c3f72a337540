"""The docker engine that hosts a lab's containers: probes, networks, volumes, clean-up.

Vagrant's docker provider creates and removes the containers; the toolkit owns what
Vagrant does not: the lab's network with its subnet, the volumes that hold each node's
/var (nested containerd cannot use overlay on overlay), and the run flags the engine
actually allows.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit import paths
from toolkit.errors import EngineError
from toolkit.lab.spec import Lab, Node
from toolkit.progress import SILENT, Progress
from toolkit.shell import run

LAB_LABEL = "k8slab.lab"
# The state directory that owns an object: two state roots (a test's temporary one, another
# user's) may hold labs of the same name, and each may touch only its own objects.
STATE_LABEL = "k8slab.state"
INSTALL_HINT = (
    "install and start it: `apt-get install docker.io` then `systemctl start docker` "
    "(or `dockerd &` where systemd is not PID 1)"
)

# What a systemd host container needs besides privileges (see SUBSTRATE.md, kind's node).
BASE_RUN_ARGS = (
    "--cgroupns=host",
    "--volume=/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs=/run",
    "--tmpfs=/tmp",
    "--volume=/lib/modules:/lib/modules:ro",
    "--stop-signal=SIGRTMIN+3",
)
PRIVILEGED_ARGS = ("--privileged",)
# For an engine whose bounding set lacks CAP_SYS_RESOURCE, --privileged fails; this works.
UNPRIVILEGED_ARGS = (
    "--cap-add=ALL",
    "--cap-drop=SYS_RESOURCE",
    "--security-opt=seccomp=unconfined",
    "--security-opt=apparmor=unconfined",
    # The kubelet and kube-proxy write sysctls, as they may under --privileged.
    "--security-opt=systempaths=unconfined",
    # Privileged pods (kube-proxy, flannel) need a node cgroup that allows every device.
    "--device-cgroup-rule=a *:* rwm",
    "--device=/dev/kmsg",
)


def check_engine() -> None:
    """Fail with the fix when no docker engine answers."""
    result = run(["docker", "info", "--format", "{{.ServerVersion}}"], check=False, timeout=30)
    if result.returncode != 0:
        raise EngineError(f"no docker engine answers `docker info`; {INSTALL_HINT}")


def privileged_allowed(image: str) -> bool:
    """Whether this engine can run ``--privileged`` containers (probed, never assumed)."""
    result = run(
        ["docker", "run", "--rm", "--privileged", "--network=none", image, "true"],
        check=False,
        timeout=60,
    )
    return result.returncode == 0


def host_run_args(privileged: bool) -> list[str]:
    return [*(PRIVILEGED_ARGS if privileged else UNPRIVILEGED_ARGS), *BASE_RUN_ARGS]


def owner_labels(lab_name: str, state_root: Path) -> list[str]:
    """The labels every engine object of a lab carries: its name and its state directory."""
    return [f"--label={LAB_LABEL}={lab_name}", f"--label={STATE_LABEL}={_owner(state_root)}"]


def _owner(state_root: Path) -> str:
    # Resolved, so that a relative or symlinked $K8SLAB_STATE_DIR names one owner.
    return str(state_root.resolve())


@dataclass(frozen=True)
class DockerNames:
    """The engine objects of one lab, all carrying :func:`owner_labels`."""

    lab: str

    @property
    def network(self) -> str:
        return f"k8slab-{self.lab}"

    def container(self, node: Node) -> str:
        return f"k8slab-{self.lab}-{node.name}"

    def var_volume(self, node: Node) -> str:
        return f"k8slab-{self.lab}-{node.name}-var"


@contextmanager
def networks_lock(progress: Progress = SILENT) -> Iterator[None]:
    """Hold the machine-wide lock of whoever creates, lists or removes docker networks.

    Vagrant's docker provider inspects every network it lists while it configures a
    machine; a network that another lab removes in between fails the whole `vagrant up`
    with "No such object". The lock lives in the user's cache, which every lab of a user
    shares whatever its state directory, and no longer in /tmp, where any local user
    could hold it or put a symlink in its place; labs of two users with different caches
    on one engine are not serialised by it.
    """
    path = paths.cache_lock_file("docker-networks.lock")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with path.open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress.say("engine", f"waiting for another lab's docker changes ({path})")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_network(lab: Lab, state_root: Path) -> str:
    """Create the lab's network with the spec's subnet, or check the one that exists."""
    name = DockerNames(lab.name).network
    subnet, gateway = str(lab.network.subnet), str(lab.network.gateway)
    existing = _inspect("network", name)
    if existing is not None:
        configs = (existing.get("IPAM") or {}).get("Config") or []
        if not any(c.get("Subnet") == subnet for c in configs):
            found = ", ".join(c.get("Subnet", "?") for c in configs) or "none"
            raise EngineError(
                f"docker network {name} exists with subnet {found}, not {subnet}; "
                f"run `k8slab destroy {lab.name}` first"
            )
        return name
    _refuse_overlap(lab)
    run(
        [
            "docker",
            "network",
            "create",
            "--driver=bridge",
            f"--subnet={subnet}",
            f"--gateway={gateway}",
            *owner_labels(lab.name, state_root),
            name,
        ]
    )
    return name


def _refuse_overlap(lab: Lab) -> None:
    listed = run(["docker", "network", "ls", "--quiet"]).stdout.split()
    if not listed:
        return
    problems = overlap_problems(
        lab, json.loads(run(["docker", "network", "inspect", *listed]).stdout)
    )
    if problems:
        count = len(problems)
        head = (
            f"{lab.source}: {count} problem{'s' if count > 1 else ''} with this engine's networks"
        )
        raise EngineError("\n".join([head, *("  " + line for line in problems)]))


def overlap_problems(lab: Lab, networks: list[dict[str, Any]]) -> list[str]:
    """What in the spec collides with the engine's networks (``docker network inspect``).

    The lab network may share no address with any of them. Vagrant's docker provider also
    attaches every node to the engine's default bridge, so the Pod and Service ranges must
    stay clear of that one too: a node would route them to its own bridge interface.
    """
    problems: list[str] = []
    ranges = {
        "subnet": lab.network.subnet,
        "pod_cidr": lab.network.pod_cidr,
        "service_cidr": lab.network.service_cidr,
    }
    for network in networks:
        options = network.get("Options") or {}
        default = options.get("com.docker.network.bridge.default_bridge") == "true"
        name = network.get("Name", "?")
        what = (
            f"docker's default bridge {name}, which every node also joins"
            if default
            else f"docker network {name}"
        )
        fix = "choose another range" if default else "choose another range or remove that network"
        for config in (network.get("IPAM") or {}).get("Config") or []:
            other = config.get("Subnet", "")
            if not other or ":" in other:
                continue
            taken = ipaddress.ip_network(other, strict=False)
            for key, mine in ranges.items():
                if (key == "subnet" or default) and mine.overlaps(taken):
                    problems.append(
                        f"{lab.source}: network.{key}: {mine} overlaps {what} ({other}); {fix}"
                    )
    return problems


def ensure_volumes(lab: Lab, state_root: Path) -> None:
    names = DockerNames(lab.name)
    for node in lab.nodes:
        volume = names.var_volume(node)
        if _inspect("volume", volume) is None:
            run(["docker", "volume", "create", *owner_labels(lab.name, state_root), volume])


def remove_node_volume(lab: Lab, node: Node, state_root: Path) -> list[str]:
    """Remove the node's /var volume if this state directory owns it; what went."""
    volume = DockerNames(lab.name).var_volume(node)
    found = _inspect("volume", volume)
    labels = (found or {}).get("Labels") or {}
    if found is None or labels.get(STATE_LABEL) != _owner(state_root):
        return []
    run([*_REMOVES["volume"], volume])
    return [f"volume {volume}"]


def _inspect(kind: str, name: str) -> dict[str, Any] | None:
    result = run(["docker", kind, "inspect", name], check=False)
    if result.returncode != 0:
        return None
    data: list[dict[str, Any]] = json.loads(result.stdout)
    return data[0] if data else None


# Each kind of engine object: how to list it with its owner, and how to remove some.
_LISTS = {
    "container": ["docker", "ps", "-a", "--format"],
    "network": ["docker", "network", "ls", "--format"],
    "volume": ["docker", "volume", "ls", "--format"],
}
_REMOVES = {
    "container": ["docker", "rm", "-f", "-v"],
    "network": ["docker", "network", "rm"],
    "volume": ["docker", "volume", "rm", "-f"],
}


def _labelled(kind: str, lab_name: str) -> list[tuple[str, str]]:
    """(name, owning state directory) of every object of ``kind`` labelled with the lab;
    the owner is "" on an object that has no state label."""
    name = "{{.Names}}" if kind == "container" else "{{.Name}}"
    listing = run(
        [
            *_LISTS[kind],
            f'{name}\t{{{{.Label "{STATE_LABEL}"}}}}',
            "--filter",
            f"label={LAB_LABEL}={lab_name}",
        ]
    ).stdout
    return [
        (found, owner)
        for found, _, owner in (line.partition("\t") for line in listing.splitlines())
    ]


def foreign_objects(lab_name: str, state_root: Path) -> list[str]:
    """The engine objects named for this lab that another state directory owns (or that
    carry no owner): neither ``up`` may reuse them nor ``destroy`` remove them."""
    return [
        f"{kind} {found} ({f'state {owner}' if owner else 'no k8slab.state label'})"
        for kind in _LISTS
        for found, owner in _labelled(kind, lab_name)
        if owner != _owner(state_root)
    ]


def refuse_foreign_objects(lab: Lab, state_root: Path) -> None:
    """Fail, before anything is created, when the engine holds a same-named lab's objects."""
    foreign = foreign_objects(lab.name, state_root)
    if foreign:
        raise EngineError(
            "\n".join(
                [
                    f"{lab.source}: the docker engine already has objects of a lab named "
                    f"{lab.name} that this state directory ({_owner(state_root)}) does not own:",
                    *(f"  {line}" for line in foreign),
                    "  destroy that lab with its own state directory "
                    f"(K8SLAB_STATE_DIR=<its root> k8slab destroy {lab.name}), remove them "
                    "with docker, or give this lab another name",
                ]
            )
        )


def remove_lab_objects(lab_name: str, state_root: Path) -> list[str]:
    """Remove the lab's containers, then networks, then volumes that this state directory
    owns; return what went. Another state directory's objects of the same name stay."""
    removed: list[str] = []
    for kind in _LISTS:
        mine = [found for found, owner in _labelled(kind, lab_name) if owner == _owner(state_root)]
        if mine:
            run([*_REMOVES[kind], *mine])
            removed += [f"{kind} {found}" for found in mine]
    return removed


def lab_objects(lab_name: str) -> dict[str, list[str]]:
    """Names of the lab's containers, networks and volumes that exist in the engine,
    whichever state directory owns them."""
    return {f"{kind}s": [found for found, _ in _labelled(kind, lab_name)] for kind in _LISTS}
