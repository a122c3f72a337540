"""The lab's backup directory: snapshot files, their sha256 and manifest, listing and pruning.

``<state>/backups/<lab>-etcd-<UTC timestamp>.db`` with ``.db.sha256`` (``sha256sum`` format)
and ``.db.json`` (the manifest: which lab, member, revision, keys, hash).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from toolkit.etcd.manifest import (
    MANIFEST_MAX_BYTES,
    NAME_RE,
    SHA256_RE,
    STAMP_FORMAT,
    SnapshotError,
    SnapshotManifest,
)
from toolkit.files import replace_file
from toolkit.lab.state import LabState


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


def write_sidecars(snapshot: Path, manifest: SnapshotManifest) -> None:
    replace_file(sha256_path(snapshot), sha256_line(manifest.sha256, snapshot.name))
    replace_file(manifest_path(snapshot), manifest.to_json())


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
