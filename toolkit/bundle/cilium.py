"""The bundle's optional ``cilium`` part: Cilium, chained after the lab's CNI to enforce
NetworkPolicy (``k8slab bundle build --with cilium``).

Built here from ``github.com/cilium/cilium`` (its go.mod's gobgp ``replace`` carried into
the recipe module): the agent, the operator (upstream's generic variant), the CNI plugin
and the agent's tools; an agent image on a Debian base with clang-19, which compiles the
datapath from the module's ``bpf/`` when the agent starts, and an operator image, both
under k8slab's own registry name. Cilium's Helm chart (``install/kubernetes/cilium`` in the
module) is rendered at build time by helm, built from ``helm.sh/helm/v3``, from the pinned
values in ``bundle/images/cilium/values/``: one manifest per CNI it chains after, each a
sha256-checked artifact of the part.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import yaml

from toolkit.bundle import gobuild
from toolkit.bundle.manifest import VersionCheck
from toolkit.bundle.part import Part, PartCheck
from toolkit.bundle.recipe import GOMOD_DIR, IMAGES_DIR, GoBinary, GoBuild, ImageSpec
from toolkit.constants import CILIUM_MACHINE_SYSCTLS, IMAGE_REGISTRY
from toolkit.errors import BundleError
from toolkit.versions import KubernetesRelease

NAME = "cilium"
MODULE = "github.com/cilium/cilium"
VERSION = "v1.19.7"
# The tag's time (the proxy's .info); the proxy does not give the commit, so the revision
# field of the version string (`1.19.7 <revision> <date>`, parsed by pkg/version) is the tag.
VERSION_DATE = "2026-08-18T08:34:44Z"
HELM_MODULE = "helm.sh/helm/v3"
HELM_VERSION = "v3.22.0"
# The recipe folders (PART, at the end, declares them).
GO_MODULE = "cilium"
HELM_GO_MODULE = "helm"
CONTEXTS = "cilium"
VALUES_DIR = IMAGES_DIR / CONTEXTS / "values"
AGENT_IMAGE = f"{IMAGE_REGISTRY}/cilium/cilium:{VERSION}"
OPERATOR_IMAGE = f"{IMAGE_REGISTRY}/cilium/operator-generic:{VERSION}"
# The CNIs Cilium chains after (generic-veth), each with a values file and a manifest.
CHAINED_AFTER = ("flannel", "bridge")
NAMESPACE = "kube-system"
# The module's packages of the commands the part builds (the recipe module's tools).
PACKAGES = (
    "daemon",
    "operator",
    "plugins/cilium-cni",
    "cilium-health",
    "cilium-dbg",
    "tools/sysctlfix",
)
# Debian packages of the agent image (upstream's runtime image: images/runtime).
DEBIAN_PACKAGES = (
    "ca-certificates",
    "clang-19",
    "iproute2",
    "ipset",
    "iptables",
    "kmod",
    "llvm-19",
)
# Files of the module the agent image and the rendering use, by the name the build uses.
MODULE_FILES = {
    "bpf": "bpf",
    "init-container.sh": "images/cilium/init-container.sh",
    "install-plugin.sh": "plugins/cilium-cni/install-plugin.sh",
    "cni-uninstall.sh": "plugins/cilium-cni/cni-uninstall.sh",
    "chart": "install/kubernetes/cilium",
}


def manifest_path(cni: str) -> str:
    """The manifest of Cilium chained after ``cni``, inside the part's folder."""
    return f"manifests/cilium-{cni}.yaml"


def go_builds(rel: KubernetesRelease) -> list[GoBuild]:
    version = VERSION.lstrip("v")
    stamp = f"-X '{MODULE}/pkg/version.ciliumVersion={version} {VERSION} {VERSION_DATE}'"

    def binary(name: str, package: str, check: VersionCheck | None) -> GoBinary:
        return GoBinary(name, f"{MODULE}/{package}", "binary", VERSION, check)

    return [
        GoBuild(
            GO_MODULE,
            NAME,
            VERSION,
            (stamp,),
            (
                binary(
                    "cilium-agent",
                    "daemon",
                    VersionCheck(("--version",), f"cilium-agent {version}"),
                ),
                binary(
                    "cilium-dbg", "cilium-dbg", VersionCheck(("version",), f"Client: {version}")
                ),
                # Its help is all it says without an agent; it has the version compiled in.
                binary(
                    "cilium-health",
                    "cilium-health",
                    VersionCheck(("--help",), "Cilium health status API"),
                ),
                # Run without CNI_COMMAND, a CNI plugin prints its "about" line.
                binary(
                    "cilium-cni",
                    "plugins/cilium-cni",
                    VersionCheck((), f"Cilium CNI plugin {version}"),
                ),
                # No version to report: run, it rewrites the host's sysctl.d.
                binary("cilium-sysctlfix", "tools/sysctlfix", None),
            ),
        ),
        GoBuild(
            GO_MODULE,
            "cilium-operator",
            VERSION,
            (stamp,),
            # No version flag: its help names the command it runs as.
            (
                binary(
                    "cilium-operator-generic",
                    "operator",
                    VersionCheck(("--help",), "Run cilium-operator-generic"),
                ),
            ),
            tags=("ipam_provider_operator",),  # upstream's operator/Makefile, generic variant
        ),
        GoBuild(
            HELM_GO_MODULE,
            "helm",
            HELM_VERSION,
            (
                f"-X {HELM_MODULE}/internal/version.version={HELM_VERSION}",
                f"-X {HELM_MODULE}/internal/version.gitTreeState=clean",
            ),
            (
                GoBinary(
                    "helm",
                    f"{HELM_MODULE}/cmd/helm",
                    "binary",
                    HELM_VERSION,
                    VersionCheck(("version", "--short"), HELM_VERSION),
                ),
            ),
        ),
    ]


def images(rel: KubernetesRelease) -> list[ImageSpec]:
    return [
        ImageSpec(
            AGENT_IMAGE,
            f"{CONTEXTS}/agent",
            (
                "cilium-agent",
                "cilium-dbg",
                "cilium-health",
                "cilium-sysctlfix",
                "cilium-cni",
                "bpf",
                "init-container.sh",
                "install-plugin.sh",
                "cni-uninstall.sh",
            ),
            debian_base=True,
        ),
        ImageSpec(OPERATOR_IMAGE, f"{CONTEXTS}/operator", ("cilium-operator-generic",)),
    ]


def components(rel: KubernetesRelease) -> dict[str, str]:
    return {"cilium": VERSION, "helm": HELM_VERSION, "clang": "19", "debian": "trixie"}


def module_files(go: str, rel: KubernetesRelease, log: Path) -> dict[str, Path]:
    source = gobuild.module_source(
        go, GOMOD_DIR / rel.minor / GO_MODULE, f"{MODULE}@{VERSION}", log
    )
    return {name: source / relative for name, relative in MODULE_FILES.items()}


def render(helm: Path, chart: Path, rel: KubernetesRelease, cni: str) -> str:
    """``helm template`` of the chart for Cilium chained after ``cni``: its manifest."""
    with tempfile.TemporaryDirectory(prefix="k8slab-helm-") as home:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": home,
            **{
                f"HELM_{kind}_HOME": os.path.join(home, kind)
                for kind in ("CACHE", "CONFIG", "DATA")
            },
        }
        result = subprocess.run(
            [
                str(helm),
                "template",
                NAME,
                str(chart),
                "--namespace",
                NAMESPACE,
                "--kube-version",
                rel.version,
                "--values",
                str(VALUES_DIR / "common.yaml"),
                "--values",
                str(VALUES_DIR / f"{cni}.yaml"),
                "--set",
                f"image.override={AGENT_IMAGE}",
                "--set",
                f"operator.image.override={OPERATOR_IMAGE}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=env,
        )
    if result.returncode != 0:
        tail = " ".join(result.stderr.split())[-300:]
        raise BundleError(
            f"helm template of Cilium's chart for {cni} exited {result.returncode}: {tail}"
        )
    return result.stdout


def render_manifests(rel: KubernetesRelease, placed: dict[str, Path], into: Path) -> list[str]:
    """One manifest per CNI Cilium chains after, written into the part."""
    names = []
    for cni in CHAINED_AFTER:
        name = manifest_path(cni)
        (into / name).parent.mkdir(parents=True, exist_ok=True)
        (into / name).write_text(render(placed["helm"], placed["chart"], rel, cni))
        names.append(name)
    return names


def manifest_problems(text: str, cni: str) -> list[str]:
    """What is wrong with a rendered manifest: it must run only the part's images, chain
    after ``cni``'s network in generic-veth mode, and mask the machine's sysctls."""
    objects = [o for o in yaml.safe_load_all(text) if o]
    by_kind = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    problems = []
    wanted = {AGENT_IMAGE, OPERATOR_IMAGE}
    used = set()
    for obj in objects:
        spec = obj.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            used.add(container["image"])
    if used - wanted:
        problems.append(f"{cni}: runs images the part does not hold: {sorted(used - wanted)}")
    config = by_kind.get(("ConfigMap", "cilium-config"), {}).get("data", {})
    target = yaml.safe_load((VALUES_DIR / f"{cni}.yaml").read_text())["cni"]["chainingTarget"]
    expected = {"cni-chaining-mode": "generic-veth", "cni-chaining-target": target}
    for key, value in expected.items():
        if config.get(key) != value:
            problems.append(f"{cni}: cilium-config {key} is {config.get(key)!r}, not {value!r}")
    agent = by_kind.get(("DaemonSet", "cilium"))
    if agent is None:
        return [*problems, f"{cni}: no cilium DaemonSet"]
    mounts = {
        m["mountPath"]: m.get("readOnly", False)
        for c in agent["spec"]["template"]["spec"]["containers"]
        if c["name"] == "cilium-agent"
        for m in c.get("volumeMounts", [])
    }
    for sysctl in CILIUM_MACHINE_SYSCTLS:
        if not mounts.get(f"/host/proc/sys/{sysctl.replace('.', '/')}"):
            problems.append(f"{cni}: the agent's view of {sysctl} is not read-only")
    return problems


def _check(rel: KubernetesRelease, placed: dict[str, Path]) -> list[str]:
    return [
        problem
        for cni in CHAINED_AFTER
        for problem in manifest_problems(placed[manifest_path(cni)].read_text(), cni)
    ]


def _pin_command(rel: KubernetesRelease) -> str:
    """Both recipe modules: cilium's with the packages of its commands as tools, helm's."""
    commands = " ".join(f"{MODULE}/{p}" for p in PACKAGES)
    return (
        f"bundle/gomod/pin-part.sh {rel.minor} {GO_MODULE} {MODULE}@{VERSION} {commands} && "
        f"bundle/gomod/pin-part.sh {rel.minor} {HELM_GO_MODULE} {HELM_MODULE}@{HELM_VERSION} "
        f"{HELM_MODULE}/cmd/helm"
    )


PART = Part(
    NAME,
    "Cilium chained after flannel or bridge, enforcing NetworkPolicy",
    modules=(GO_MODULE, HELM_GO_MODULE),
    go_builds=go_builds,
    components=components,
    pin_command=_pin_command,
    contexts=(CONTEXTS,),
    images=images,
    debian_packages=DEBIAN_PACKAGES,
    sources=module_files,
    rendered=render_manifests,
    check=PartCheck("the rendered manifests: images, chaining, masked sysctls", _check),
)
