"""Where bundles live, how a build claims one, and what is present: list and verify."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from toolkit.bundle.images import archive_tags
from toolkit.bundle.manifest import MANIFEST_NAME, Artifact, Manifest, sha256_of
from toolkit.errors import BundleError
from toolkit.paths import cache_dir
from toolkit.progress import SILENT, Progress
from toolkit.versions import release

PARTIAL_SUFFIX = ".partial"


def bundles_root() -> Path:
    return cache_dir() / "bundles"


def bundle_dir(version: str) -> Path:
    return bundles_root() / version


def partial_dir(version: str) -> Path:
    """Where a build of ``version`` works until it is complete (then renamed)."""
    return bundles_root() / f".{version}{PARTIAL_SUFFIX}"


def put_in_place(work: Path, version: str) -> Path:
    """Make the complete build in ``work`` the bundle of ``version``, replacing any old one.

    Only renames until the new bundle is in place: the old one is renamed aside, the new
    one renamed in (the old one goes back if that fails), and only then is the old one
    deleted; a build killed at any point leaves a complete bundle, old or new, and at
    worst a hidden folder that the next build deletes.

    The old bundle's optional parts (toolkit/bundle/parts.py) move into the new one first:
    each part's own recipe hash, which covers the base artifacts it copies, then decides
    whether it is still good, rather than a rebuilt base costing every part a rebuild.
    """
    final = bundle_dir(version)
    if final.is_dir():
        for name in _parts(final):
            if not (work / name).exists():
                (final / name).rename(work / name)
    return swap_in(work, final)


def swap_in(work: Path, final: Path) -> Path:
    """Rename the complete build in ``work`` to ``final`` as :func:`put_in_place` says."""
    aside = final.parent / f".{final.name}.replaced"
    if aside.exists():
        shutil.rmtree(aside)
    if final.exists():
        final.rename(aside)
    try:
        work.rename(final)
    except BaseException:
        if aside.exists() and not final.exists():
            aside.rename(final)
        raise
    if aside.exists():
        shutil.rmtree(aside, ignore_errors=True)
    return final


def is_complete(version: str) -> bool:
    return (bundle_dir(version) / MANIFEST_NAME).is_file()


@contextmanager
def build_lock(version: str, progress: Progress = SILENT) -> Iterator[None]:
    """Hold the build lock of ``version``; a second build waits for the first."""
    root = bundles_root()
    root.mkdir(parents=True, exist_ok=True)
    with (root / f".{version}.lock").open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            progress.say("lock", f"a build of {version} is running (pid {holder}); waiting")
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield


def _tree_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@dataclass(frozen=True)
class BundleStatus:
    version: str
    path: Path
    complete: bool
    size: int
    artifacts: int
    note: str
    parts: tuple[str, ...] = ()  # optional parts built into it (toolkit/bundle/parts.py)


def _parts(folder: Path) -> tuple[str, ...]:
    """The optional parts built into a bundle: its sub-folders with a manifest."""
    return tuple(
        sorted(
            d.name
            for d in folder.iterdir()
            if d.is_dir() and not d.name.startswith(".") and (d / MANIFEST_NAME).is_file()
        )
    )


def list_bundles() -> list[BundleStatus]:
    """Every bundle and interrupted build under the cache, oldest version first."""
    root = bundles_root()
    if not root.is_dir():
        return []
    found: list[BundleStatus] = []
    for entry in sorted(root.iterdir()):
        if not entry.is_dir():
            continue
        if entry.name.startswith(".") and entry.name.endswith(PARTIAL_SUFFIX):
            version = entry.name[1 : -len(PARTIAL_SUFFIX)]
            found.append(
                BundleStatus(
                    version,
                    entry,
                    False,
                    _tree_size(entry),
                    0,
                    "partial: interrupted, failed or still building",
                )
            )
            continue
        if entry.name.startswith("."):
            continue
        try:
            manifest = Manifest.read(entry)
        except BundleError as exc:
            found.append(BundleStatus(entry.name, entry, False, _tree_size(entry), 0, str(exc)))
            continue
        missing = [a.name for a in manifest.artifacts if not (entry / a.path).is_file()]
        found.append(
            BundleStatus(
                entry.name,
                entry,
                not missing,
                _tree_size(entry),
                len(manifest.artifacts),
                f"missing: {', '.join(missing)}" if missing else f"source {manifest.source}",
                _parts(entry),
            )
        )
    return found


def _check_version(path: Path, artifact: Artifact) -> str | None:
    assert artifact.check is not None
    try:
        result = subprocess.run(
            [str(path), *artifact.check.argv],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={"PATH": "/usr/bin:/bin"},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{artifact.name}: does not run ({exc})"
    output = result.stdout + result.stderr
    if result.returncode != artifact.check.exit_status or artifact.check.expect not in output:
        said = " ".join(output.split())[:200]
        status = artifact.check.exit_status
        return (
            f"{artifact.name}: `{' '.join(artifact.check.argv)}` should print "
            f"{artifact.check.expect!r}{f' and exit {status}' if status else ''}, "
            f"said {said!r} (exit {result.returncode})"
        )
    return None


def check_artifact(folder: Path, artifact: Artifact) -> list[str]:
    """What is wrong with one artifact of the bundle in ``folder`` (nothing if it is sound)."""
    path = folder / artifact.path
    if not path.is_file():
        return [f"{artifact.name}: {artifact.path} is missing"]
    problems = []
    actual = sha256_of(path)
    if actual != artifact.sha256:
        problems.append(
            f"{artifact.name}: sha256 of {artifact.path} is {actual}, "
            f"the manifest says {artifact.sha256}"
        )
    elif artifact.check is not None:
        problem = _check_version(path, artifact)
        if problem:
            problems.append(problem)
    if artifact.kind == "image" and artifact.tag not in archive_tags(path):
        problems.append(f"{artifact.name}: {artifact.path} does not carry the tag {artifact.tag}")
    return problems


def _require_folder(version: str) -> Path:
    folder = bundle_dir(version)
    if not (folder / MANIFEST_NAME).is_file():
        hint = (
            " (an interrupted build is there; run `k8slab bundle build` to finish it)"
            if partial_dir(version).is_dir()
            else ""
        )
        raise BundleError(
            f"no complete bundle for {version} in {bundles_root()}{hint}: "
            f"run `k8slab bundle build --kubernetes {version}`"
        )
    return folder


def load(version: str) -> Manifest:
    """The manifest of the complete bundle of ``version``, for installing from it; an
    error naming the command that builds it otherwise."""
    return Manifest.read(_require_folder(release(version).version))


def verify(version: str, progress: Progress = SILENT) -> Manifest:
    """Re-check every sha256 and every binary's version; raise naming each bad artifact."""
    rel = release(version)
    folder = _require_folder(rel.version)
    manifest = Manifest.read(folder)
    problems: list[str] = []
    for artifact in manifest.artifacts:
        found = check_artifact(folder, artifact)
        progress.say("verify", "FAILED" if found else "ok", artifact.name)
        problems += found
    if problems:
        raise BundleError(
            f"bundle {rel.version} failed verification ({len(problems)} problem(s)): "
            + "; ".join(problems)
        )
    return manifest
