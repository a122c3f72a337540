"""The bundle's optional ``addons`` part: the cluster add-ons' programs and images, all built
here (``k8slab bundle build --with addons``): metrics-server, kube-state-metrics,
node_exporter, Prometheus (Debian's package) and VictoriaLogs with its collector, vlagent.

Each Go program is built static from its published module and runs FROM scratch; Prometheus
is Debian 13's package on a Debian base made like the base bundle's (its web UI needs an
npm build the module proxy cannot give). The images are tagged under k8slab's own registry
name (toolkit/constants.py). Grafana and Loki are AGPL and Alertmanager's web UI is Elm
(its module does not build here), so none of them is in it.
"""

from __future__ import annotations

from toolkit.bundle.manifest import VersionCheck
from toolkit.bundle.part import Part
from toolkit.bundle.recipe import GoBinary, GoBuild, ImageSpec
from toolkit.constants import IMAGE_REGISTRY
from toolkit.versions import KubernetesRelease

NAME = "addons"
# Each exact version is served by the Go module proxy (most refuse their version list).
METRICS_SERVER = "v0.8.0"
KUBE_STATE_METRICS = "v2.13.0"
NODE_EXPORTER = "v1.12.1"
VICTORIALOGS = "v1.52.1"
# Debian 13's prometheus package: its image's Dockerfile refuses any other version.
PROMETHEUS = "v2.53.3"
DEBIAN_PACKAGES = ("prometheus",)
CONTEXTS = "addons"
# Where prometheus/common's version.Print reads the version the Prometheus exporters report.
PROMETHEUS_COMMON = "github.com/prometheus/common/version"
VICTORIA_BUILDINFO = "github.com/VictoriaMetrics/VictoriaMetrics/lib/buildinfo"


def image(name: str, version: str) -> str:
    """The tag of one add-on image."""
    return f"{IMAGE_REGISTRY}/{name}:{version}"


IMAGES = {
    "metrics-server": image("metrics-server", METRICS_SERVER),
    "kube-state-metrics": image("kube-state-metrics", KUBE_STATE_METRICS),
    "node-exporter": image("node-exporter", NODE_EXPORTER),
    "prometheus": image("prometheus", PROMETHEUS),
    "victoria-logs": image("victoria-logs", VICTORIALOGS),
    "vlagent": image("vlagent", VICTORIALOGS),
}


def _build(
    module: str, version: str, binary: str, package: str, ldflags: str, check: VersionCheck
) -> GoBuild:
    return GoBuild(
        module,
        binary,
        version,
        (ldflags,),
        (GoBinary(binary, package, "binary", version, check),),
    )


def _victoria(binary: str) -> GoBuild:
    # Each binary names itself in its version, as upstream's builds do: one build each.
    return _build(
        "victorialogs",
        VICTORIALOGS,
        binary,
        f"github.com/VictoriaMetrics/VictoriaLogs/app/{binary}",
        f"-X {VICTORIA_BUILDINFO}.Version={binary}-{VICTORIALOGS}",
        VersionCheck(("-version",), f"{binary}-{VICTORIALOGS}"),
    )


def go_builds(rel: KubernetesRelease) -> list[GoBuild]:
    return [
        _build(
            "metrics-server",
            METRICS_SERVER,
            "metrics-server",
            "sigs.k8s.io/metrics-server/cmd/metrics-server",
            f"-X k8s.io/client-go/pkg/version.gitVersion={METRICS_SERVER}",
            VersionCheck(("--version",), METRICS_SERVER),
        ),
        _build(
            "kube-state-metrics",
            KUBE_STATE_METRICS,
            "kube-state-metrics",
            "k8s.io/kube-state-metrics/v2",
            f"-X {PROMETHEUS_COMMON}.Version={KUBE_STATE_METRICS}",
            VersionCheck(("version",), f"kube-state-metrics, version {KUBE_STATE_METRICS}"),
        ),
        _build(
            "node-exporter",
            NODE_EXPORTER,
            "node_exporter",
            "github.com/prometheus/node_exporter",
            f"-X {PROMETHEUS_COMMON}.Version={NODE_EXPORTER.lstrip('v')}",
            VersionCheck(("--version",), f"node_exporter, version {NODE_EXPORTER.lstrip('v')}"),
        ),
        _victoria("victoria-logs"),
        _victoria("vlagent"),
    ]


def images(rel: KubernetesRelease) -> list[ImageSpec]:
    ctx = CONTEXTS
    return [
        ImageSpec(IMAGES["metrics-server"], f"{ctx}/metrics-server", ("metrics-server",)),
        ImageSpec(
            IMAGES["kube-state-metrics"], f"{ctx}/kube-state-metrics", ("kube-state-metrics",)
        ),
        ImageSpec(IMAGES["node-exporter"], f"{ctx}/node-exporter", ("node_exporter",)),
        ImageSpec(IMAGES["prometheus"], f"{ctx}/prometheus", (), debian_base=True),
        ImageSpec(IMAGES["victoria-logs"], f"{ctx}/victoria-logs", ("victoria-logs",)),
        ImageSpec(IMAGES["vlagent"], f"{ctx}/vlagent", ("vlagent",)),
    ]


def components(rel: KubernetesRelease) -> dict[str, str]:
    return {
        "metrics-server": METRICS_SERVER,
        "kube-state-metrics": KUBE_STATE_METRICS,
        "node-exporter": NODE_EXPORTER,
        "prometheus": PROMETHEUS,
        "victorialogs": VICTORIALOGS,
        "debian": "trixie",
    }


MODULES = {
    "metrics-server": f"sigs.k8s.io/metrics-server@{METRICS_SERVER}",
    "kube-state-metrics": f"k8s.io/kube-state-metrics/v2@{KUBE_STATE_METRICS}",
    "node-exporter": f"github.com/prometheus/node_exporter@{NODE_EXPORTER}",
    "victorialogs": f"github.com/VictoriaMetrics/VictoriaLogs@{VICTORIALOGS} "
    "github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs "
    "github.com/VictoriaMetrics/VictoriaLogs/app/vlagent",
}


def _pin_command(rel: KubernetesRelease) -> str:
    return " && ".join(
        f"bundle/gomod/pin-part.sh {rel.minor} {folder} {target}"
        for folder, target in MODULES.items()
    )


PART = Part(
    NAME,
    "the cluster add-ons: metrics-server, Prometheus with kube-state-metrics and "
    "node_exporter, VictoriaLogs with vlagent",
    modules=tuple(MODULES),
    go_builds=go_builds,
    components=components,
    pin_command=_pin_command,
    contexts=(CONTEXTS,),
    images=images,
    debian_packages=DEBIAN_PACKAGES,
)
