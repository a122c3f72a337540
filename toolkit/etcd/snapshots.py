"""The lab's backup directory: snapshot files, their sha256 and manifest, listing and pruning.

``<state>/backups/<lab>-etcd-<UTC timestamp>.db`` with ``.db.sha256`` (``sha256sum`` format)
and ``.db.json`` (the manifest: which lab, member, revision, keys, hash).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from toolkit.errors import K8slabError
from toolkit.lab.state import LabState

STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
NAME_RE = re.compile(r"^(?P<lab>.+)-etcd-(?P<stamp>\d{8}T\d{6}Z)\.db$")


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
    def from_json(cls, text: str, source: Path) -> SnapshotManifest:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SnapshotError(f"{source}: not JSON ({exc}); the manifest is damaged") from None
        if not isinstance(data, dict):
            raise SnapshotError(f"{source}: not a JSON object; the manifest is damaged")
        fields = cls.__dataclass_fields__
        missing = sorted(set(fields) - set(data))
        if missing:
            raise SnapshotError(f"{source}: missing {', '.join(missing)}; the manifest is damaged")
        return cls(**{key: data[key] for key in fields})


def backups_dir(lab: str) -> Path:
    return LabState.of(lab).root / "backups"


def snapshot_name(lab: str, when: float) -> str:
    return f"{lab}-etcd-{datetime.fromtimestamp(when, UTC).strftime(STAMP_FORMAT)}.db"


def stamp_of(name: str) -> datetime | None:
    match = NAME_RE.match(name)
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
    if not fields or not re.fullmatch(r"[0-9a-f]{64}", fields[0]):
        raise SnapshotError(f"{source}: no sha256 digest in it; the checksum file is damaged")
    return fields[0]


def write_sidecars(snapshot: Path, manifest: SnapshotManifest) -> None:
    sha256_path(snapshot).write_text(sha256_line(manifest.sha256, snapshot.name))
    manifest_path(snapshot).write_text(manifest.to_json())


def checked_manifest(snapshot: Path, lab: str) -> SnapshotManifest:
    """The snapshot's manifest, after checking that it belongs to ``lab`` and is intact.

    Refuses (SnapshotError) a missing file or sidecar, a sha256 that does not match, and a
    snapshot whose manifest names another lab. Nothing on the lab is touched here.
    """
    if not snapshot.is_file():
        raise SnapshotError(f"{snapshot}: no such snapshot file")
    for sidecar in (sha256_path(snapshot), manifest_path(snapshot)):
        if not sidecar.is_file():
            raise SnapshotError(
                f"{sidecar}: missing; a snapshot is restored only with its checksum and "
                "manifest, as `k8slab etcd backup` writes them"
            )
    manifest = SnapshotManifest.from_json(
        manifest_path(snapshot).read_text(), manifest_path(snapshot)
    )
    if manifest.lab != lab:
        raise SnapshotError(
            f"{snapshot}: its manifest says it is a snapshot of lab {manifest.lab!r}, "
            f"not {lab!r}; restore it onto {manifest.lab!r} or pick one of "
            f"`k8slab etcd backups {lab}`"
        )
    recorded = parse_sha256_line(sha256_path(snapshot).read_text(), sha256_path(snapshot))
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
    manifest: SnapshotManifest | None
    size: int
    created: datetime | None

    def age_s(self, now: float | None = None) -> float | None:
        if self.created is None:
            return None
        return (now if now is not None else time.time()) - self.created.timestamp()


def list_backups(lab: str, directory: Path | None = None) -> list[BackupEntry]:
    """The lab's snapshots, oldest first (by the timestamp in their name)."""
    where = directory or backups_dir(lab)
    if not where.is_dir():
        return []
    entries = []
    for path in where.glob("*.db"):
        manifest = None
        if manifest_path(path).is_file():
            try:
                manifest = SnapshotManifest.from_json(
                    manifest_path(path).read_text(), manifest_path(path)
                )
            except SnapshotError:
                manifest = None
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
