"""Commands, packaged scripts and file copies on a lab's hosts, as root (sudo), over the
one SSH layer (:mod:`toolkit.hosts.ssh`, host keys pinned in the lab's known_hosts), with
errors naming the host. Everything on the Python side that acts on a host goes through
here: etcd backup and restore, the drills, the cluster client."""

from __future__ import annotations

import hashlib
import os
import shlex
from importlib.resources.abc import Traversable
from pathlib import Path

import paramiko

from toolkit.errors import HostError
from toolkit.hosts.ssh import SshTarget, connect, run_command, script_command
from toolkit.lab.render import ssh_target
from toolkit.lab.spec import Lab, Node
from toolkit.lab.state import LabState

CHUNK = 1 << 20


def target(lab: Lab, node: Node) -> SshTarget:
    return ssh_target(LabState.of(lab.name), node)


def sudo(script: str) -> str:
    return f"sudo sh -c {shlex.quote(script)}"


def try_root(lab: Lab, node: Node, script: str, timeout: float = 60) -> tuple[int, str]:
    """Run ``script`` as root on ``node``; its status and output (SSH failures raise)."""
    try:
        return run_command(target(lab, node), sudo(script), timeout=timeout)
    except (TimeoutError, OSError, paramiko.SSHException) as exc:
        raise HostError(f"{node.name}: cannot run over SSH: {exc or type(exc).__name__}") from exc


def try_run_script(
    lab: Lab, node: Node, script: Traversable, *args: str | int, timeout: float = 60
) -> tuple[int, str]:
    """Run a packaged script as root on ``node``; its status and output."""
    command = f"sudo {script_command(script, *args)}"
    try:
        return run_command(target(lab, node), command, timeout=timeout)
    except (TimeoutError, OSError, paramiko.SSHException) as exc:
        raise HostError(f"{node.name}: cannot run over SSH: {exc or type(exc).__name__}") from exc


def run_script(
    lab: Lab, node: Node, script: Traversable, *args: str | int, timeout: float = 60
) -> str:
    """Run a packaged script as root on ``node``; its output, or an error naming it."""
    status, output = try_run_script(lab, node, script, *args, timeout=timeout)
    if status != 0:
        tail = "\n".join(output.strip().splitlines()[-10:])
        raise HostError(f"{node.name}: {script.name} exited {status}: {tail}")
    return output


def root(lab: Lab, node: Node, script: str, timeout: float = 60) -> str:
    """Run ``script`` as root on ``node``; its output, or an error naming host and command."""
    status, output = try_root(lab, node, script, timeout)
    if status != 0:
        tail = "\n".join(output.strip().splitlines()[-10:])
        raise HostError(f"{node.name}: `{script}` exited {status}: {tail}")
    return output


def fetch(lab: Lab, node: Node, remote_path: str, local_path: Path, timeout: float = 600) -> str:
    """Copy a root-owned file off ``node`` into ``local_path`` (streamed); return its sha256.

    ``local_path`` is written as the bytes arrive and removed on any failure: the caller
    copies into a temporary name and renames it into place once it is checked.
    """
    digest = hashlib.sha256()
    client = connect(target(lab, node), 30)
    try:
        channel = client.get_transport().open_session(timeout=30)  # type: ignore[union-attr]
        channel.settimeout(timeout)
        channel.exec_command(f"sudo cat {shlex.quote(remote_path)}")
        # A snapshot holds every Secret of the cluster: readable by its owner only.
        fd = os.open(local_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            while chunk := channel.recv(CHUNK):
                digest.update(chunk)
                handle.write(chunk)
        status = channel.recv_exit_status()
        if status != 0:
            error = channel.recv_stderr(65536).decode(errors="replace").strip()
            raise HostError(f"{node.name}: cannot read {remote_path}: {error or status}")
    except BaseException:
        local_path.unlink(missing_ok=True)
        raise
    finally:
        client.close()
    return digest.hexdigest()


def push(lab: Lab, node: Node, local_path: Path, remote_path: str, timeout: float = 600) -> None:
    """Copy a local file to ``node`` as root, mode 0600 (streamed through sudo)."""
    quoted = shlex.quote(remote_path)
    command = sudo(f"umask 077; mkdir -p $(dirname {quoted}); cat > {quoted}")
    client = connect(target(lab, node), 30)
    try:
        channel = client.get_transport().open_session(timeout=30)  # type: ignore[union-attr]
        channel.settimeout(timeout)
        channel.exec_command(command)
        with local_path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                channel.sendall(chunk)
        channel.shutdown_write()
        status = channel.recv_exit_status()
        if status != 0:
            error = channel.recv_stderr(65536).decode(errors="replace").strip()
            raise HostError(f"{node.name}: cannot write {remote_path}: {error or status}")
    finally:
        client.close()
