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
from typing import Any

from toolkit import paths
from toolkit.errors import EngineError
from toolkit.lab.spec import Lab, Node
from toolkit.progress import SILENT, Progress
from toolkit.shell import run

LAB_LABEL = "k8slab.lab"
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


@dataclass(frozen=True)
class DockerNames:
    """The engine objects of one lab, all carrying the label ``k8slab.lab=<lab>``."""

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


def ensure_network(lab: Lab) -> str:
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
            f"--label={LAB_LABEL}={lab.name}",
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


def ensure_volumes(lab: Lab) -> None:
    names = DockerNames(lab.name)
    for node in lab.nodes:
        volume = names.var_volume(node)
        if _inspect("volume", volume) is None:
            run(["docker", "volume", "create", f"--label={LAB_LABEL}={lab.name}", volume])


def _inspect(kind: str, name: str) -> dict[str, Any] | None:
    result = run(["docker", kind, "inspect", name], check=False)
    if result.returncode != 0:
        return None
    data: list[dict[str, Any]] = json.loads(result.stdout)
    return data[0] if data else None


def remove_lab_objects(lab_name: str) -> list[str]:
    """Remove every container, network and volume labelled with the lab; return what went."""
    removed: list[str] = []
    label = f"label={LAB_LABEL}={lab_name}"
    containers = run(["docker", "ps", "-aq", "--filter", label]).stdout.split()
    if containers:
        run(["docker", "rm", "-f", "-v", *containers])
        removed += [f"container {c}" for c in containers]
    networks = run(["docker", "network", "ls", "-q", "--filter", label]).stdout.split()
    if networks:
        run(["docker", "network", "rm", *networks])
        removed += [f"network {n}" for n in networks]
    volumes = run(["docker", "volume", "ls", "-q", "--filter", label]).stdout.split()
    if volumes:
        run(["docker", "volume", "rm", "-f", *volumes])
        removed += [f"volume {v}" for v in volumes]
    return removed


def lab_objects(lab_name: str) -> dict[str, list[str]]:
    """Names of the lab's containers, networks and volumes that exist in the engine."""
    label = f"label={LAB_LABEL}={lab_name}"
    return {
        "containers": run(
            ["docker", "ps", "-a", "--format", "{{.Names}}", "--filter", label]
        ).stdout.split(),
        "networks": run(
            ["docker", "network", "ls", "--format", "{{.Name}}", "--filter", label]
        ).stdout.split(),
        "volumes": run(
            ["docker", "volume", "ls", "--format", "{{.Name}}", "--filter", label]
        ).stdout.split(),
    }
