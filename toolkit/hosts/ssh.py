"""Reaching lab hosts over SSH with the lab's own key (paramiko)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import paramiko

from toolkit.errors import HostError


@dataclass(frozen=True)
class SshTarget:
    name: str
    address: str
    username: str
    private_key: Path
    port: int = 22


def run_command(target: SshTarget, command: str, timeout: float = 30) -> tuple[int, str]:
    """Run ``command`` on the host; return its exit status and combined output."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
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
    started = time.monotonic()
    last_error = "no answer"
    while time.monotonic() - started < deadline_s:
        try:
            status, output = run_command(target, "systemctl is-system-running --wait", timeout=10)
            state = output.strip()
            if state in ("running", "degraded"):
                return time.monotonic() - started
            last_error = f"systemd is {state or 'unknown'} (exit {status})"
        except (TimeoutError, OSError, paramiko.SSHException) as exc:
            last_error = str(exc) or type(exc).__name__
        time.sleep(interval_s)
    raise HostError(
        f"host {target.name} ({target.address}) was not ready over SSH within "
        f"{deadline_s:.0f}s: {last_error}"
    )
