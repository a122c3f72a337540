"""An optional part of the bundle, declared: what it builds and from which pins.

Each part's module (cri_dockerd.py, conformance.py, metallb.py, ...) declares one
:class:`Part`; toolkit/bundle/parts.py builds, hashes, verifies and loads them all alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.bundle import recipe
from toolkit.bundle.recipe import GoBuild, ImageSpec, KconfigBuild
from toolkit.versions import KubernetesRelease


def _no_images(rel: KubernetesRelease) -> list[ImageSpec]:
    return []


def _no_sources(go: str, rel: KubernetesRelease, log: Path) -> dict[str, Path]:
    return {}


def _no_kconfig_builds(rel: KubernetesRelease) -> list[KconfigBuild]:
    return []


def _no_rendered(rel: KubernetesRelease, placed: dict[str, Path], into: Path) -> list[str]:
    return []


@dataclass(frozen=True)
class PinnedFile:
    """A file a part carries as its publisher made it, byte for byte (an upstream manifest):
    one of the part's sources (``Part.sources``, by ``name``), refused unless its sha256 is
    the one pinned here."""

    name: str  # the source's name, and the artifact's
    path: str  # where it goes in the part's folder
    version: str
    source: str  # where it comes from, for the manifest
    sha256: str


@dataclass(frozen=True)
class GoTest:
    """``go test`` of one package, in one of the recipe's Go modules (as its builds are
    compiled, so the build's cache serves it)."""

    module: str  # folder under bundle/gomod/<minor>/
    package: str


@dataclass(frozen=True)
class PartCheck:
    """A check of a part's own, run on its built binaries before its images are built."""

    what: str  # for the progress line
    problems: Callable[[KubernetesRelease, dict[str, Path]], list[str]]


@dataclass(frozen=True)
class Part:
    """An optional part of the bundle, built only when asked (``k8slab bundle build --with
    NAME``): a declaration of what it builds and from which pins. toolkit/bundle/parts.py
    builds, hashes, verifies and loads every part alike, into ``<bundle>/<name>/`` with its
    own manifest; the base bundle's recipe hash never sees a part's folders."""

    name: str
    what: str  # one line: what it holds, for --help
    modules: tuple[str, ...]  # its Go module folders under bundle/gomod/<minor>/
    go_builds: Callable[[KubernetesRelease], list[GoBuild]]
    components: Callable[[KubernetesRelease], dict[str, str]]
    # The command that writes its module folders for a minor that has none.
    pin_command: Callable[[KubernetesRelease], str]
    # k8slab's own sources it builds, folders under bundle/src/ (one for every minor; its
    # module folders above say what each minor builds them against).
    own_sources: tuple[str, ...] = ()
    # Go tests run before its artifacts are checked: a failing one fails the build.
    go_tests: tuple[GoTest, ...] = ()
    # C programs it compiles from their release tarballs (into bin/, like its Go builds).
    kconfig_builds: Callable[[KubernetesRelease], list[KconfigBuild]] = _no_kconfig_builds
    contexts: tuple[str, ...] = ()  # its image contexts under bundle/images/
    images: Callable[[KubernetesRelease], list[ImageSpec]] = _no_images
    debian_packages: tuple[str, ...] = ()  # its images' Debian base (images.ensure_debian_base)
    base_artifacts: tuple[str, ...] = ()  # the base bundle's artifacts its images copy
    # Other files its images copy, by name (``go`` the toolchain, ``log`` the build log).
    sources: Callable[[str, KubernetesRelease, Path], dict[str, Path]] = _no_sources
    # A YAML file written into the part from ``config`` (a "file" artifact of its manifest).
    config_file: str = ""
    config: Mapping[str, str] = field(default_factory=dict)
    # Files it makes from its built binaries and inputs (``placed``, by name) into ``into``,
    # the part's folder: their paths there, each a "file" artifact of its manifest.
    rendered: Callable[[KubernetesRelease, dict[str, Path], Path], list[str]] = _no_rendered
    check: PartCheck | None = None
    # Published files it carries unchanged, each checked against its pinned sha256.
    files: tuple[PinnedFile, ...] = ()

    def folders(self, minor: str) -> list[Path]:
        """The recipe folders it owns: its Go modules of ``minor``, its own sources, its
        image contexts."""
        return (
            [recipe.GOMOD_DIR / minor / m for m in self.modules]
            + [recipe.OWN_SOURCES_DIR / s for s in self.own_sources]
            + [recipe.IMAGES_DIR / c for c in self.contexts]
        )
