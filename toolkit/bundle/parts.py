"""Optional parts of a bundle, built only when asked (``k8slab bundle build --with NAME``).

A part lives in its own folder inside its version's bundle, ``<bundle>/<name>/``, with its
own manifest (``<bundle>/<name>/bundle.json``, naming the part) and its own recipe hash,
so the base bundle, its manifest and its hash stay as they are. It is built in
``<bundle>/.<name>.partial/`` and renamed into place when every artifact has passed its
checks, under the version's build lock. A part may use the base bundle's artifacts (the
conformance image carries its kubectl): its hash covers their checksums, so a rebuilt
base bundle (which keeps the parts it had) makes a part rebuild only if those changed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from pathlib import Path

from toolkit.bundle import conformance, images, recipe
from toolkit.bundle.build import (
    BuildResult,
    build_images,
    build_once,
    fresh_work,
    go_binaries,
    place_binary,
)
from toolkit.bundle.manifest import MANIFEST_NAME, Artifact, Manifest, sha256_of
from toolkit.bundle.store import (
    bundle_dir,
    check_artifact,
    is_complete,
    load,
    swap_in,
    verify,
)
from toolkit.bundle.tools import Toolchain
from toolkit.errors import BundleError
from toolkit.progress import SILENT, Progress
from toolkit.versions import KubernetesRelease, release

# The parts, by the name `--with` takes (their folders: recipe.PARTS).
NAMES = tuple(recipe.PARTS)


def part_dir(version: str, name: str) -> Path:
    return bundle_dir(version) / name


def _check_name(name: str) -> None:
    if name not in NAMES:
        raise BundleError(f"no optional bundle part {name!r}; the parts are: {', '.join(NAMES)}")


def present(version: str) -> list[str]:
    """The parts built into the bundle of ``version`` (complete ones: a manifest)."""
    return [n for n in NAMES if (part_dir(version, n) / MANIFEST_NAME).is_file()]


def load_part(version: str, name: str) -> Manifest:
    """The manifest of a complete part, or an error naming the command that builds it."""
    _check_name(name)
    rel = release(version)
    folder = part_dir(rel.version, name)
    if not (folder / MANIFEST_NAME).is_file():
        raise BundleError(
            f"the bundle of {rel.version} has no {name} part ({folder}): run "
            f"`k8slab bundle build --kubernetes {rel.version} --with {name}`"
        )
    return Manifest.read(folder)


def verify_part(version: str, name: str, progress: Progress = SILENT) -> list[str]:
    """Every problem of one part's artifacts (sha256, reported version, image tag)."""
    folder = part_dir(version, name)
    problems: list[str] = []
    for artifact in load_part(version, name).artifacts:
        found = check_artifact(folder, artifact)
        progress.say("verify", "FAILED" if found else "ok", f"{name}/{artifact.name}")
        problems += [f"{name}/{p}" for p in found]
    return problems


def verify_all(version: str, progress: Progress = SILENT) -> list[str]:
    """Verify the base bundle of ``version`` (raising on a problem, see
    :func:`toolkit.bundle.verify`), then each part it holds; the parts verified."""
    rel = release(version)
    verify(rel.version, progress)
    found = present(rel.version)
    problems = [p for name in found for p in verify_part(rel.version, name, progress)]
    if problems:
        raise BundleError(
            f"bundle {rel.version} failed verification ({len(problems)} problem(s)): "
            + "; ".join(problems)
        )
    return found


def recipe_hash(rel: KubernetesRelease, base: Manifest, debian_base: str) -> str:
    """A hash of everything the conformance part is made from: its builds and images
    (every field), its recipe folders and the base contexts it reuses, its Debian base,
    the repo list, and the base bundle's artifacts it copies."""
    digest = hashlib.sha256()
    described = (
        [dataclasses.asdict(b) for b in conformance.go_builds(rel)],
        [dataclasses.asdict(s) for s in conformance.images(rel)],
        conformance.components(rel),
        conformance.REPO_LIST,
        debian_base,
        sorted((a.name, a.sha256) for a in base.artifacts if a.name in conformance.BASE_BINARIES),
    )
    digest.update(repr(described).encode())
    contexts = {spec.context.split("/")[0] for spec in conformance.images(rel)}
    folders = recipe.part_folders(rel.minor, conformance.NAME) + [
        recipe.IMAGES_DIR / c
        for c in sorted(contexts - set(recipe.PARTS[conformance.NAME].contexts))
    ]
    recipe.hash_files(digest, folders, set())
    return digest.hexdigest()[:16]


def build_part(
    version: str, name: str, *, force: bool = False, progress: Progress = SILENT
) -> BuildResult:
    """Build (or reuse) one optional part of the complete bundle of ``version``."""
    _check_name(name)
    rel = release(version)
    conformance.require_recipe(rel)
    if not is_complete(rel.version):
        raise BundleError(
            f"the {name} part is built into a complete bundle: run "
            f"`k8slab bundle build --kubernetes {rel.version}` first"
        )
    base = load(rel.version)
    debian = images.debian_base_tag(conformance.DEBIAN_PACKAGES)
    wanted = recipe_hash(rel, base, debian)
    final = part_dir(rel.version, name)
    make = functools.partial(_build_locked, rel, name, base, wanted, progress)
    return build_once(final, wanted, force, rel.version, progress, make)


def _build_locked(
    rel: KubernetesRelease,
    name: str,
    base: Manifest,
    recipe_hash: str,
    progress: Progress,
    tools: Toolchain,
) -> BuildResult:
    base_folder = bundle_dir(rel.version)
    work = base_folder / f".{name}.partial"
    log = fresh_work(work, progress)
    progress.say("bundle", f"building the {name} part of {rel.version} in {work} (log: {log})")

    with progress.phase("base", f"Debian minbase + {', '.join(conformance.DEBIAN_PACKAGES)}"):
        debian = images.ensure_debian_base(
            tools, work / "base.log", progress, conformance.DEBIAN_PACKAGES
        )
    binaries = go_binaries(rel, conformance.go_builds(rel), tools, work / "bin", log, progress)
    artifacts = [place_binary(work, n, b) for n, b in binaries.items()]
    placed = {a.name: work / a.path for a in artifacts}
    placed |= conformance.inputs(tools.go, rel, base_folder, base, log)

    repo_list = work / conformance.REPO_LIST_FILE
    repo_list.write_text(conformance.repo_list_text())
    artifacts.append(
        Artifact(
            conformance.REPO_LIST_FILE,
            "file",
            rel.version,
            f"k8slab:{conformance.__name__}",
            sha256_of(repo_list),
            repo_list.stat().st_size,
            conformance.REPO_LIST_FILE,
        )
    )
    with progress.phase("check", "the images' names against e2e.test --list-images"):
        listed = conformance.listed_images(placed["e2e.test"], repo_list)
        problems = conformance.names_problems(rel, listed)
    if problems:
        raise BundleError(f"the {name} part is wrong: {'; '.join(problems)}")

    specs = conformance.images(rel)
    artifacts += build_images(tools, specs, placed, debian, work, log, progress)

    with progress.phase("check", "every artifact against its sha256 and version"):
        problems = [p for a in artifacts for p in check_artifact(work, a)]
    if problems:
        raise BundleError(f"the built {name} part is wrong: {'; '.join(problems)}")
    manifest = Manifest(
        rel.version, "gomod", conformance.components(rel), artifacts, recipe_hash, part=name
    )
    manifest.write(work)
    final = swap_in(work, part_dir(rel.version, name))
    progress.say("bundle", f"{final} complete: {len(artifacts)} artifacts")
    return BuildResult(final, Manifest.read(final), reused=False)
