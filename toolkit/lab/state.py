"""A lab's state directory: everything generated from its spec, never in the source tree."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from toolkit import paths
from toolkit.errors import LabNameError, StateError
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
    def ssh_config(self) -> Path:
        return self.root / "ssh_config"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

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

    def ensure_key_pair(self) -> None:
        """The lab's own SSH key pair (ed25519), made once; never Vagrant's insecure key."""
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

    def write_json(self, path: Path, data: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        tmp.replace(path)

    def write_text(self, path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
