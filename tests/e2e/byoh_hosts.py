"""Hosts that k8slab did not make, for the existing-hosts e2e test: systemd host containers
started from the node image by plain `docker run` (no Vagrant, no k8slab lifecycle) on a
docker network of their own, reached with a key pair of the fixture's own as users the
fixture adds (`admin` with sudo, `nosudo` without), the workers' sshd on port 2222.

Only what this module creates is removed: its containers, volumes and network, by name
and by its label.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from toolkit.hosts import engine
from toolkit.hosts.image import build_node_image
from toolkit.shell import run

PREFIX = "k8slab-byoh-e2e"
LABEL = "k8slab.test=byoh-e2e"
SUBNET = ipaddress.IPv4Network("172.30.60.0/24")
GATEWAY = SUBNET.network_address + 1
VIP = SUBNET.network_address + 100
NODES = {
    "control_planes": {"cp1": 11, "cp2": 12, "cp3": 13},
    "workers": {"w1": 21, "w2": 22},
}
WORKER_SSH_PORT = 2222
# w2's sshd also answers on the network's gateway (the machine's bridge), an address that
# is none of its own: the preflight must notice.
PUBLISHED_SSH_PORT = 2201
USER, NO_SUDO_USER = "admin", "nosudo"


@dataclass(frozen=True)
class Hosts:
    key: Path
    wrong_key: Path
    names: dict[str, str]  # node name -> container name
    addresses: dict[str, str]

    def exec(self, node: str, script: str, check: bool = True) -> str:
        result = run(["docker", "exec", self.names[node], "sh", "-c", script], check=check)
        return result.stdout

    def write(self, node: str, path: str, text: str, mode: str = "644") -> None:
        """Write ``text`` into ``path`` on the host, as root."""
        script = f"cat > {shlex.quote(path)} && chmod {mode} {shlex.quote(path)}"
        run(["docker", "exec", "-i", self.names[node], "sh", "-c", script], input_text=text)

    def running(self, node: str) -> bool:
        result = run(
            ["docker", "inspect", "-f", "{{.State.Running}}", self.names[node]], check=False
        )
        return result.stdout.strip() == "true"


def key_pair(path: Path) -> str:
    """An ed25519 key pair of the fixture's own at ``path`` (0600); the public line."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return public.decode() + " byoh-e2e"


def node_addresses() -> dict[str, str]:
    return {
        name: str(SUBNET.network_address + last)
        for group in NODES.values()
        for name, last in group.items()
    }


def start(workdir: Path) -> Hosts:
    """Start the hosts and prepare their logins; wait until systemd has booted each."""
    remove()  # what an interrupted run left behind
    public = key_pair(workdir / "id_ed25519")
    key_pair(workdir / "wrong_key")
    image = build_node_image().tag
    flags = engine.host_run_args(engine.privileged_allowed(image))
    addresses = node_addresses()
    hosts = Hosts(
        workdir / "id_ed25519",
        workdir / "wrong_key",
        {name: f"{PREFIX}-{name}" for name in addresses},
        addresses,
    )
    with engine.networks_lock():
        run(
            [
                "docker",
                "network",
                "create",
                f"--subnet={SUBNET}",
                f"--gateway={GATEWAY}",
                f"--label={LABEL}",
                PREFIX,
            ]
        )
    for name, address in addresses.items():
        run(["docker", "volume", "create", f"--label={LABEL}", f"{hosts.names[name]}-var"])
        publish = [f"--publish={GATEWAY}:{PUBLISHED_SSH_PORT}:22"] if name == "w2" else []
        run(
            [
                "docker",
                "run",
                "--detach",
                f"--name={hosts.names[name]}",
                f"--hostname={name}",
                f"--label={LABEL}",
                f"--network={PREFIX}",
                f"--ip={address}",
                f"--volume={hosts.names[name]}-var:/var",
                "--memory=2g",
                *flags,
                *publish,
                image,
                "/sbin/init",
            ],
            timeout=120,
        )
    for name in addresses:
        run(
            ["docker", "exec", hosts.names[name], "systemctl", "is-system-running", "--wait"],
            check=False,
            timeout=180,
        )
        hosts.exec(name, _logins_script(public, worker=name in NODES["workers"]))
    return hosts


def _logins_script(public: str, worker: bool) -> str:
    port = (
        f"printf 'Port 22\\nPort {WORKER_SSH_PORT}\\n' > /etc/ssh/sshd_config.d/port.conf; "
        "systemctl restart ssh; "
        if worker
        else ""
    )
    users = " ".join((USER, NO_SUDO_USER))
    return (
        "set -e; "
        f"for user in {users}; do "
        '  id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"; '
        '  install -d -m 700 -o "$user" -g "$user" "/home/$user/.ssh"; '
        f"  echo '{public}' > \"/home/$user/.ssh/authorized_keys\"; "
        '  chown "$user:$user" "/home/$user/.ssh/authorized_keys"; '
        "done; "
        f"echo '{USER} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/{USER}; "
        f"chmod 0440 /etc/sudoers.d/{USER}; " + port
    )


def spec(hosts: Hosts, folder: Path, **changes: Any) -> Path:
    """``folder/byoh/lab.yml``: the hosts as an existing-hosts lab of 3 control planes and 2
    workers, stopped and started for drills with docker; ``changes`` per node name."""
    nodes: dict[str, list[dict[str, Any]]] = {}
    for group, members in NODES.items():
        nodes[group] = []
        for name in members:
            entry: dict[str, Any] = {"name": name, "address": hosts.addresses[name]}
            if group == "workers":
                entry["ssh_port"] = WORKER_SSH_PORT
            entry.update(changes.get(name, {}))
            nodes[group].append(entry)
    data = {
        "name": "byoh",
        "provider": "existing",
        "kubernetes_version": "v1.34.4",
        "etcd_topology": "stacked",
        "container_runtime": "containerd",
        "cni": "flannel",
        "network": {
            "subnet": str(SUBNET),
            "pod_cidr": "10.244.0.0/16",
            "service_cidr": "10.96.0.0/16",
        },
        "api_endpoint": {"vip": str(VIP), "port": 8443},
        "node_defaults": {"ssh_user": USER, "ssh_key": str(hosts.key)},
        "host_power": {
            "stop": f"docker stop --time 10 {PREFIX}-{{name}}",
            "start": f"docker start {PREFIX}-{{name}}",
        },
        "nodes": nodes,
    }
    path = folder / "byoh" / "lab.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def remove() -> None:
    """Remove this module's containers, their volumes and its network (only those)."""
    listed = run(
        ["docker", "ps", "--all", "--quiet", f"--filter=label={LABEL}"], check=False
    ).stdout.split()
    if listed:
        run(["docker", "rm", "--force", "--volumes", *listed], check=False, timeout=120)
    volumes = run(
        ["docker", "volume", "ls", "--quiet", f"--filter=label={LABEL}"], check=False
    ).stdout.split()
    if volumes:
        run(["docker", "volume", "rm", "--force", *volumes], check=False)
    with engine.networks_lock():
        networks = run(
            ["docker", "network", "ls", "--quiet", f"--filter=label={LABEL}"], check=False
        ).stdout.split()
        if networks:
            run(["docker", "network", "rm", *networks], check=False)
