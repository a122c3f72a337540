"""The bundle's optional ``metallb`` part: MetalLB, which gives LoadBalancer Services an
address from a pool of the lab subnet and announces it in L2 mode, by ARP
(``k8slab bundle build --with metallb``; a lab whose spec declares ``load_balancer.pool``
needs it).

Its controller and speaker are built here, static, from ``go.universe.tf/metallb`` at the
release, into images under k8slab's own registry name. Upstream's native manifest
(config/manifests/metallb-native.yaml in that module) is carried byte for byte, its sha256
pinned, beside ``images.yaml``, which names the bundle's image for each of upstream's: the
metallb role puts those in their place when it applies the manifest, and the build refuses
a manifest that runs any image the part does not redirect.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from toolkit.bundle.gobuild import module_source
from toolkit.bundle.manifest import VersionCheck
from toolkit.bundle.part import Part, PartCheck, PinnedFile
from toolkit.bundle.recipe import GOMOD_DIR, GoBinary, GoBuild, ImageSpec
from toolkit.constants import IMAGE_REGISTRY
from toolkit.versions import KubernetesRelease

NAME = "metallb"
MODULE = "go.universe.tf/metallb"
# Ask the Go module proxy for this exact version: its version lists may be refused.
VERSION = "v0.15.2"
COMPONENTS = ("controller", "speaker")
REPOSITORY = f"{IMAGE_REGISTRY}/metallb"
UPSTREAM_REPOSITORY = "quay.io/metallb"
MANIFEST = "metallb-native.yaml"
# sha256 of config/manifests/metallb-native.yaml in the module's v0.15.2 zip, as the Go
# module proxy served it (its go.sum line: h1:r7KDgJtk3KZe3qb36zRVrVCYHxLR03nPGT+qFXOomJM=).
MANIFEST_SHA256 = "a1b04c376fb39c93265f551fe23716a3ae6e09b790edb3bf257d3fc784c35a18"
IMAGES_FILE = "images.yaml"
LICENSE = "LICENSE"


def image(component: str) -> str:
    return f"{REPOSITORY}/{component}:{VERSION}"


def upstream_image(component: str) -> str:
    return f"{UPSTREAM_REPOSITORY}/{component}:{VERSION}"


# Upstream's image → the bundle's, for every image the manifest runs.
REDIRECTS = {upstream_image(c): image(c) for c in COMPONENTS}


def go_builds(rel: KubernetesRelease) -> list[GoBuild]:
    # The version is in the module's source (internal/version); the commit upstream's image
    # stamps with -X comes from its git checkout, which the module proxy does not publish,
    # so it stays unstamped. Each program says its version as it starts, then refuses to
    # run outside a cluster: the controller on a TLS version it does not know, the speaker
    # for want of its namespace. Both exit 1.
    version = VERSION.lstrip("v")
    checks = {
        "controller": VersionCheck(
            ("--tls-min-version=none",), f"MetalLB controller starting version {version}", 1
        ),
        "speaker": VersionCheck((), f"MetalLB speaker starting version {version}", 1),
    }
    return [
        GoBuild(
            NAME,
            NAME,
            VERSION,
            (),
            tuple(
                GoBinary(f"metallb-{c}", f"{MODULE}/{c}", "binary", VERSION, checks[c])
                for c in COMPONENTS
            ),
        )
    ]


def images(rel: KubernetesRelease) -> list[ImageSpec]:
    return [ImageSpec(image(c), f"{NAME}/{c}", (f"metallb-{c}", LICENSE)) for c in COMPONENTS]


def module_files(go: str, rel: KubernetesRelease, log: Path) -> dict[str, Path]:
    """The files of MetalLB's module the part carries: the manifest, the licence."""
    source = module_source(go, GOMOD_DIR / rel.minor / NAME, f"{MODULE}@{VERSION}", log)
    return {MANIFEST: source / "config" / "manifests" / MANIFEST, LICENSE: source / LICENSE}


def manifest_images(text: str) -> set[str]:
    """Every image a manifest's objects run (each ``image:`` anywhere in them)."""

    def found(value: Any) -> set[str]:
        if isinstance(value, dict):
            own = {value["image"]} if isinstance(value.get("image"), str) else set()
            return own.union(*(found(v) for v in value.values()))
        if isinstance(value, list):
            return set().union(*(found(v) for v in value))
        return set()

    return set().union(*(found(doc) for doc in yaml.safe_load_all(text)))


def redirect_problems(text: str) -> list[str]:
    """The manifest runs exactly the images the part redirects: one it runs and the part
    lacks would be pulled from upstream's registry; one the part redirects and it does not
    run means the pins have drifted apart."""
    runs = manifest_images(text)
    return [
        f"{MANIFEST} runs {name}, which the part does not build"
        for name in sorted(runs - REDIRECTS.keys())
    ] + [
        f"{MANIFEST} does not run {name}, which the part redirects"
        for name in sorted(REDIRECTS.keys() - runs)
    ]


def _redirect_problems(rel: KubernetesRelease, placed: dict[str, Path]) -> list[str]:
    return redirect_problems(placed[MANIFEST].read_text(encoding="utf-8"))


PART = Part(
    NAME,
    "MetalLB (controller, speaker, upstream's manifest), for labs with load_balancer.pool",
    modules=(NAME,),
    go_builds=go_builds,
    components=lambda rel: {NAME: VERSION},
    pin_command=lambda rel: (
        f"bundle/gomod/pin-part.sh {rel.minor} {NAME} {MODULE}@{VERSION} "
        + " ".join(f"{MODULE}/{c}" for c in COMPONENTS)
    ),
    contexts=(NAME,),
    images=images,
    sources=module_files,
    config_file=IMAGES_FILE,
    config=REDIRECTS,
    check=PartCheck(f"the images {MANIFEST} runs against the part's", _redirect_problems),
    files=(
        PinnedFile(
            MANIFEST,
            f"manifests/{MANIFEST}",
            VERSION,
            f"gomod:{MODULE}@{VERSION}/config/manifests/{MANIFEST}",
            MANIFEST_SHA256,
        ),
    ),
)
