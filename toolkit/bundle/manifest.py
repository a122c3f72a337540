"""The bundle manifest: what a bundle holds, where each piece came from, its checksum."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from toolkit.errors import BundleError

MANIFEST_NAME = "bundle.json"
FORMAT = 1


@dataclass(frozen=True)
class VersionCheck:
    """How a binary reports its version: run it with ``argv``; ``expect`` must appear and
    it must exit with ``exit_status``."""

    argv: tuple[str, ...]
    expect: str
    # Not 0 for a program that prints its version only on its way to refusing to run outside
    # its cluster (MetalLB's). Out of repr(): the base bundle's recipe hash is made from
    # repr() and must not change with it (parts.recipe_hash leaves it out when 0).
    exit_status: int = field(default=0, repr=False)


@dataclass(frozen=True)
class Artifact:
    name: str
    kind: str  # "binary", "cni-plugin", "image" or "file"
    version: str
    source: str
    sha256: str
    size: int
    path: str  # relative to the bundle folder
    check: VersionCheck | None = None
    tag: str = ""  # images only: the reference kubeadm and the kubelet ask for


@dataclass
class Manifest:
    kubernetes: str
    source: str
    components: dict[str, str]
    artifacts: list[Artifact] = field(default_factory=list)
    recipe: str = ""  # hash of the recipe it was built from; a changed recipe rebuilds
    format: int = FORMAT
    # An optional part's manifest (<bundle>/<part>/bundle.json) names its part; the base
    # bundle's has none.
    part: str = ""

    def by_kind(self, kind: str) -> list[Artifact]:
        return [a for a in self.artifacts if a.kind == kind]

    def image_tags(self) -> list[str]:
        return [a.tag for a in self.by_kind("image")]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False) + "\n"

    def write(self, folder: Path) -> None:
        tmp = folder / f".{MANIFEST_NAME}.tmp"
        tmp.write_text(self.to_json())
        tmp.replace(folder / MANIFEST_NAME)

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST_NAME
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise BundleError(f"{path} is missing: the bundle is incomplete") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise BundleError(f"{path} is unreadable: {exc}") from None
        return cls.from_dict(data, path)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: Path) -> Manifest:
        if data.get("format") != FORMAT:
            raise BundleError(f"{where}: format {data.get('format')!r}, expected {FORMAT}")
        try:
            artifacts = [
                Artifact(
                    **{
                        **a,
                        "check": VersionCheck(
                            tuple(a["check"]["argv"]),
                            a["check"]["expect"],
                            a["check"].get("exit_status", 0),
                        )
                        if a.get("check")
                        else None,
                    }
                )
                for a in data["artifacts"]
            ]
            return cls(
                kubernetes=data["kubernetes"],
                source=data["source"],
                components=dict(data["components"]),
                artifacts=artifacts,
                recipe=data.get("recipe", ""),
                part=data.get("part", ""),
            )
        except (KeyError, TypeError) as exc:
            raise BundleError(f"{where}: malformed manifest ({exc})") from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
