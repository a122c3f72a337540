"""What a lab host is, read over SSH: the facts the preflight judges (``host-facts.sh``),
its clock against this machine's, and whether it is a container, which the roles' container
branches follow (recorded in the lab's ``hosts.json`` for the inventory)."""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field
from importlib import resources

import paramiko

from toolkit.hosts.ssh import NewKeyHook, SshTarget, connect, script_command
from toolkit.lab.state import LabState

SCRIPTS = resources.files("toolkit.hosts") / "scripts"
FACTS_SCRIPT = SCRIPTS / "host-facts.sh"
# The kernel modules the prereqs role loads (its prereqs_kernel_modules).
KERNEL_MODULES = ("overlay", "br_netfilter")
NOT_A_CONTAINER = "none"


@dataclass(frozen=True)
class Clock:
    """The host's clock minus this machine's, within ± ``uncertainty_s`` (half the time the
    reading took to come back)."""

    offset_s: float
    uncertainty_s: float


@dataclass(frozen=True)
class HostFacts:
    os_id: str = "unknown"
    os_version: str = "unknown"
    os_name: str = "unknown"
    arch: str = "unknown"
    kernel: str = "unknown"
    cpus: int = 0
    memory_mib: int = 0
    var_free_gib: float = 0.0
    cgroup_version: int = 0  # 0: no cgroup filesystem found
    swap_mib: int = 0
    container: str = NOT_A_CONTAINER  # systemd-detect-virt --container
    systemd: str = ""
    python3: str = ""
    sudo: bool = False
    # Interface name to its IPv4 addresses in CIDR form.
    addresses: dict[str, list[str]] = field(default_factory=dict)
    time_sync: str = ""
    modules: dict[str, str] = field(default_factory=dict)

    @property
    def is_container(self) -> bool:
        return self.container != NOT_A_CONTAINER

    def interfaces_of(self, address: ipaddress.IPv4Address) -> list[str]:
        return [
            name
            for name, cidrs in self.addresses.items()
            if any(ipaddress.IPv4Interface(cidr).ip == address for cidr in cidrs)
        ]


def parse_facts(text: str) -> HostFacts:
    """``host-facts.sh``'s output as facts (a line it did not print keeps its default)."""
    raw: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            raw[key.strip()] = value.strip()
    addresses: dict[str, list[str]] = {}
    for pair in raw.get("addresses", "").split():
        name, _, cidr = pair.partition("=")
        try:
            ipaddress.IPv4Interface(cidr)
        except ValueError:
            continue
        addresses.setdefault(name, []).append(cidr)
    cgroup_fs = raw.get("cgroup_fs", "")
    return HostFacts(
        os_id=raw.get("os_id", "unknown"),
        os_version=raw.get("os_version", "unknown"),
        os_name=raw.get("os_name", "unknown"),
        arch=raw.get("arch", "unknown"),
        kernel=raw.get("kernel", "unknown"),
        cpus=_number(raw.get("cpus")),
        memory_mib=_number(raw.get("memory_kib")) // 1024,
        var_free_gib=round(_number(raw.get("var_free_kib")) / 1024**2, 1),
        cgroup_version={"cgroup2fs": 2, "tmpfs": 1}.get(cgroup_fs, 0),
        swap_mib=_number(raw.get("swap_kib")) // 1024,
        container=raw.get("container") or NOT_A_CONTAINER,
        systemd=raw.get("systemd", ""),
        python3=raw.get("python3", ""),
        sudo=raw.get("sudo") == "yes",
        addresses=addresses,
        time_sync=raw.get("time_sync", ""),
        modules={
            key.removeprefix("module."): value
            for key, value in raw.items()
            if key.startswith("module.")
        },
    )


def _number(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


def read_host(
    target: SshTarget, timeout: float = 30, on_new_key: NewKeyHook | None = None
) -> tuple[HostFacts, Clock]:
    """The host's facts and its clock, over one SSH session (raises what ``connect`` does)."""
    client = connect(target, timeout, on_new_key)
    try:
        status, output = _exec(client, script_command(FACTS_SCRIPT, *KERNEL_MODULES), timeout)
        if status != 0:
            raise paramiko.SSHException(f"host-facts.sh exited {status}: {output.strip()[-200:]}")
        facts = parse_facts(output)
        before = time.time()
        _, stamp = _exec(client, "date +%s.%N", timeout)
        after = time.time()
    finally:
        client.close()
    try:
        host_time = float(stamp.strip())
    except ValueError:
        host_time = (before + after) / 2
    return facts, Clock(host_time - (before + after) / 2, (after - before) / 2)


def read_container(
    target: SshTarget, timeout: float = 15, on_new_key: NewKeyHook | None = None
) -> str:
    """What ``systemd-detect-virt --container`` says the host is ("none": not a container)."""
    client = connect(target, timeout, on_new_key)
    try:
        _, output = _exec(client, "systemd-detect-virt --container 2>/dev/null; true", timeout)
    finally:
        client.close()
    words = output.split()
    return words[0] if words and words[0].replace("-", "").isalnum() else NOT_A_CONTAINER


def _exec(client: paramiko.SSHClient, command: str, timeout: float) -> tuple[int, str]:
    _, stdout, _ = client.exec_command(command, timeout=timeout)
    stdout.channel.set_combine_stderr(True)
    output = stdout.read().decode(errors="replace")
    return stdout.channel.recv_exit_status(), output


def record_kinds(state: LabState, containers: dict[str, str]) -> None:
    """Remember what each host is (``hosts.json``: systemd-detect-virt --container's word),
    for the inventory's container branches (toolkit/lab/render.py)."""
    state.write_json(
        state.host_kinds, {name: {"container": kind} for name, kind in sorted(containers.items())}
    )
