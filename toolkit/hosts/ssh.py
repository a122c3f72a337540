"""Reaching lab hosts over SSH with the lab's own key (paramiko)."""

from __future__ import annotations

import base64
import hashlib
import os
import shlex
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path

import paramiko

from toolkit.errors import HostError
from toolkit.poll import PollTimeout, wait_until


@dataclass(frozen=True)
class SshTarget:
    name: str
    address: str
    username: str
    private_key: Path
    # The lab's own known_hosts, shared with Ansible's OpenSSH (StrictHostKeyChecking
    # accept-new): a host's first key is recorded, a changed one refused.
    known_hosts: Path
    port: int = 22


class HostKeyChangedError(HostError):
    """A lab host answered with another key than the one recorded for it."""


_KNOWN_HOSTS_LOCK = threading.Lock()
# Told of each host key trusted on first use: the known_hosts name, key type, fingerprint.
NewKeyHook = Callable[[str, str, str], None]


def fingerprint(key: paramiko.PKey) -> str:
    """The key's fingerprint as OpenSSH shows it (``ssh-keygen -lf``): SHA256:base64."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class _AcceptNew(paramiko.MissingHostKeyPolicy):
    """OpenSSH's ``StrictHostKeyChecking accept-new``: a host not yet in the lab's
    known_hosts is trusted and recorded there; a known host with another key never gets
    here (paramiko refuses it)."""

    def __init__(self, known_hosts: Path, on_new_key: NewKeyHook | None = None) -> None:
        self.known_hosts = known_hosts
        self.on_new_key = on_new_key

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
        with _KNOWN_HOSTS_LOCK:
            fd = os.open(self.known_hosts, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a") as handle:
                handle.write(line)
        client.get_host_keys().add(hostname, key.get_name(), key)
        if self.on_new_key is not None:
            self.on_new_key(hostname, key.get_name(), fingerprint(key))


def connect(
    target: SshTarget, timeout: float = 30, on_new_key: NewKeyHook | None = None
) -> paramiko.SSHClient:
    """An SSH session to the host with the lab's key, its host key checked against the
    lab's known_hosts (the one way the Python side reaches a host); ``on_new_key`` is told
    of a key trusted on first use."""
    client = paramiko.SSHClient()
    with _KNOWN_HOSTS_LOCK:
        if target.known_hosts.exists():
            client.load_host_keys(str(target.known_hosts))
    client.set_missing_host_key_policy(_AcceptNew(target.known_hosts, on_new_key))
    try:
        client.connect(
            target.address,
            port=target.port,
            username=target.username,
            key_filename=str(target.private_key),
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            look_for_keys=False,
            allow_agent=False,
        )
    except paramiko.BadHostKeyException as exc:
        client.close()
        name = target.address if target.port == 22 else f"[{target.address}]:{target.port}"
        raise HostKeyChangedError(
            f"host {target.name} ({target.address}) offers another {exc.key.get_name()} key "
            f"than the one recorded in {target.known_hosts}; if the host was re-created, "
            f"forget the old key with: ssh-keygen -R '{name}' -f {target.known_hosts}"
        ) from exc
    except BaseException:
        client.close()
        raise
    return client


def script_command(script: Traversable, *args: str | int) -> str:
    """A packaged shell script run by ``sh -c`` with its arguments, each one quoted."""
    text = script.read_text(encoding="utf-8")
    return " ".join(shlex.quote(str(part)) for part in ("sh", "-c", text, script.name, *args))


def run_command(target: SshTarget, command: str, timeout: float = 30) -> tuple[int, str]:
    """Run ``command`` on the host; return its exit status and combined output."""
    client = connect(target, timeout)
    try:
        _, stdout, _ = client.exec_command(command, timeout=timeout, get_pty=False)
        stdout.channel.set_combine_stderr(True)
        output = stdout.read().decode(errors="replace")
        return stdout.channel.recv_exit_status(), output
    finally:
        client.close()


def reachable(target: SshTarget, timeout: float = 5) -> bool:
    try:
        status, _ = run_command(target, "true", timeout=timeout)
    except (TimeoutError, OSError, paramiko.SSHException):
        return False
    return status == 0


def wait_until_ready(target: SshTarget, deadline_s: float = 120, interval_s: float = 1) -> float:
    """Wait until the host accepts the lab key and systemd has finished booting.

    Returns the seconds waited; bounded by ``deadline_s``.
    """

    def systemd_state() -> str:
        status, output = run_command(target, "systemctl is-system-running --wait", timeout=10)
        return f"systemd is {output.strip() or 'unknown'} (exit {status})"

    try:
        return wait_until(
            systemd_state,
            lambda state: state.startswith(("systemd is running ", "systemd is degraded ")),
            timeout_s=deadline_s,
            interval_s=interval_s,
            what=f"host {target.name} ({target.address}) ready over SSH",
            retry_on=(TimeoutError, OSError, paramiko.SSHException),
        )
    except PollTimeout as exc:
        raise HostError(
            f"host {target.name} ({target.address}) was not ready over SSH within "
            f"{deadline_s:.0f}s: {exc.last}"
        ) from exc
