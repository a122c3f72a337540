"""The Python side checks lab hosts' keys against the lab's known_hosts, as Ansible's
OpenSSH does (accept-new): against a real SSH server on loopback (paramiko's,
tests/helpers/exec_ssh.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from tests.helpers.exec_ssh import ExecServer as Server
from toolkit.hosts.ssh import HostKeyChangedError, SshTarget, connect


@pytest.fixture
def client_key(tmp_path: Path) -> Path:
    path = tmp_path / "id_ed25519"
    key = paramiko.RSAKey.generate(2048)
    key.write_private_key_file(str(path))
    return path


@pytest.fixture
def host_keys() -> Iterator[tuple[paramiko.PKey, paramiko.PKey]]:
    yield paramiko.RSAKey.generate(2048), paramiko.RSAKey.generate(2048)


def target(port: int, client_key: Path, known_hosts: Path) -> SshTarget:
    return SshTarget("cp1", "127.0.0.1", "k8slab", client_key, known_hosts, port=port)


def test_a_new_host_is_recorded_and_then_checked(
    tmp_path: Path, client_key: Path, host_keys: tuple[paramiko.PKey, paramiko.PKey]
) -> None:
    known_hosts = tmp_path / "known_hosts"
    first, second = host_keys
    server = Server(first)
    try:
        connect(target(server.port, client_key, known_hosts)).close()
        recorded = known_hosts.read_text()
        assert f"[127.0.0.1]:{server.port} ssh-rsa {first.get_base64()}" in recorded
        assert known_hosts.stat().st_mode & 0o777 == 0o600
        connect(target(server.port, client_key, known_hosts)).close()
        assert known_hosts.read_text() == recorded, "a known host is not recorded twice"
        server.host_key = second  # the host re-created: same address, new key
        with pytest.raises(HostKeyChangedError, match="offers another ssh-rsa key") as caught:
            connect(target(server.port, client_key, known_hosts))
        assert f"ssh-keygen -R '[127.0.0.1]:{server.port}' -f {known_hosts}" in str(caught.value)
    finally:
        server.close()


def test_a_key_recorded_by_openssh_hashed_is_checked(
    tmp_path: Path, client_key: Path, host_keys: tuple[paramiko.PKey, paramiko.PKey]
) -> None:
    # Debian's OpenSSH hashes the names it records (HashKnownHosts yes), and Ansible's
    # connections write the same file first.
    first, second = host_keys
    server = Server(second)
    try:
        name = f"[127.0.0.1]:{server.port}"
        hashed = paramiko.HostKeys.hash_host(name)
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text(f"{hashed} ssh-rsa {first.get_base64()}\n")
        with pytest.raises(HostKeyChangedError):
            connect(target(server.port, client_key, known_hosts))
    finally:
        server.close()


def test_a_key_trusted_on_first_use_is_told_with_openssh_s_fingerprint(
    tmp_path: Path, client_key: Path, host_keys: tuple[paramiko.PKey, paramiko.PKey]
) -> None:
    first, _ = host_keys
    server = Server(first)
    told: list[tuple[str, str, str]] = []
    try:
        known_hosts = tmp_path / "known_hosts"
        connect(target(server.port, client_key, known_hosts), on_new_key=lambda *k: told.append(k))
        connect(target(server.port, client_key, known_hosts), on_new_key=lambda *k: told.append(k))
    finally:
        server.close()
    public = tmp_path / "host.pub"
    public.write_text(f"ssh-rsa {first.get_base64()}\n")
    # ssh-keygen prints "BITS SHA256:... COMMENT (TYPE)": the same fingerprint as told.
    shown = subprocess.run(
        ["ssh-keygen", "-lf", str(public)], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    assert told == [(f"[127.0.0.1]:{server.port}", "ssh-rsa", shown)], "told once, when recorded"
