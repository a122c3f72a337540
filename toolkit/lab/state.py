"""A lab's state directory: everything generated from its spec, never in the source tree."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from toolkit import paths
from toolkit.errors import K8slabError, LabNameError, StateError
from toolkit.files import replace_file
from toolkit.lab.spec import HOSTNAME_RE

LAB_NAME_RULE = (
    "1 to 63 lowercase letters, digits and '-', starting and ending with a letter or digit"
)


def is_lab_name(text: str) -> bool:
    """The spec's own name pattern, matched in full: its ``$`` alone also matches before
    a trailing newline, so ``'lab\\n'`` would pass a plain ``match``."""
    return HOSTNAME_RE.fullmatch(text) is not None


def check_lab_argument(value: str) -> str:
    """LAB as a user gives it: a lab name, or a path to a lab spec (``.yml``/``.yaml`` or
    an existing file). Anything else (``mylab/..``, ``../x``, a trailing newline) is refused
    before it can name a folder."""
    if is_lab_name(value) or Path(value).suffix in (".yml", ".yaml") or Path(value).is_file():
        return value
    raise LabNameError(
        f"LAB {value!r} is neither a lab name ({LAB_NAME_RULE}, e.g. ha-stacked) "
        "nor a path to a lab.yml"
    )


@dataclass(frozen=True)
class LabState:
    lab: str
    root: Path

    def __post_init__(self) -> None:
        if not is_lab_name(self.lab):
            raise LabNameError(f"{self.lab!r} is not a lab name: use {LAB_NAME_RULE}")

    @classmethod
    def of(cls, lab: str) -> LabState:
        return cls(lab, paths.lab_state_dir(lab))

    @property
    def private_key(self) -> Path:
        return self.root / "keys" / "id_ed25519"

    @property
    def public_key(self) -> Path:
        return self.root / "keys" / "id_ed25519.pub"

    @property
    def machines(self) -> Path:
        return self.root / "machines.json"

    @property
    def inventory(self) -> Path:
        return self.root / "inventory.yml"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig the control_plane role copies here (mode 0600)."""
        return self.root / "kubeconfig"

    @property
    def ssh_config(self) -> Path:
        return self.root / "ssh_config"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def host_kinds(self) -> Path:
        """Which hosts are containers, as each host said when last reached (the roles'
        container branches follow it)."""
        return self.root / "hosts.json"

    @property
    def vagrant_dotfile(self) -> Path:
        return self.root / "vagrant"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def backups(self) -> Path:
        """The lab's etcd snapshots; ``destroy`` keeps them unless told to purge."""
        return self.root / "backups"

    def exists(self) -> bool:
        return self.root.is_dir()

    def only_backups(self) -> bool:
        """Nothing is left of the lab but its backups (a destroyed lab's kept snapshots)."""
        return self.exists() and [p.name for p in self.root.iterdir()] == [self.backups.name]

    def checked_root(self) -> Path:
        """The state directory, refused unless it is a real folder (not a symlink) directly
        under the state root, both resolved: what may be deleted never lies elsewhere."""
        root = paths.state_root().resolve()
        resolved = self.root.resolve()
        if self.root.is_symlink() or resolved.parent != root or resolved.name != self.lab:
            raise StateError(
                f"refusing to delete {self.root}: a lab's state must be the folder "
                f"{root / self.lab}, not a symlink or a path elsewhere"
            )
        return resolved

    def remove(self, keep_backups: bool = True) -> Path | None:
        """Delete the state directory; with ``keep_backups``, everything but a non-empty
        ``backups/``, around which a later ``up`` regenerates the rest. Return what was kept."""
        root = self.checked_root()
        if not root.exists():
            return None
        backups = root / self.backups.name
        if not (keep_backups and backups.is_dir() and any(backups.iterdir())):
            shutil.rmtree(root)
            return None
        for entry in root.iterdir():
            if entry.name == backups.name:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        return backups

    def ensure_root(self) -> Path:
        """The state directory, private to its user (0700) from the moment it exists: it
        holds the lab's SSH key, admin kubeconfig and etcd snapshots. One that an older
        toolkit made with the umask's mode (0755) is tightened."""
        self.root.parent.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(exist_ok=True, mode=0o700)
        if stat.S_IMODE(self.root.stat().st_mode) != 0o700:
            self.root.chmod(0o700)
        return self.root

    def ensure_key_pair(self) -> None:
        """The lab's own SSH key pair (ed25519), made once; never Vagrant's insecure key."""
        self.ensure_root()
        if self.private_key.exists() and self.public_key.exists():
            return
        self.private_key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        fd = os.open(self.private_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(private)
        self.public_key.write_bytes(public + f" k8slab-{self.lab}\n".encode())

    def write_json(self, path: Path, data: Any, mode: int = 0o644) -> None:
        self.write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n", mode)

    def write_text(self, path: Path, text: str, mode: int = 0o644) -> None:
        """Replace a file of the state directory whole and durably (journals: mode 0o600)."""
        self.ensure_root()
        replace_file(path, text, mode)


def read_journal_json(path: Path, limit: int, what: str, error: type[K8slabError]) -> Any:
    """The JSON of a journal kept in a state directory (None when there is no such file),
    read only up to ``limit`` bytes; each refusal an ``error`` naming the file and ``what``
    it should be (e.g. "restore journal")."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(limit + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise error(f"{path}: cannot read the {what}: {exc}") from exc
    if len(raw) > limit:
        raise error(f"{path}: larger than a {what} ever is; not read")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: not a {what} ({exc}); look at it by hand") from exc


class LabBusyError(K8slabError):
    """Another process holds the lab's lock: a command that changes the lab is running."""


@dataclass(frozen=True)
class LockHolder:
    """What the holder of a lab's lock wrote into it: its command line, pid and start."""

    command: str
    pid: int
    started: float

    def describe(self, now: float | None = None) -> str:
        started = time.gmtime(self.started)
        today = time.gmtime(time.time() if now is None else now)[:3] == started[:3]
        since = time.strftime("%H:%M:%S" if today else "%Y-%m-%d %H:%M:%S", started)
        return f"`{self.command}` (pid {self.pid}, since {since} UTC)"


# The labs this process holds, with the lock's file descriptor and how deeply it is held.
_held: dict[str, tuple[int, int]] = {}
_held_guard = threading.Lock()


@contextmanager
def lab_lock(lab: str, command: str) -> Iterator[Path]:
    """Hold the lab's lock (an flock on ``<state root>/.locks/<lab>.lock``) while a command
    changes the lab; refuse at once, naming the holder, if another process holds it.

    The holder writes ``command``, its pid and start time into the file and truncates it
    on release; a holder that dies releases the flock with it, so no lock goes stale.
    Re-entrant within a process: a command run inside another one (click's
    ``ctx.invoke``, a test's CliRunner inside a locked section) never waits on itself.
    """
    if not is_lab_name(lab):
        raise LabNameError(f"{lab!r} is not a lab name: use {LAB_NAME_RULE}")
    path = paths.lab_lock_file(lab)
    with _held_guard:
        fd, depth = _held.get(lab) or (_acquire(lab, path, command), 0)
        _held[lab] = (fd, depth + 1)
    try:
        yield path
    finally:
        with _held_guard:
            fd, depth = _held.pop(lab)
            if depth > 1:
                _held[lab] = (fd, depth - 1)
            else:
                _release(fd)


def lock_holder(path: Path) -> LockHolder | None:
    """The holder's record in a lock file, or None when there is none (yet) or it is unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return LockHolder(str(data["command"]), int(data["pid"]), float(data["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _acquire(lab: str, path: Path, command: str) -> int:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        # No O_TRUNC: a refused process must not erase the holder's record.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StateError(f"cannot open the lock of lab {lab} ({path}): {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = lock_holder(path)
        who = holder.describe() if holder else f"another process holds {path}"
        raise LabBusyError(f"lab {lab} is busy: {who}; wait for it or stop it") from None
    record = {"command": command, "pid": os.getpid(), "started": time.time()}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    return fd


def _release(fd: int) -> None:
    try:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
