"""A snapshot's manifest (``<snapshot>.db.json``): which lab, member, revision, keys and
hash it holds. Every field is checked when read, since its values reach file names, the
members' shells and a restore's checks."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from toolkit.errors import K8slabError
from toolkit.lab.schema import TOPOLOGIES
from toolkit.lab.spec import HOSTNAME_RE

STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
# A lab's or a node's name, as the lab spec allows them (a DNS label).
HOST_NAME = HOSTNAME_RE.pattern
# Always used with fullmatch: no path, no space, nothing a shell would read.
NAME_RE = re.compile(rf"(?P<lab>{HOST_NAME})-etcd-(?P<stamp>[0-9]{{8}}T[0-9]{{6}}Z)\.db")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
# A manifest is a few hundred bytes; anything much larger is not one.
MANIFEST_MAX_BYTES = 64 * 1024


class SnapshotError(K8slabError):
    """A snapshot is missing, damaged or belongs elsewhere; it is refused."""


@dataclass(frozen=True)
class SnapshotManifest:
    lab: str
    topology: str
    file: str
    created_at: str  # UTC, ISO 8601
    member: str
    revision: int
    total_keys: int
    hash: int
    size: int
    sha256: str
    etcd_version: str
    kubernetes_version: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: Path, file: str | None = None) -> SnapshotManifest:
        """The manifest in ``text`` (read from ``source``), every field checked.

        ``file``: the name of the snapshot it must describe. Every value here reaches file
        names, shell commands on the lab's hosts or a restore's checks, so each must be
        what ``k8slab etcd backup`` writes; anything else is refused, naming the field.
        """
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise SnapshotError(f"{source}: not JSON ({exc}); the manifest is damaged") from None
        if not isinstance(data, dict):
            raise SnapshotError(f"{source}: not a JSON object; the manifest is damaged")
        fields = cls.__dataclass_fields__
        missing = sorted(set(fields) - set(data))
        if missing:
            raise SnapshotError(f"{source}: missing {', '.join(missing)}; the manifest is damaged")
        problems = manifest_problems(data, file)
        if problems:
            raise SnapshotError(
                f"{source}: {'; '.join(problems)}; the manifest is damaged or was not written "
                "by `k8slab etcd backup`, so the snapshot is refused"
            )
        return cls(**{key: data[key] for key in fields})


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64


def _is_iso_time(value: object) -> bool:
    if not isinstance(value, str) or len(value) > 40:
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


VERSION_RE = re.compile(r"v?[0-9]+\.[0-9]+\.[0-9]+(?:[-+][0-9A-Za-z.+-]{1,40})?")
# What each field must be, and how to say so.
FIELD_CHECKS: dict[str, tuple[Callable[[object], bool], str]] = {
    "lab": (lambda v: isinstance(v, str) and bool(re.fullmatch(HOST_NAME, v)), "a lab name"),
    "topology": (lambda v: v in TOPOLOGIES, f"one of {', '.join(TOPOLOGIES)}"),
    "file": (
        lambda v: isinstance(v, str) and bool(NAME_RE.fullmatch(v)),
        "a snapshot's file name, <lab>-etcd-<YYYYMMDDTHHMMSSZ>.db",
    ),
    "created_at": (_is_iso_time, "an ISO 8601 time"),
    "member": (lambda v: isinstance(v, str) and bool(re.fullmatch(HOST_NAME, v)), "a node name"),
    "revision": (_is_count, "a whole number >= 0"),
    "total_keys": (_is_count, "a whole number >= 0"),
    "hash": (_is_count, "a whole number >= 0"),
    "size": (_is_count, "a whole number >= 0"),
    "sha256": (
        lambda v: isinstance(v, str) and bool(SHA256_RE.fullmatch(v)),
        "64 lowercase hex digits",
    ),
    "etcd_version": (
        lambda v: v == "" or (isinstance(v, str) and bool(VERSION_RE.fullmatch(v))),
        "a version such as 3.6.5 (or empty)",
    ),
    "kubernetes_version": (
        lambda v: isinstance(v, str) and bool(VERSION_RE.fullmatch(v)),
        "a version such as v1.34.4",
    ),
}


def manifest_problems(data: dict[str, Any], file: str | None = None) -> list[str]:
    """What is wrong with the fields of a manifest (``file``: the snapshot it belongs to)."""
    problems = []
    for key, (check, what) in FIELD_CHECKS.items():
        if key not in data:
            continue
        if not check(data[key]):
            problems.append(f"field {key!r} is {_shown(data[key])}, it must be {what}")
        elif key == "file" and file is not None and data[key] != file:
            problems.append(
                f"field 'file' is {_shown(data[key])}, it must be the snapshot's own name {file!r}"
            )
    return problems
