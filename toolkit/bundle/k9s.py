"""The bundle's optional ``k9s`` part: the terminal UI many operators manage a cluster with,
run on this machine against a lab (``k8slab k9s LAB``; ``k8slab bundle build --with k9s``).
The web dashboards are not to be had here: the Go module proxy refuses the Kubernetes
Dashboard's and Headlamp's modules and no registry serves their npm builds."""

from __future__ import annotations

from toolkit.bundle.manifest import VersionCheck
from toolkit.bundle.part import Part
from toolkit.bundle.recipe import GoBinary, GoBuild
from toolkit.versions import KubernetesRelease

NAME = "k9s"
MODULE = "github.com/derailed/k9s"
VERSION = "v0.50.16"


def go_builds(rel: KubernetesRelease) -> list[GoBuild]:
    return [
        GoBuild(
            NAME,
            NAME,
            VERSION,
            (f"-X {MODULE}/cmd.version={VERSION}",),
            (
                GoBinary(
                    NAME, MODULE, "binary", VERSION, VersionCheck(("version", "--short"), VERSION)
                ),
            ),
        )
    ]


PART = Part(
    NAME,
    "k9s, the terminal UI to manage a lab from this machine (k8slab k9s LAB)",
    modules=(NAME,),
    go_builds=go_builds,
    components=lambda rel: {NAME: VERSION},
    pin_command=lambda rel: f"bundle/gomod/pin-part.sh {rel.minor} {NAME} {MODULE}@{VERSION}",
)
