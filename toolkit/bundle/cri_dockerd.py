"""The bundle's optional ``cri-dockerd`` part: Docker Engine's CRI server, which a node whose
``container_runtime`` is ``docker`` runs since the kubelet's dockershim went (v1.24)
(``k8slab bundle build --with cri-dockerd``)."""

from __future__ import annotations

from toolkit.bundle.manifest import VersionCheck
from toolkit.bundle.part import Part
from toolkit.bundle.recipe import GoBinary, GoBuild
from toolkit.versions import KubernetesRelease

NAME = "cri-dockerd"
MODULE = "github.com/Mirantis/cri-dockerd"
# The tag and the commit it points at, which `cri-dockerd --version` prints. Its version
# list is refused by the Go module proxy; this exact version is served.
VERSION = "v0.4.0"
COMMIT = "a8698e9"


def go_builds(rel: KubernetesRelease) -> list[GoBuild]:
    version = VERSION.lstrip("v")
    stamp = f"{MODULE}/cmd/version"
    return [
        GoBuild(
            NAME,
            NAME,
            VERSION,
            (f"-X {stamp}.Version={version}", f"-X {stamp}.GitCommit={COMMIT}"),
            (
                GoBinary(
                    NAME,
                    MODULE,
                    "binary",
                    VERSION,
                    VersionCheck(("--version",), f"cri-dockerd {version} ({COMMIT})"),
                ),
            ),
        )
    ]


PART = Part(
    NAME,
    "Docker Engine's CRI server, for nodes whose container_runtime is docker",
    modules=(NAME,),
    go_builds=go_builds,
    components=lambda rel: {NAME: VERSION},
    # Its go.mod requires its k8s.io modules as v0.0.0 and replaces them; the script
    # carries that replace block into the consuming module.
    pin_command=lambda rel: f"bundle/gomod/pin-part.sh {rel.minor} {NAME} {MODULE}@{VERSION}",
)
