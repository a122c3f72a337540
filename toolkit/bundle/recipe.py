"""What a bundle of one Kubernetes version holds and how each piece is made.

The recipe files (Go module folders, image build contexts, pause.c) live in the
repository's ``bundle/`` folder; this module turns a :class:`KubernetesRelease` into the
list of binaries and images to produce from them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.bundle.manifest import VersionCheck
from toolkit.paths import REPO_ROOT
from toolkit.versions import KubernetesRelease

RECIPE_DIR = REPO_ROOT / "bundle"
GOMOD_DIR = RECIPE_DIR / "gomod"
IMAGES_DIR = RECIPE_DIR / "images"
PAUSE_SOURCE = RECIPE_DIR / "pause" / "pause.c"
# k8slab's own Go programs, each a module folder of its own.
OWN_SOURCES_DIR = RECIPE_DIR / "src"

KUBERNETES_COMMANDS = (
    "kubeadm",
    "kubelet",
    "kubectl",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
)
CNI_PLUGINS = {
    "bridge": "plugins/main/bridge",
    "host-local": "plugins/ipam/host-local",
    "loopback": "plugins/main/loopback",
    "portmap": "plugins/meta/portmap",
}
# k8slab's own flannel CNI plugin (bundle/src/flannel-cni): the proxy does not serve
# flannel's.
FLANNEL_CNI_VERSION = "v1.0.0"
# The build date stamped into Kubernetes binaries: the release tag's time, so that two
# builds of one version are byte-identical.
KUBERNETES_BUILD_DATES = {
    "v1.34.4": "2026-02-10T12:53:36Z",
    "v1.35.4": "2026-04-15T18:01:22Z",
}


@dataclass(frozen=True)
class GoBinary:
    name: str  # file name in the bundle
    package: str
    kind: str  # "binary" or "cni-plugin"
    version: str
    check: VersionCheck | None  # None: a program with no way to report its version


@dataclass(frozen=True)
class GoBuild:
    """One ``go build`` in one of the recipe's Go modules."""

    module: str  # folder under bundle/gomod/<minor>/
    component: str
    version: str
    ldflags: tuple[str, ...]
    binaries: tuple[GoBinary, ...]
    own_source: bool = False  # the module is k8slab's own, under bundle/src/
    cgo: bool = False  # linked statically against libc, as upstream does
    # `go test -c` of each package (e2e.test): a test binary. Fields added for the optional
    # parts stay out of repr(): the base bundle's recipe hash is made from repr() and must
    # not change with them (parts hash dataclasses.asdict(), which has every field).
    test: bool = field(default=False, repr=False)
    # Go build tags (upstream's variant of a command: cilium-operator-generic).
    tags: tuple[str, ...] = field(default=(), repr=False)

    def module_dir(self, minor: str) -> Path:
        if self.own_source:
            return OWN_SOURCES_DIR / self.module
        return GOMOD_DIR / minor / self.module


@dataclass(frozen=True)
class KconfigBuild:
    """A C program compiled here from its release tarball, unpatched, configured by its own
    defaults (``make defconfig``, Kconfig) with a few options set on top; ``make NAME``
    writes the program as ``NAME`` (toolkit/bundle/kconfig.py)."""

    name: str  # the make target, the file it writes and the artifact (bin/<name>)
    version: str
    url: str  # the release tarball, from a registry this machine may use
    sha256: str  # the release's published sha256: the download must match it
    options: tuple[str, ...]  # .config lines set after defconfig ("CONFIG_STATIC=y")
    check: VersionCheck


@dataclass(frozen=True)
class ImageSpec:
    tag: str
    context: str  # folder under bundle/images/
    binaries: tuple[str, ...]  # bundle files (or folders) copied into the build context
    debian_base: bool = False
    # Built FROM another image of the same build (``--build-arg BASE=<tag>``) instead; out
    # of repr() like GoBuild.test.
    base_image: str = field(default="", repr=False)

    @property
    def archive(self) -> str:
        name = self.tag.rsplit("/", 1)[-1].replace(":", "_")
        return f"images/{name}.tar"


def kubernetes_ldflags(version: str) -> tuple[str, ...]:
    major, minor = version.lstrip("v").split(".")[:2]
    stamps = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": KUBERNETES_BUILD_DATES[version],
    }
    return tuple(
        f"-X {package}.{key}={value}"
        for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for key, value in stamps.items()
    )


def _kubernetes_check(name: str, version: str) -> VersionCheck:
    if name == "kubeadm":
        return VersionCheck(("version", "-o", "short"), version)
    if name == "kubectl":
        return VersionCheck(("version", "--client"), f"Client Version: {version}")
    return VersionCheck(("--version",), f"Kubernetes {version}")


def go_builds(rel: KubernetesRelease) -> list[GoBuild]:
    k8s = rel.version
    etcd = f"v{rel.etcd}"
    return [
        GoBuild(
            "kubernetes",
            "kubernetes",
            k8s,
            kubernetes_ldflags(k8s),
            tuple(
                GoBinary(c, f"k8s.io/kubernetes/cmd/{c}", "binary", k8s, _kubernetes_check(c, k8s))
                for c in KUBERNETES_COMMANDS
            ),
        ),
        GoBuild(
            "etcd",
            "etcd",
            etcd,
            (),
            (
                GoBinary(
                    "etcd",
                    "go.etcd.io/etcd/server/v3",
                    "binary",
                    etcd,
                    VersionCheck(("--version",), f"etcd Version: {rel.etcd}"),
                ),
                GoBinary(
                    "etcdctl",
                    "go.etcd.io/etcd/etcdctl/v3",
                    "binary",
                    etcd,
                    VersionCheck(("version",), f"etcdctl version: {rel.etcd}"),
                ),
                GoBinary(
                    "etcdutl",
                    "go.etcd.io/etcd/etcdutl/v3",
                    "binary",
                    etcd,
                    VersionCheck(("version",), f"etcdutl version: {rel.etcd}"),
                ),
            ),
        ),
        GoBuild(
            "crictl",
            "cri-tools",
            rel.crictl,
            (f"-X sigs.k8s.io/cri-tools/pkg/version.Version={rel.crictl}",),
            (
                GoBinary(
                    "crictl",
                    "sigs.k8s.io/cri-tools/cmd/crictl",
                    "binary",
                    rel.crictl,
                    VersionCheck(("--version",), f"crictl version {rel.crictl}"),
                ),
            ),
        ),
        GoBuild(
            "cni-plugins",
            "cni-plugins",
            rel.cni_plugins,
            (
                "-X github.com/containernetworking/plugins/pkg/utils/buildversion."
                f"BuildVersion={rel.cni_plugins}",
            ),
            tuple(
                GoBinary(
                    name,
                    f"github.com/containernetworking/plugins/{path}",
                    "cni-plugin",
                    rel.cni_plugins,
                    # A CNI plugin run without CNI_COMMAND prints its "about" line.
                    VersionCheck((), f"CNI {name} plugin {rel.cni_plugins}"),
                )
                for name, path in CNI_PLUGINS.items()
            ),
        ),
        GoBuild(
            "coredns",
            "coredns",
            rel.coredns,
            (),
            (
                GoBinary(
                    "coredns",
                    "github.com/coredns/coredns",
                    "binary",
                    rel.coredns,
                    VersionCheck(("-version",), f"CoreDNS-{rel.coredns.lstrip('v')}"),
                ),
            ),
        ),
        GoBuild(
            "flannel",
            "flannel",
            rel.flannel,
            (f"-X github.com/flannel-io/flannel/pkg/version.Version={rel.flannel}",),
            (
                GoBinary(
                    "flanneld",
                    "github.com/flannel-io/flannel",
                    "binary",
                    rel.flannel,
                    VersionCheck(("--version",), rel.flannel),
                ),
            ),
            cgo=True,  # its UDP backend is C on amd64
        ),
        GoBuild(
            "flannel-cni",
            "flannel-cni",
            FLANNEL_CNI_VERSION,
            (f"-X main.Version={FLANNEL_CNI_VERSION}",),
            (
                GoBinary(
                    "flannel",
                    "k8slab.local/flannel-cni",
                    "cni-plugin",
                    FLANNEL_CNI_VERSION,
                    VersionCheck((), f"CNI flannel plugin {FLANNEL_CNI_VERSION}"),
                ),
            ),
            own_source=True,
        ),
    ]


def images(rel: KubernetesRelease) -> list[ImageSpec]:
    """The images kubeadm asks for (``kubeadm config images list``), then flannel's."""
    k8s = rel.version
    return [
        ImageSpec(f"registry.k8s.io/kube-apiserver:{k8s}", "kube-component", ("kube-apiserver",)),
        ImageSpec(
            f"registry.k8s.io/kube-controller-manager:{k8s}",
            "kube-component",
            ("kube-controller-manager",),
        ),
        ImageSpec(f"registry.k8s.io/kube-scheduler:{k8s}", "kube-component", ("kube-scheduler",)),
        ImageSpec(f"registry.k8s.io/kube-proxy:{k8s}", "kube-proxy", ("kube-proxy",), True),
        ImageSpec(f"registry.k8s.io/coredns/coredns:{rel.coredns}", "coredns", ("coredns",)),
        ImageSpec(rel.pause_image, "pause", ("pause",)),
        ImageSpec(
            f"registry.k8s.io/etcd:{rel.etcd}-{rel.etcd_image_revision}",
            "etcd",
            ("etcd", "etcdctl", "etcdutl"),
        ),
        ImageSpec(f"ghcr.io/flannel-io/flannel:{rel.flannel}", "flannel", ("flanneld",), True),
    ]


def kubeadm_image_tags(rel: KubernetesRelease) -> list[str]:
    return [spec.tag for spec in images(rel) if spec.tag.startswith("registry.k8s.io/")]


def components(rel: KubernetesRelease) -> dict[str, str]:
    return {
        "kubernetes": rel.version,
        "etcd": rel.etcd,
        "coredns": rel.coredns,
        "pause": rel.pause,
        "crictl": rel.crictl,
        "cni-plugins": rel.cni_plugins,
        "flannel": rel.flannel,
        "flannel-cni": FLANNEL_CNI_VERSION,
    }


def hash_files(digest: hashlib._Hash, folders: list[Path]) -> None:
    """Feed every file under ``folders`` (names and bytes, in order) into ``digest``."""
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(RECIPE_DIR)).encode() + b"\0")
            digest.update(path.read_bytes())


def recipe_hash(rel: KubernetesRelease, base_image: str) -> str:
    """A hash of everything a bundle of ``rel`` is made from: the pins and flags above, the
    userland base image and the recipe files its builds and images name (their Go modules
    of its minor, own sources, pause.c, image contexts). Only those: the optional parts'
    folders beside them (their own sources under src/ too) never change it, so adding or
    changing a part rebuilds no bundle."""
    digest = hashlib.sha256()
    digest.update(repr((go_builds(rel), images(rel), components(rel), base_image)).encode())
    modules = sorted({b.module for b in go_builds(rel) if not b.own_source})
    own = sorted({b.module for b in go_builds(rel) if b.own_source})
    contexts = sorted({spec.context for spec in images(rel)})
    hash_files(
        digest,
        [GOMOD_DIR / rel.minor / m for m in modules]
        + [OWN_SOURCES_DIR / m for m in own]
        + [PAUSE_SOURCE.parent]
        + [IMAGES_DIR / c for c in contexts],
    )
    return digest.hexdigest()[:16]
