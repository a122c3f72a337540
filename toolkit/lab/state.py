"""A lab's state directory: everything generated from its spec, never in the source tree."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from toolkit import paths


@dataclass(frozen=True)
class LabState:
    lab: str
    root: Path

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

    def exists(self) -> bool:
        return self.root.is_dir()

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
