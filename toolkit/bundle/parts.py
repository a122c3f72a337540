"""Optional parts of a bundle, built only when asked (``k8slab bundle build --with NAME``).

A part is declared once, as a :class:`toolkit.bundle.part.Part` in its own module (what
it builds and from which pins); this module is the one machinery every part shares.

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
import shutil
from pathlib import Path

import yaml

from toolkit.bundle import (
    addons,
    cilium,
    cloud_provider,
    conformance,
    cri_dockerd,
    gobuild,
    images,
    k9s,
    kconfig,
    metallb,
    recipe,
)
from toolkit.bundle.build import (
    BuildResult,
    base_is_current,
    build_images,
    build_once,
    fresh_work,
    go_binaries,
    kconfig_binaries,
    place_binary,
)
from toolkit.bundle.manifest import MANIFEST_NAME, Artifact, Manifest, sha256_of
from toolkit.bundle.part import Part, PinnedFile
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
from toolkit.versions import RELEASES, KubernetesRelease, release

# Every part, by the name `--with` takes.
PARTS: dict[str, Part] = {
    part.name: part
    for part in (
        conformance.PART,
        cri_dockerd.PART,
        metallb.PART,
        addons.PART,
        k9s.PART,
        cloud_provider.PART,
        cilium.PART,
    )
}
NAMES = tuple(PARTS)


def part_dir(version: str, name: str) -> Path:
    return bundle_dir(version) / name


def get(name: str) -> Part:
    """The declaration of part ``name``; an error listing the parts otherwise."""
    if name not in PARTS:
        raise BundleError(f"no optional bundle part {name!r}; the parts are: {', '.join(NAMES)}")
    return PARTS[name]


def build_command(version: str, name: str) -> str:
    """The command that builds part ``name`` (and the base bundle, if missing) of ``version``."""
    return f"k8slab bundle build --kubernetes {version} --with {name}"


def present(version: str) -> list[str]:
    """The parts built into the bundle of ``version`` (complete ones: a manifest)."""
    return [n for n in NAMES if (part_dir(version, n) / MANIFEST_NAME).is_file()]


def out_of_date(version: str, names: list[str]) -> list[str]:
    """Those of the built parts ``names`` of ``version`` whose recipe changed since they
    were built (building them again replaces them)."""
    rel = release(version)
    base = load(rel.version)
    return [n for n in names if load_part(rel.version, n).recipe != recipe_hash(get(n), rel, base)]


def older_recipes(version: str) -> list[str]:
    """What of the complete bundle of ``version`` was built from another recipe than
    today's: "base" and the names of such parts; nothing for a version this checkout
    cannot build."""
    if version not in RELEASES or not is_complete(version):
        return []
    base = [] if base_is_current(version) else ["base"]
    return base + out_of_date(version, present(version))


def load_part(version: str, name: str) -> Manifest:
    """The manifest of a complete part, or an error naming the command that builds it."""
    get(name)
    rel = release(version)
    folder = part_dir(rel.version, name)
    if not (folder / MANIFEST_NAME).is_file():
        raise BundleError(
            f"the bundle of {rel.version} has no {name} part ({folder}): run "
            f"`{build_command(rel.version, name)}`"
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


def require_recipe(part: Part, rel: KubernetesRelease) -> None:
    """Refuse a version whose Go modules for ``part`` were never pinned."""
    for module in part.modules:
        folder = recipe.GOMOD_DIR / rel.minor / module
        if not (folder / "go.mod").is_file():
            raise BundleError(
                f"the {part.name} part has no Go module folder {folder}: run "
                f"`{part.pin_command(rel)}`"
            )


def _debian_base(part: Part) -> str:
    """The tag of the part's Debian base; none for a part without one."""
    return images.debian_base_tag(part.debian_packages) if part.debian_packages else ""


def recipe_hash(part: Part, rel: KubernetesRelease, base: Manifest) -> str:
    """A hash of everything ``part`` is made from: its builds and images (every field), its
    components and configuration, its Debian base, the base bundle's artifacts it copies,
    its recipe folders and the base contexts its images reuse."""
    digest = hashlib.sha256()
    described: tuple[object, ...] = (
        [_fields(b) for b in part.go_builds(rel)],
        [dataclasses.asdict(s) for s in part.images(rel)],
        part.components(rel),
        dict(part.config),
        _debian_base(part),
        sorted((a.name, a.sha256) for a in base.artifacts if a.name in part.base_artifacts),
    )
    # Only when it has some: a part without C programs keeps the hash it had before
    # parts could have them, so it is not rebuilt for nothing.
    kconfig = [_fields(b) for b in part.kconfig_builds(rel)]
    if kconfig:
        described += (kconfig,)
    if part.files:
        described += ([dataclasses.asdict(f) for f in part.files],)
    digest.update(repr(described).encode())
    contexts = {spec.context.split("/")[0] for spec in part.images(rel)}
    borrowed = [recipe.IMAGES_DIR / c for c in sorted(contexts - set(part.contexts))]
    recipe.hash_files(digest, part.folders(rel.minor) + borrowed)
    return digest.hexdigest()[:16]


def _fields(build: object) -> dict[str, object]:
    """A build's fields for the hash, every one but a version check's ``exit_status`` of 0:
    the parts built before checks had one keep their hash, and are not rebuilt for nothing."""
    return dataclasses.asdict(  # type: ignore[call-overload,no-any-return]
        build,
        dict_factory=lambda items: {k: v for k, v in items if (k, v) != ("exit_status", 0)},
    )


def build_part(
    version: str, name: str, *, force: bool = False, progress: Progress = SILENT
) -> BuildResult:
    """Build (or reuse) one optional part of the complete bundle of ``version``."""
    part = get(name)
    rel = release(version)
    require_recipe(part, rel)
    if not is_complete(rel.version):
        raise BundleError(
            f"the {name} part is built into a complete bundle: run "
            f"`k8slab bundle build --kubernetes {rel.version}` first"
        )
    base = load(rel.version)
    wanted = recipe_hash(part, rel, base)
    final = part_dir(rel.version, name)
    make = functools.partial(_build_locked, part, rel, base, wanted, progress)
    return build_once(final, wanted, force, rel.version, progress, make)


def _inputs(
    part: Part, go: str, rel: KubernetesRelease, base: Manifest, log: Path
) -> dict[str, Path]:
    """Everything the part's images copy that it does not compile: the base bundle's
    artifacts it names and its other sources."""
    base_folder = bundle_dir(rel.version)
    by_name = {a.name: a for a in base.artifacts}
    missing = [name for name in part.base_artifacts if name not in by_name]
    if missing:
        raise BundleError(f"the base bundle {base_folder} has no {', '.join(missing)}")
    found = {name: base_folder / by_name[name].path for name in part.base_artifacts}
    found |= part.sources(go, rel, log)
    absent = [f"{name} ({path})" for name, path in found.items() if not path.exists()]
    if absent:
        raise BundleError(f"the {part.name} part's inputs are missing: {', '.join(absent)}")
    return found


def _config_artifact(part: Part, rel: KubernetesRelease, work: Path) -> Artifact:
    (work / part.config_file).write_text(yaml.safe_dump(dict(part.config), sort_keys=True))
    return _file_artifact(part, rel, work, part.config_file, "configuration")


def _file_artifact(
    part: Part, rel: KubernetesRelease, work: Path, name: str, what: str
) -> Artifact:
    """A file the part wrote at ``work/name``, as an artifact of its manifest."""
    path = work / name
    return Artifact(
        name,
        "file",
        rel.version,
        f"k8slab:the {part.name} part's {what}",
        sha256_of(path),
        path.stat().st_size,
        name,
    )


def _pinned_artifact(
    part: Part, pinned: PinnedFile, found: Path, work: Path
) -> tuple[Artifact, Path]:
    """A published file into the part, byte for byte, once its sha256 is the pinned one."""
    actual = sha256_of(found)
    if actual != pinned.sha256:
        raise BundleError(
            f"the {part.name} part's {pinned.name} ({found}) has sha256 {actual}, not the "
            f"pinned {pinned.sha256}; refusing it"
        )
    target = work / pinned.path
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(found, target)
    artifact = Artifact(
        pinned.name,
        "file",
        pinned.version,
        pinned.source,
        sha256_of(target),
        target.stat().st_size,
        pinned.path,
    )
    return artifact, target


def _build_locked(
    part: Part,
    rel: KubernetesRelease,
    base: Manifest,
    recipe_hash: str,
    progress: Progress,
    tools: Toolchain,
) -> BuildResult:
    name = part.name
    if part.kconfig_builds(rel):
        kconfig.find_make(part.kconfig_builds(rel))
    work = bundle_dir(rel.version) / f".{name}.partial"
    log = fresh_work(work, progress)
    progress.say("bundle", f"building the {name} part of {rel.version} in {work} (log: {log})")

    debian = ""
    if part.debian_packages:
        with progress.phase("base", f"Debian minbase + {', '.join(part.debian_packages)}"):
            debian = images.ensure_debian_base(
                tools, work / "base.log", progress, part.debian_packages
            )
    binaries = go_binaries(rel, part.go_builds(rel), tools, work / "bin", log, progress)
    for test in part.go_tests:
        with progress.phase("test", f"go test {test.package}"):
            gobuild.run_test(tools.go, test, rel.minor, log)
    binaries |= kconfig_binaries(part.kconfig_builds(rel), work / "bin", log, progress)
    artifacts = [place_binary(work, n, b) for n, b in binaries.items()]
    placed = {a.name: work / a.path for a in artifacts}
    placed |= _inputs(part, tools.go, rel, base, log)
    if part.config_file:
        artifacts.append(_config_artifact(part, rel, work))
        placed[part.config_file] = work / part.config_file
    for pinned in part.files:
        artifact, placed[pinned.name] = _pinned_artifact(part, pinned, placed[pinned.name], work)
        artifacts.append(artifact)
    for path in part.rendered(rel, placed, work):
        artifacts.append(_file_artifact(part, rel, work, path, "rendered file"))
        placed[path] = work / path
    if part.check is not None:
        with progress.phase("check", part.check.what):
            problems = part.check.problems(rel, placed)
        if problems:
            raise BundleError(f"the {name} part is wrong: {'; '.join(problems)}")

    specs = part.images(rel)
    if specs:
        artifacts += build_images(tools, specs, placed, debian, work, log, progress)

    with progress.phase("check", "every artifact against its sha256 and version"):
        problems = [p for a in artifacts for p in check_artifact(work, a)]
    if problems:
        raise BundleError(f"the built {name} part is wrong: {'; '.join(problems)}")
    manifest = Manifest(
        rel.version, "gomod", part.components(rel), artifacts, recipe_hash, part=name
    )
    manifest.write(work)
    final = swap_in(work, part_dir(rel.version, name))
    progress.say("bundle", f"{final} complete: {len(artifacts)} artifacts")
    return BuildResult(final, Manifest.read(final), reused=False)
