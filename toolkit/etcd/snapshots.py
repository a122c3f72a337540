"""The lab's backup directory: snapshot files, their sha256 and manifest, listing and pruning.

``<state>/backups/<lab>-etcd-<UTC timestamp>.db`` with ``.db.sha256`` (``sha256sum`` format)
and ``.db.json`` (the manifest: which lab, member, revision, keys, hash).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolkit.errors import K8slabError
from toolkit.lab.state import LabState

STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
# A lab's or a node's name, as the lab spec allows them (a DNS label).
HOST_NAME = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
# Always used with fullmatch: no path, no space, nothing a shell would read.
NAME_RE = re.compile(rf"(?P<lab>{HOST_NAME})-etcd-(?P<stamp>[0-9]{{8}}T[0-9]{{6}}Z)\.db")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
TOPOLOGIES = ("stacked", "external")
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


def backups_dir(lab: str) -> Path:
    return LabState.of(lab).root / "backups"


def snapshot_name(lab: str, when: float) -> str:
    return f"{lab}-etcd-{datetime.fromtimestamp(when, UTC).strftime(STAMP_FORMAT)}.db"


def stamp_of(name: str) -> datetime | None:
    match = NAME_RE.fullmatch(name)
    if not match:
        return None
    return datetime.strptime(match["stamp"], STAMP_FORMAT).replace(tzinfo=UTC)


def sha256_path(snapshot: Path) -> Path:
    return snapshot.with_name(snapshot.name + ".sha256")


def manifest_path(snapshot: Path) -> Path:
    return snapshot.with_name(snapshot.name + ".json")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_line(digest: str, name: str) -> str:
    return f"{digest}  {name}\n"


def parse_sha256_line(text: str, source: Path) -> str:
    fields = text.split()
    if not fields or not SHA256_RE.fullmatch(fields[0]):
        raise SnapshotError(f"{source}: no sha256 digest in it; the checksum file is damaged")
    return fields[0]


def _read_small(path: Path, what: str) -> str:
    """The text of a sidecar, refused if it is too large or not text."""
    try:
        if path.stat().st_size > MANIFEST_MAX_BYTES:
            raise SnapshotError(
                f"{path}: {path.stat().st_size} bytes, more than a {what} ever is; it is damaged"
            )
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SnapshotError(f"{path}: not text; the {what} is damaged") from None
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def read_manifest(snapshot: Path) -> SnapshotManifest:
    """The manifest beside ``snapshot``, every field checked, ``file`` its own name."""
    path = manifest_path(snapshot)
    return SnapshotManifest.from_json(_read_small(path, "manifest"), path, file=snapshot.name)


def read_sha256(snapshot: Path) -> str:
    path = sha256_path(snapshot)
    return parse_sha256_line(_read_small(path, "checksum file"), path)


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def write_sidecars(snapshot: Path, manifest: SnapshotManifest) -> None:
    _write_atomically(sha256_path(snapshot), sha256_line(manifest.sha256, snapshot.name))
    _write_atomically(manifest_path(snapshot), manifest.to_json())


def commit(partial: Path, snapshot: Path, manifest: SnapshotManifest) -> None:
    """Put a copied snapshot in place: its checksum and manifest first, the file itself last.

    So a ``.db`` in the backup directory always has both beside it; an interruption leaves
    at most sidecars without a snapshot, which nothing lists, and on an error here they go.
    """
    try:
        write_sidecars(snapshot, manifest)
        partial.replace(snapshot)
    except BaseException:
        for path in (partial, sha256_path(snapshot), manifest_path(snapshot)):
            path.unlink(missing_ok=True)
        raise


def checked_manifest(snapshot: Path, lab: str) -> SnapshotManifest:
    """The snapshot's manifest, after checking that it belongs to ``lab`` and is intact.

    Refuses (SnapshotError) a missing file or sidecar, a manifest with any field other than
    `k8slab etcd backup` writes, a sha256 that does not match, and a snapshot whose
    manifest names another lab. Nothing on the lab is touched here.
    """
    if not snapshot.is_file():
        raise SnapshotError(f"{snapshot}: no such snapshot file")
    for sidecar in (sha256_path(snapshot), manifest_path(snapshot)):
        if not sidecar.is_file():
            raise SnapshotError(
                f"{sidecar}: missing; a snapshot is restored only with its checksum and "
                "manifest, as `k8slab etcd backup` writes them"
            )
    manifest = read_manifest(snapshot)
    if manifest.lab != lab:
        raise SnapshotError(
            f"{snapshot}: its manifest says it is a snapshot of lab {manifest.lab!r}, "
            f"not {lab!r}; restore it onto {manifest.lab!r} or pick one of "
            f"`k8slab etcd backups {lab}`"
        )
    recorded = read_sha256(snapshot)
    actual = file_sha256(snapshot)
    if actual != recorded or actual != manifest.sha256:
        raise SnapshotError(
            f"{snapshot}: sha256 is {actual}, but {sha256_path(snapshot).name} records "
            f"{recorded}; the file is corrupted or truncated (size {snapshot.stat().st_size} "
            f"bytes, manifest says {manifest.size})"
        )
    return manifest


@dataclass(frozen=True)
class BackupEntry:
    path: Path
    manifest: SnapshotManifest
    size: int
    created: datetime | None

    def age_s(self, now: float | None = None) -> float | None:
        if self.created is None:
            return None
        return (now if now is not None else time.time()) - self.created.timestamp()


def _complete(path: Path, lab: str) -> SnapshotManifest | None:
    """The manifest of a snapshot of ``lab`` whose sidecars are both there and sound."""
    try:
        manifest = read_manifest(path)
        recorded = read_sha256(path)
    except (SnapshotError, OSError):
        return None
    if manifest.lab != lab or recorded != manifest.sha256:
        return None
    return manifest


def list_backups(lab: str, directory: Path | None = None) -> list[BackupEntry]:
    """The lab's complete snapshots, oldest first (by the timestamp in their name).

    A ``.db`` without a sound checksum and manifest of this lab beside it (a copy cut
    short, a file put there by hand) is not one: it is never listed, restored as
    ``latest``, or counted or deleted by pruning.
    """
    where = directory or backups_dir(lab)
    if not where.is_dir():
        return []
    entries = []
    for path in where.glob("*.db"):
        manifest = _complete(path, lab) if path.is_file() else None
        if manifest is not None:
            entries.append(BackupEntry(path, manifest, path.stat().st_size, stamp_of(path.name)))
    return sorted(
        entries, key=lambda e: (e.created or datetime.min.replace(tzinfo=UTC), e.path.name)
    )


def to_prune(names: list[str], keep: int) -> list[str]:
    """Which snapshot names go when only the newest ``keep`` stay (names without a stamp stay)."""
    if keep < 1:
        raise SnapshotError(f"--keep {keep}: keep at least 1 snapshot")
    stamped = sorted((stamp, name) for name in names if (stamp := stamp_of(name)) is not None)
    return [name for _, name in stamped[:-keep]] if len(stamped) > keep else []


def prune(lab: str, keep: int, directory: Path | None = None) -> list[Path]:
    """Delete all but the newest ``keep`` snapshots with their sidecars; return what went."""
    where = directory or backups_dir(lab)
    removed = []
    for name in to_prune([entry.path.name for entry in list_backups(lab, where)], keep):
        snapshot = where / name
        for path in (snapshot, sha256_path(snapshot), manifest_path(snapshot)):
            path.unlink(missing_ok=True)
        removed.append(snapshot)
    return removed


def resolve(lab: str, given: str) -> Path:
    """A snapshot named on the command line: a path, a file in the backup dir, or ``latest``."""
    if given == "latest":
        entries = list_backups(lab)
        if not entries:
            raise SnapshotError(
                f"lab {lab} has no snapshots in {backups_dir(lab)}; run `k8slab etcd backup {lab}`"
            )
        return entries[-1].path
    path = Path(given)
    if path.is_file():
        return path.resolve()
    in_backups = backups_dir(lab) / given
    if in_backups.is_file():
        return in_backups
    raise SnapshotError(
        f"{given}: no such snapshot (neither a file nor in {backups_dir(lab)}); "
        f"see `k8slab etcd backups {lab}`"
    )
