"""How k8slab reaches hosts it did not make (``provider: existing``), checked with the spec:
each node's login (user, private key, sshd's port), the interface of its lab address, and
the commands that stop and start a whole host for the drills that need one down.

Hosts that k8slab makes are reached with the lab's own key pair, so these keys are refused
on every other provider. A key file is checked as OpenSSH (which Ansible uses) would
check it: there, a regular file, not readable by others, a private key without a
passphrase (no agent is used).
"""

from __future__ import annotations

import getpass
import os
import re
import shlex
import stat
import string
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import (
    load_pem_private_key,
    load_ssh_private_key,
)

from toolkit.lab.model import EXISTING, HostPower, Login, Role
from toolkit.lab.schema import ACCESS_KEYS, HOST_POWER_KEYS, NODE_MINIMUMS, Problems, check_mapping

DEFAULT_KEY = "~/.ssh/id_ed25519"
DEFAULT_SSH_PORT = 22
# A Linux interface name (IFNAMSIZ: at most 15 bytes), a login name as useradd takes it.
INTERFACE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")
USER_RE = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
# What ssh_config (IdentityFile) and Ansible's ssh arguments hold without quoting.
KEY_PATH_RE = re.compile(r"[A-Za-z0-9_.,:@+=/~-]+")
MAX_KEY_BYTES = 64 * 1024
PLACEHOLDERS = ("name", "address")
# What an existing host must have at least when the spec asks for nothing: kubeadm's
# preflight minimums on a control plane (rules.py), the smallest node elsewhere.
EXISTING_MINIMUMS = {Role.CONTROL_PLANE: {"cpus": 2, "memory_mb": 1700}}


def resource_defaults(provider: str | None, role: Role, built_in: dict[str, int]) -> dict[str, int]:
    """A node's cpus and memory_mb when neither it nor node_defaults gives them: what k8slab
    makes a host with, or on existing hosts the least the preflight accepts."""
    if provider != EXISTING:
        return built_in
    return EXISTING_MINIMUMS.get(role, NODE_MINIMUMS)


def check_defaults(provider: str | None, defaults: dict[str, Any], problems: Problems) -> None:
    """node_defaults' login keys exist for existing hosts only."""
    if provider == EXISTING:
        return
    for key in ACCESS_KEYS:
        if key in defaults:
            problems.add(f"node_defaults.{key}", _only_existing(provider))


class Access:
    """Reads each node's login and interface, checking each key file once."""

    def __init__(self, provider: str | None, spec_dir: Path, defaults: dict[str, Any]) -> None:
        self.provider = provider
        self.spec_dir = spec_dir
        self.defaults = defaults
        self._keys: dict[Path, bool] = {}

    def node(
        self, values: dict[str, Any], where: str, problems: Problems
    ) -> tuple[Login | None, str | None]:
        """The node's login and interface; None, None on providers that make their hosts."""
        if self.provider != EXISTING:
            for key in ACCESS_KEYS:
                if key in values:
                    problems.add(f"{where}.{key}", _only_existing(self.provider))
            return None, None
        ok = True
        user = self._value("ssh_user", values, where)
        name = user[0] or getpass.getuser()
        if not USER_RE.fullmatch(name):
            problems.add(
                user[1], f"{name!r} is not a user name; use lowercase letters, digits, '_'"
            )
            ok = False
        port, port_field = self._value("ssh_port", values, where)
        port = DEFAULT_SSH_PORT if port is None else port
        if not 1 <= port <= 65535:
            problems.add(port_field, f"{port} is not a TCP port; use 1-65535")
            ok = False
        key_path = self._key(values, where, problems)
        interface, interface_field = self._value("interface", values, where)
        if interface is not None and not INTERFACE_RE.fullmatch(interface):
            problems.add(
                interface_field,
                f"{interface!r} is not an interface name (at most 15 letters, digits, '_.-'); "
                "`ip -brief address` on the host lists them",
            )
            interface = None
        if not ok or key_path is None:
            return None, interface
        return Login(name, key_path, port), interface

    def _value(self, key: str, values: dict[str, Any], where: str) -> tuple[Any, str]:
        """The node's own value, else node_defaults', with the field it came from."""
        if key in values:
            return values[key], f"{where}.{key}"
        return self.defaults.get(key), f"node_defaults.{key}"

    def _key(self, values: dict[str, Any], where: str, problems: Problems) -> Path | None:
        text, field_path = self._value("ssh_key", values, where)
        if text is None:
            text, field_path = DEFAULT_KEY, f"{where}.ssh_key"
        if not KEY_PATH_RE.fullmatch(text):
            problems.add(
                field_path,
                f"{text!r} has characters an ssh_config cannot hold unquoted; move the key to a "
                "path of letters, digits and '_.,:@+=/~-'",
            )
            return None
        path = Path(text).expanduser()
        path = path if path.is_absolute() else self.spec_dir / path
        if path not in self._keys:
            problem = key_file_problem(path)
            if problem:
                given = "" if text != DEFAULT_KEY or "ssh_key" in values else " (the default)"
                problems.add(field_path, f"{problem}{given}")
            self._keys[path] = problem is None
        return path if self._keys[path] else None


def key_file_problem(path: Path) -> str | None:
    """Why OpenSSH (or k8slab, with no agent) could not log in with the key at ``path``."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return f"{path} does not exist; give the private key that logs in to the hosts"
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror})"
    if not stat.S_ISREG(info.st_mode):
        return f"{path} is not a file; give the private key itself"
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o007 or (info.st_uid == os.getuid() and mode & 0o077):
        return (
            f"{path} is mode {mode:04o}: others can read it, and OpenSSH refuses such a "
            f"private key; chmod 600 {path}"
        )
    if info.st_size > MAX_KEY_BYTES:
        return f"{path} is {info.st_size} bytes, too large to be a private key"
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror})"
    try:
        if b"-----BEGIN OPENSSH PRIVATE KEY-----" in data:
            load_ssh_private_key(data, None)
        else:
            load_pem_private_key(data, None)
    except TypeError:
        return (
            f"{path} is protected by a passphrase, and k8slab uses no SSH agent; give a key "
            f"without one (ssh-keygen -t ed25519 -N '' -f FILE)"
        )
    except (ValueError, UnsupportedAlgorithm):
        return f"{path} is not a private key (the .pub file is the public half)"
    return None


def parse_host_power(
    raw: dict[str, Any] | None, provider: str | None, problems: Problems
) -> HostPower | None:
    """host_power: two command lines, split as a shell would but never run by one, whose
    arguments may hold {name} and {address}."""
    if raw is None:
        return None
    if provider != EXISTING:
        problems.add(
            "host_power",
            f"{_only_existing(provider)}: k8slab stops and starts the hosts it makes itself",
        )
        return None
    argvs: dict[str, tuple[str, ...]] = {}
    for key, text in check_mapping(raw, HOST_POWER_KEYS, "host_power", problems).items():
        try:
            words = shlex.split(text)
        except ValueError as exc:
            problems.add(f"host_power.{key}", f"{text!r} is not a command line ({exc})")
            continue
        if not words:
            problems.add(f"host_power.{key}", f"is empty; {HOST_POWER_KEYS[key].hint}")
            continue
        bad = [problem for word in words if (problem := _placeholder_problem(word))]
        if bad:
            problems.add(f"host_power.{key}", bad[0])
            continue
        argvs[key] = tuple(words)
    if set(argvs) != set(HOST_POWER_KEYS):
        return None
    return HostPower(stop=argvs["stop"], start=argvs["start"])


def _placeholder_problem(word: str) -> str | None:
    allowed = " and ".join(f"{{{name}}}" for name in PLACEHOLDERS)
    try:
        fields = [
            (f, spec, conv) for _, f, spec, conv in string.Formatter().parse(word) if f is not None
        ]
    except ValueError as exc:
        return f"{word!r}: {exc}; write {{{{ and }}}} for a literal brace"
    for name, spec, conversion in fields:
        if name not in PLACEHOLDERS or spec or conversion:
            return f"{word!r} has {{{name}}}; the command may hold only {allowed}"
    return None


def _only_existing(provider: str | None) -> str:
    return (
        f"is only for provider: {EXISTING} (this lab's is {provider!r}, whose hosts k8slab "
        "makes and reaches with the lab's own key pair); remove it"
    )
