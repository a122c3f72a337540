"""Specs of labs on hosts k8slab did not make (provider: existing): each node's login and
interface, the host power commands, and what is refused, each by file, field and fix."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.lab_specs import existing, mutated, private_key, write_spec
from toolkit.errors import SpecError
from toolkit.lab.model import Login, Role
from toolkit.lab.spec import load_lab


@pytest.fixture
def key(tmp_path: Path) -> Path:
    return private_key(tmp_path / "keys" / "id_ed25519")


def load(tmp_path: Path, change: Any) -> Any:
    return load_lab(write_spec(tmp_path, mutated(change)))


def refused(tmp_path: Path, change: Any) -> str:
    with pytest.raises(SpecError) as caught:
        load(tmp_path, change)
    return str(caught.value)


def test_each_node_gets_its_login_from_node_defaults_or_its_own(tmp_path: Path, key: Path) -> None:
    other = private_key(tmp_path / "demo" / "w1.key")

    def change(d: dict[str, Any]) -> None:
        existing(d, key, ssh_port=2222)
        d["nodes"]["workers"][0].update(
            ssh_user="pi", ssh_key="w1.key", ssh_port=22, interface="eth1"
        )

    lab = load(tmp_path, change)
    assert lab.existing and lab.host_power is None
    assert lab.node("cp1").login == Login("admin", key, 2222)
    assert lab.node("cp1").interface is None
    # A relative key path is the spec's folder's.
    assert lab.node("w1").login == Login("pi", other, 22)
    assert lab.node("w1").interface == "eth1"


def test_existing_hosts_need_by_default_what_kubeadm_and_a_node_need(
    tmp_path: Path, key: Path
) -> None:
    lab = load(tmp_path, lambda d: existing(d, key))
    assert (lab.node("cp1").cpus, lab.node("cp1").memory_mb) == (2, 1700)
    assert (lab.node("w1").cpus, lab.node("w1").memory_mb) == (1, 512)
    assert lab.node("w1").role is Role.WORKER


def test_the_first_address_may_be_an_existing_hosts(tmp_path: Path, key: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        existing(d, key)
        d["nodes"]["workers"][0]["address"] = "172.30.9.1"

    assert load(tmp_path, change).node("w1").address == ipaddress.IPv4Address("172.30.9.1")


def test_host_power_commands_are_split_and_filled_without_a_shell(
    tmp_path: Path, key: Path
) -> None:
    def change(d: dict[str, Any]) -> None:
        existing(d, key)
        d["host_power"] = {
            "stop": "docker stop --time 10 'byoh {name}'",
            "start": "ssh hv virsh start lab-{name} --addr={address}",
        }

    lab = load(tmp_path, change)
    assert lab.host_power is not None
    assert lab.host_power.argv("stop", lab.node("cp2")) == [
        "docker",
        "stop",
        "--time",
        "10",
        "byoh cp2",
    ]
    assert lab.host_power.argv("start", lab.node("w1"))[-2:] == ["lab-w1", "--addr=172.30.9.21"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d["nodes"]["workers"][0].update(ssh_port=2222),
            "nodes.workers[0].ssh_port: is only for provider: existing (this lab's is 'docker'",
        ),
        (
            lambda d: d.update(node_defaults={"ssh_user": "admin"}),
            "node_defaults.ssh_user: is only for provider: existing",
        ),
        (
            lambda d: d.update(host_power={"stop": "true", "start": "true"}),
            "host_power: is only for provider: existing",
        ),
    ],
    ids=["node-login", "defaults-login", "host-power"],
)
def test_logins_are_refused_on_hosts_k8slab_makes(
    tmp_path: Path, change: Any, expected: str
) -> None:
    assert expected in refused(tmp_path, change)


def test_a_missing_key_is_named_once_with_the_field_it_came_from(tmp_path: Path) -> None:
    message = refused(tmp_path, lambda d: existing(d, tmp_path / "nope"))
    assert f"node_defaults.ssh_key: {tmp_path / 'nope'} does not exist" in message
    assert message.count("does not exist") == 1


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: private_key(p, mode=0o644), "is mode 0644: others can read it"),
        (lambda p: private_key(p, mode=0o640), "is mode 0640: others can read it"),
        (lambda p: private_key(p, passphrase=b"secret"), "is protected by a passphrase"),
        (
            lambda p: (p.write_text("ssh-ed25519 AAAA k8slab\n"), p.chmod(0o600), p)[-1],
            "is not a private key (the .pub file",
        ),
        (lambda p: (p.mkdir(), p)[-1], "is not a file"),
    ],
    ids=["world-readable", "group-readable", "passphrase", "public-half", "directory"],
)
def test_a_key_openssh_would_not_use_is_refused(tmp_path: Path, make: Any, expected: str) -> None:
    path = make(tmp_path / "key")
    message = refused(tmp_path, lambda d: existing(d, path))
    assert f"node_defaults.ssh_key: {path} {expected}" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d["nodes"]["workers"][0].update(ssh_port=70000),
            "nodes.workers[0].ssh_port: 70000 is not a TCP port",
        ),
        (
            lambda d: d["nodes"]["workers"][0].update(ssh_user="Root;rm"),
            "nodes.workers[0].ssh_user: 'Root;rm' is not a user name",
        ),
        (
            lambda d: d["nodes"]["workers"][0].update(interface="eth0; reboot"),
            "nodes.workers[0].interface: 'eth0; reboot' is not an interface name",
        ),
        (
            lambda d: d["nodes"]["workers"][0].update(ssh_key="my key"),
            "nodes.workers[0].ssh_key: 'my key' has characters an ssh_config cannot hold",
        ),
        (
            lambda d: d.update(host_power={"stop": "virsh destroy {host}", "start": "true"}),
            "host_power.stop: '{host}' has {host}; the command may hold only {name} and {address}",
        ),
        (
            lambda d: d.update(host_power={"stop": "virsh destroy {name!r}", "start": "x"}),
            "host_power.stop: '{name!r}' has {name}",
        ),
        (
            lambda d: d.update(host_power={"stop": "echo 'unclosed", "start": "true"}),
            'host_power.stop: "echo \'unclosed" is not a command line',
        ),
        (
            lambda d: d.update(host_power={"stop": "virsh destroy {name}"}),
            "host_power.start: missing; add it",
        ),
        (
            lambda d: d.update(host_power={"stop": "  ", "start": "true"}),
            "host_power.stop: is empty",
        ),
    ],
    ids=[
        "port",
        "user",
        "interface",
        "key-path",
        "placeholder",
        "conversion",
        "quote",
        "no-start",
        "empty",
    ],
)
def test_bad_logins_and_power_commands_are_refused(
    tmp_path: Path, key: Path, change: Any, expected: str
) -> None:
    def both(d: dict[str, Any]) -> None:
        existing(d, key)
        change(d)

    assert expected in refused(tmp_path, both)
