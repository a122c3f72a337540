"""Judging existing hosts by their facts: each problem that would fail the lab later,
with its fix. Apart from reading them (``toolkit.hosts.preflight``), so that it is tested
with facts made up for the purpose."""

from __future__ import annotations

import ipaddress
import platform

import paramiko

from toolkit.hosts.facts import KERNEL_MODULES, Clock, HostFacts
from toolkit.hosts.ssh import HostKeyChangedError, SshTarget
from toolkit.lab import render
from toolkit.lab.model import Lab, Node

# The roles install Debian 13's packages (containerd, runc, haproxy, keepalived...).
SUPPORTED_OS = {("debian", "13"): "Debian 13 (trixie)"}
MIN_FREE_VAR_GIB = 5.0
MAX_CLOCK_SKEW_S = 2.0
SYSTEMD_UP = ("running", "degraded")


def describe(facts: HostFacts, clock: Clock | None) -> str:
    """One line of what a host is."""
    kind = f"container ({facts.container})" if facts.is_container else "machine"
    skew = f", clock {clock.offset_s:+.2f}s" if clock else ""
    return (
        f"{facts.os_name}, {facts.arch}, {kind}, {facts.cpus} CPUs, {facts.memory_mib} MiB, "
        f"{facts.var_free_gib} GiB free on /var, cgroup v{facts.cgroup_version or '?'}, "
        f"swap {facts.swap_mib} MiB, time sync {facts.time_sync or 'none'}{skew}"
    )


def judge_host(lab: Lab, node: Node, facts: HostFacts) -> list[str]:
    """Everything on this host that would fail the lab later, each with its fix."""
    user = node.login.user if node.login else "the login user"
    found = []
    if not facts.sudo:
        found.append(
            f"`sudo -n true` fails for {user} (a password asked, sudo refused or missing); "
            f"k8slab needs sudo without a password: add `{user} ALL=(ALL) NOPASSWD:ALL` to "
            f"/etc/sudoers.d/{user}"
        )
    wanted = SUPPORTED_OS.get((facts.os_id, facts.os_version))
    if wanted is None:
        found.append(
            f"runs {facts.os_name}; k8slab's roles install the packages of "
            f"{', '.join(SUPPORTED_OS.values())}: use that"
        )
    here = platform.machine()
    if facts.arch != here:
        found.append(f"is {facts.arch}; the bundle is built on this machine, for {here}")
    if facts.systemd not in SYSTEMD_UP:
        found.append(
            f"systemd says {facts.systemd or 'nothing'}; k8slab needs systemd as init, booted "
            "(`systemctl is-system-running` running or degraded)"
        )
    if not facts.python3:
        found.append("has no python3, which Ansible needs: apt-get install python3")
    found += _resources(node, facts)
    found += _addresses(lab, node, facts)
    found += _modules(facts)
    return found


def _resources(node: Node, facts: HostFacts) -> list[str]:
    found = []
    role = render.ROLE_NAMES[node.role]
    if facts.cpus < node.cpus:
        found.append(f"has {facts.cpus} CPUs; a {role} here needs {node.cpus} (cpus in the spec)")
    if facts.memory_mib < node.memory_mb:
        found.append(
            f"has {facts.memory_mib} MiB of memory (MemTotal); a {role} here needs "
            f"{node.memory_mb} (memory_mb in the spec)"
        )
    if facts.var_free_gib < MIN_FREE_VAR_GIB:
        found.append(
            f"has {facts.var_free_gib} GiB free on /var; the bundle's images, containerd and "
            f"etcd need at least {MIN_FREE_VAR_GIB:.0f}"
        )
    if facts.cgroup_version == 0:
        found.append("has no cgroup filesystem at /sys/fs/cgroup, which the kubelet needs")
    if facts.swap_mib > 0:
        where = "the machine that runs this container has" if facts.is_container else "has"
        found.append(
            f"{where} {facts.swap_mib} MiB of swap on, and the kubelet refuses to start with "
            "swap: `swapoff -a` and remove the swap from /etc/fstab"
        )
    return found


def _addresses(lab: Lab, node: Node, facts: HostFacts) -> list[str]:
    own = {name: cidrs for name, cidrs in facts.addresses.items() if name != "lo"}
    listed = ", ".join(f"{cidr} on {name}" for name, cidrs in own.items() for cidr in cidrs)
    holders = facts.interfaces_of(node.address)
    if not holders:
        return [
            f"{node.address} (its address in the spec) is not one of its own "
            f"({listed or 'it has none'}); give each host's own address on the lab network"
        ]
    found = []
    if node.interface and node.interface not in holders:
        found.append(
            f"{node.address} is on {', '.join(holders)}, not on {node.interface} (interface in "
            "the spec); name the interface that holds it, or leave it out"
        )
    for cidr in facts.addresses[holders[0]]:
        network = ipaddress.IPv4Interface(cidr)
        if network.ip == node.address and network.network != lab.network.subnet:
            found.append(
                f"{node.address} is on the network {network.network}, but network.subnet is "
                f"{lab.network.subnet}; the VIP goes on that network: make them the same"
            )
    return found


def _modules(facts: HostFacts) -> list[str]:
    found = []
    for module in KERNEL_MODULES:
        state = facts.modules.get(module, "unknown")
        if facts.is_container and state != "present":
            found.append(
                f"kernel module {module} is neither loaded nor built in, and a container cannot "
                "load it: run "
                f"`modprobe {module}` on the machine that runs it (and list it in "
                "/etc/modules-load.d there)"
            )
        elif state == "missing":
            found.append(
                f"kernel module {module} is neither built into kernel {facts.kernel} nor "
                "loadable (`modprobe --dry-run` finds no such module)"
            )
    return found


def clock_problem(clocks: dict[str, Clock]) -> str | None:
    """The hosts' clocks differ by more than MAX_CLOCK_SKEW_S, beyond what reading them
    could account for (each reading's half round trip)."""
    if len(clocks) < 2:
        return None
    first = min(clocks, key=lambda name: clocks[name].offset_s)
    last = max(clocks, key=lambda name: clocks[name].offset_s)
    spread = clocks[last].offset_s - clocks[first].offset_s
    slack = clocks[last].uncertainty_s + clocks[first].uncertainty_s
    if spread - slack <= MAX_CLOCK_SKEW_S:
        return None
    offsets = ", ".join(f"{name} {clock.offset_s:+.1f}s" for name, clock in clocks.items())
    return (
        f"the hosts' clocks differ by {spread:.1f}s ({first} and {last}; against this "
        f"machine's: {offsets}); etcd and the certificates need them within "
        f"{MAX_CLOCK_SKEW_S:.0f}s: keep every host's clock in sync (systemd-timesyncd, chrony)"
    )


def kinds_problem(facts: dict[str, HostFacts]) -> str | None:
    """The reached hosts are not all containers, nor all machines."""
    containers = [name for name, found in facts.items() if found.is_container]
    if not containers or len(containers) == len(facts):
        return None
    machines = [name for name in facts if name not in containers]
    return (
        f"some hosts are containers ({', '.join(containers)}) and some are not "
        f"({', '.join(machines)}); the kubelet's cgroup driver is cluster-wide in kubeadm's "
        "configuration, so a lab's hosts must all be one or the other"
    )


def vip_problem(lab: Lab, facts: dict[str, HostFacts], answers: bool | None) -> str | None:
    """The API's VIP is another machine's (it answers ``ping`` while no lab host holds it)
    or a host's that is not a control plane; a control plane holds it once provisioned."""
    holders = [name for name, found in facts.items() if found.interfaces_of(lab.api_vip)]
    control_planes = {node.name for node in lab.control_planes}
    strangers = [name for name in holders if name not in control_planes]
    if strangers:
        return (
            f"api_endpoint.vip {lab.api_vip} is an address of {', '.join(strangers)}, not a "
            "control plane; keepalived puts the VIP on a control plane: pick a free address"
        )
    if not holders and answers:
        return (
            f"api_endpoint.vip {lab.api_vip} answers ping, so another machine has it and "
            "keepalived would contend for it; pick a free address of the hosts' network"
        )
    return None


def ssh_problem(target: SshTarget, exc: BaseException) -> str:
    """What failed reaching the host, and what to do about it."""
    if isinstance(exc, HostKeyChangedError):
        return str(exc)
    if isinstance(exc, paramiko.AuthenticationException):
        return (
            f"SSH refused {target.username} with the key {target.private_key}: put its public "
            f"half in ~{target.username}/.ssh/authorized_keys there, or give the right ssh_key"
        )
    if isinstance(exc, (TimeoutError, OSError)):
        return (
            f"no SSH at {target.address}:{target.port} ({exc or type(exc).__name__}); is the "
            "host up, sshd running, the address and ssh_port right?"
        )
    return f"SSH to {target.address}:{target.port} failed: {exc or type(exc).__name__}"
