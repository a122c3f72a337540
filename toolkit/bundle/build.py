"""Building a bundle: binaries, then images, in a partial folder renamed when complete."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from toolkit.bundle import gobuild, images, kconfig, recipe, upstream
from toolkit.bundle.manifest import MANIFEST_NAME, Artifact, Manifest, VersionCheck, sha256_of
from toolkit.bundle.store import (
    build_lock,
    bundle_dir,
    check_artifact,
    partial_dir,
    put_in_place,
)
from toolkit.bundle.tools import Toolchain, preflight
from toolkit.errors import BundleError
from toolkit.progress import SILENT, Progress
from toolkit.versions import KubernetesRelease, release

SOURCES = ("gomod", "upstream")


@dataclass(frozen=True)
class BuildResult:
    path: Path
    manifest: Manifest
    reused: bool


@dataclass(frozen=True)
class _Binary:
    path: Path
    kind: str
    version: str
    source: str
    check: VersionCheck | None


def place_binary(folder: Path, name: str, b: _Binary) -> Artifact:
    """Move a built binary into the bundle folder being built; its manifest entry."""
    relative = ("cni/" if b.kind == "cni-plugin" else "bin/") + name
    target = folder / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    b.path.replace(target)
    return Artifact(
        name,
        b.kind,
        b.version,
        b.source,
        sha256_of(target),
        target.stat().st_size,
        relative,
        b.check,
    )


def go_binaries(
    rel: KubernetesRelease,
    builds: list[recipe.GoBuild],
    tools: Toolchain,
    work: Path,
    log: Path,
    progress: Progress,
) -> dict[str, _Binary]:
    with progress.phase("download", "Go modules through the module proxy"):
        for build in builds:
            gobuild.download(tools.go, build, rel.minor, log)
    found: dict[str, _Binary] = {}
    for build in builds:
        with progress.phase("compile", f"{build.component} {build.version}"):
            paths = gobuild.compile_build(tools.go, build, rel.minor, work, log)
        source = f"gomod:{build.module_dir(rel.minor).relative_to(recipe.RECIPE_DIR.parent)}"
        for b in build.binaries:
            found[b.name] = _Binary(paths[b.name], b.kind, b.version, source, b.check)
    return found


def kconfig_binaries(
    builds: list[recipe.KconfigBuild], work: Path, log: Path, progress: Progress
) -> dict[str, _Binary]:
    """Each C program compiled from its release tarball (:mod:`toolkit.bundle.kconfig`)."""
    found: dict[str, _Binary] = {}
    for build in builds:
        with progress.phase("compile", f"{build.name} {build.version} from {build.url}"):
            path = kconfig.build(build, work, log)
        found[build.name] = _Binary(path, "binary", build.version, f"make:{build.url}", build.check)
    return found


def build_images(
    tools: Toolchain,
    specs: list[recipe.ImageSpec],
    placed: dict[str, Path],
    base: str,
    work: Path,
    log: Path,
    progress: Progress,
) -> list[Artifact]:
    """``docker build`` + ``docker save`` of each spec, in order; their manifest entries."""
    built = []
    with progress.phase("images", "docker build + docker save"):
        for spec in specs:
            progress.say("images", spec.tag)
            archive = images.build_image(tools, spec, placed, base, work, log)
            built.append(
                Artifact(
                    spec.tag,
                    "image",
                    spec.tag.rsplit(":", 1)[1],
                    f"docker:bundle/images/{spec.context}",
                    sha256_of(archive),
                    archive.stat().st_size,
                    spec.archive,
                    tag=spec.tag,
                )
            )
    return built


def _upstream_binaries(
    rel: KubernetesRelease,
    work: Path,
    kubernetes_base: str,
    github_base: str,
    progress: Progress,
) -> dict[str, _Binary]:
    wanted = {
        b.name: b for build in recipe.go_builds(rel) if not build.own_source for b in build.binaries
    }
    found: dict[str, _Binary] = {}
    downloads = work.parent / "downloads"
    with progress.phase("download", "release files, each checked against its sha256"):
        for file in upstream.upstream_files(rel, kubernetes_base, github_base):
            progress.say("download", file.url)
            for name, path in upstream.fetch(file, work, downloads).items():
                b = wanted.pop(name)
                found[name] = _Binary(path, b.kind, b.version, f"upstream:{file.url}", b.check)
    if wanted:
        raise BundleError(f"no upstream location known for: {', '.join(sorted(wanted))}")
    shutil.rmtree(downloads)
    return found


def build(
    version: str,
    source: str = "gomod",
    *,
    force: bool = False,
    kubernetes_base: str = upstream.KUBERNETES_BASE,
    github_base: str = upstream.GITHUB_BASE,
    progress: Progress = SILENT,
) -> BuildResult:
    """Build (or reuse) the bundle of ``version`` under the cache; see ``bundle_dir``."""
    rel = release(version)
    if source not in SOURCES:
        raise BundleError(f"unknown source {source!r}; use one of: {', '.join(SOURCES)}")
    final = bundle_dir(rel.version)
    wanted = base_recipe(rel)
    return build_once(
        final,
        wanted,
        force,
        rel.version,
        progress,
        lambda tools: _build_locked(
            rel, source, tools, kubernetes_base, github_base, wanted, progress
        ),
    )


def base_recipe(rel: KubernetesRelease) -> str:
    """The hash of the recipe the base bundle of ``rel`` is built from today."""
    return recipe.recipe_hash(rel, images.debian_base_tag())


def base_is_current(version: str) -> bool:
    """Whether the complete base bundle of ``version`` was built from today's recipe."""
    rel = release(version)
    return Manifest.read(bundle_dir(rel.version)).recipe == base_recipe(rel)


def build_once(
    final: Path,
    wanted: str,
    force: bool,
    version: str,
    progress: Progress,
    make: Callable[[Toolchain], BuildResult],
) -> BuildResult:
    """Reuse the complete build in ``final`` if its recipe hash is ``wanted`` (and not
    ``force``); else ``make`` it under the version's build lock, unless the build that
    held the lock made it meanwhile."""
    current = reusable(final, wanted, force, progress)
    if current:
        progress.say("bundle", f"{final} is complete; nothing to do")
        return BuildResult(final, current, reused=True)
    tools = preflight()
    with build_lock(version, progress):
        current = reusable(final, wanted, force, SILENT)
        if current:
            progress.say("bundle", f"{final} was completed by another build")
            return BuildResult(final, current, reused=True)
        return make(tools)


def reusable(final: Path, wanted: str, force: bool, progress: Progress) -> Manifest | None:
    """The complete build's manifest in ``final`` if it can be reused as it is."""
    if force or not (final / MANIFEST_NAME).is_file():
        return None
    manifest = Manifest.read(final)
    if manifest.recipe != wanted:
        progress.say("bundle", f"the recipe changed since {final} was built; rebuilding it")
        return None
    return manifest


def fresh_work(work: Path, progress: Progress) -> Path:
    """An empty work folder (an interrupted build's removed) with bin/; its build log."""
    if work.exists():
        progress.say("bundle", f"discarding an interrupted build in {work}")
        shutil.rmtree(work)
    (work / "bin").mkdir(parents=True)
    return work / "build.log"


def _build_locked(
    rel: KubernetesRelease,
    source: str,
    tools: Toolchain,
    kubernetes_base: str,
    github_base: str,
    recipe_hash: str,
    progress: Progress,
) -> BuildResult:
    work = partial_dir(rel.version)
    log = fresh_work(work, progress)
    progress.say("bundle", f"building {rel.version} from {source} in {work} (log: {log})")

    with ThreadPoolExecutor(max_workers=1) as pool:
        # debootstrap waits on the network while the compiler uses the CPUs.
        base_future = pool.submit(images.ensure_debian_base, tools, work / "base.log", progress)
        builds = recipe.go_builds(rel)
        if source == "gomod":
            binaries = go_binaries(rel, builds, tools, work / "bin", log, progress)
        else:
            binaries = _upstream_binaries(rel, work / "bin", kubernetes_base, github_base, progress)
            own = [b for b in builds if b.own_source]
            binaries |= go_binaries(rel, own, tools, work / "bin", log, progress)
        pause = images.compile_pause(tools, rel.pause, work / "bin", log)
        binaries["pause"] = _Binary(
            pause,
            "binary",
            rel.pause,
            f"gcc:{recipe.PAUSE_SOURCE.relative_to(recipe.RECIPE_DIR.parent)}",
            VersionCheck(("-v",), f"pause {rel.pause}"),
        )
        with progress.phase("base", "Debian minbase for kube-proxy and flannel"):
            base = base_future.result()

    artifacts = [place_binary(work, name, b) for name, b in binaries.items()]
    placed = {a.name: work / a.path for a in artifacts}
    artifacts += build_images(tools, recipe.images(rel), placed, base, work, log, progress)

    with progress.phase("check", "every artifact against its sha256 and version"):
        problems = [p for a in artifacts for p in check_artifact(work, a)]
    if problems:
        raise BundleError(f"the built bundle is wrong: {'; '.join(problems)}")
    Manifest(rel.version, source, recipe.components(rel), artifacts, recipe_hash).write(work)

    final = put_in_place(work, rel.version)
    progress.say("bundle", f"{final} complete: {len(artifacts)} artifacts")
    return BuildResult(final, Manifest.read(final), reused=False)
