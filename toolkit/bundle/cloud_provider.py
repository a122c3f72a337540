"""The bundle's optional ``cloud-provider`` part: the lab's cloud-controller-manager, k8slab's
own provider for lab hosts (bundle/src/cloud-provider-k8slab) on upstream's
k8s.io/cloud-provider of the bundle's Kubernetes release, and its image
(``k8slab bundle build --with cloud-provider``).

Its source is one for every minor; ``gomod/<minor>/cloud-provider-k8slab/`` builds it against
that release's staging modules (``bundle/gomod/pin-own.sh``). Its Go tests run in the build,
after the binary, from the packages the build has just compiled.
"""

from __future__ import annotations

from toolkit.bundle.manifest import VersionCheck
from toolkit.bundle.part import GoTest, Part
from toolkit.bundle.recipe import GOMOD_DIR, GoBinary, GoBuild, ImageSpec, kubernetes_ldflags
from toolkit.constants import IMAGE_REGISTRY
from toolkit.errors import BundleError
from toolkit.versions import KubernetesRelease

NAME = "cloud-provider"
# The source folder (bundle/src/) and its module folder of each minor (bundle/gomod/).
SOURCE = "cloud-provider-k8slab"
PACKAGE = f"k8slab.local/{SOURCE}"
BINARY = "cloud-controller-manager"
REPOSITORY = f"{IMAGE_REGISTRY}/{BINARY}"
UPSTREAM = "k8s.io/cloud-provider"


def upstream_version(rel: KubernetesRelease) -> str:
    """The k8s.io/cloud-provider the part's module pins for ``rel`` (its release's v0.x)."""
    go_mod = GOMOD_DIR / rel.minor / SOURCE / "go.mod"
    for line in go_mod.read_text().split("\n"):
        fields = line.split()
        if fields[:3] == [UPSTREAM, "=>", UPSTREAM] and len(fields) == 4:
            return fields[3]
    raise BundleError(f"{go_mod} does not pin {UPSTREAM}; run `{pin_command(rel)}`")


def pin_command(rel: KubernetesRelease) -> str:
    return f"bundle/gomod/pin-own.sh {rel.minor} {SOURCE} {UPSTREAM}"


def go_builds(rel: KubernetesRelease) -> list[GoBuild]:
    # Stamped with the release it is built with, as upstream's providers are: `--version`
    # prints it (component-base's verflag names every component "Kubernetes").
    return [
        GoBuild(
            SOURCE,
            SOURCE,
            rel.version,
            kubernetes_ldflags(rel.version),
            (
                GoBinary(
                    BINARY,
                    PACKAGE,
                    "binary",
                    rel.version,
                    VersionCheck(("--version",), f"Kubernetes {rel.version}"),
                ),
            ),
        )
    ]


def images(rel: KubernetesRelease) -> list[ImageSpec]:
    # One static binary FROM scratch, as kubeadm's control-plane images are made.
    return [ImageSpec(f"{REPOSITORY}:{rel.version}", "kube-component", (BINARY,))]


PART = Part(
    NAME,
    "the lab's cloud-controller-manager (node addresses, zones, lifecycle), for labs whose "
    "cloud_provider is k8slab",
    modules=(SOURCE,),
    go_builds=go_builds,
    components=lambda rel: {SOURCE: rel.version, UPSTREAM: upstream_version(rel)},
    pin_command=pin_command,
    own_sources=(SOURCE,),
    go_tests=(GoTest(SOURCE, PACKAGE),),
    images=images,
)
