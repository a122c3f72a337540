"""The bundle's optional ``conformance`` part: upstream's conformance image and every image
its ``[Conformance]`` specs run, all built here (``k8slab bundle build --with conformance``).

Names: the test images are tagged under k8slab's own registry name, ``k8slab.test``, and
e2e.test is told so with a repo list (``KUBE_TEST_REPO_LIST``, read by
test/utils/image/manifest.go): only the registry part of a name can be redirected, so the
images keep upstream's names and tags. An image the suite wants and this part lacks then
fails to pull by a name no registry serves, instead of being fetched from upstream's; and
none of these can be mistaken for upstream's digests. The pause image is the base bundle's
(``gcRegistry`` keeps its default, registry.k8s.io, as kubeadm's images do).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from toolkit.bundle.gobuild import module_source
from toolkit.bundle.images import DEBIAN_MIRROR
from toolkit.bundle.manifest import VersionCheck
from toolkit.bundle.part import Part, PartCheck
from toolkit.bundle.recipe import (
    GOMOD_DIR,
    GoBinary,
    GoBuild,
    ImageSpec,
    KconfigBuild,
    kubernetes_ldflags,
)
from toolkit.constants import IMAGE_REGISTRY
from toolkit.errors import BundleError
from toolkit.versions import KubernetesRelease

NAME = "conformance"
REGISTRY = IMAGE_REGISTRY
E2E_REGISTRY = f"{REGISTRY}/e2e-test-images"
# The repo list e2e.test reads: the keys of RegistryList (test/utils/image/manifest.go)
# this part serves; every other registry keeps upstream's default.
REPO_LIST = {"promoterE2eRegistry": E2E_REGISTRY, "gcEtcdRegistry": REGISTRY}
REPO_LIST_FILE = "repo-list.yaml"
# Where the conformance image is found on the nodes, and what the runner Pod runs.
RUNNER_REPOSITORY = f"{REGISTRY}/conformance"
# The part's Debian base: what the test images run besides their own program. dig
# (bind9-dnsutils), curl, nc, ss (iproute2), iperf and bash for agnhost and the DNS
# probes; Apache's server alone (apache2-bin: the image has its own configuration) and
# nginx. Not Debian's busybox (see BUSYBOX_SHA256).
DEBIAN_PACKAGES = (
    "apache2-bin",
    "bash",
    "bind9-dnsutils",
    "curl",
    "iperf",
    "iproute2",
    "media-types",
    "netcat-openbsd",
    "nginx",
)


@dataclass(frozen=True)
class E2EImages:
    """The tags the e2e.test of one Kubernetes minor asks for (test/utils/image/manifest.go)
    for the images its [Conformance] specs run; the build checks them against the
    suite's own ``--list-images``."""

    agnhost: str
    busybox: str
    httpd: str
    httpd_new: str
    nginx: str
    jessie_dnsutils: str
    nautilus: str
    sample_apiserver: str
    etcd: str
    nonewprivs: str
    # The module k8s.io/sample-apiserver that upstream built sample_apiserver from.
    sample_apiserver_module: str
    # The busybox release upstream's busybox image carries (docker-library busybox:X).
    busybox_release: str


E2E_IMAGES = {
    "v1.34": E2EImages(
        agnhost="2.56",
        busybox="1.37.0-1",
        httpd="2.4.38-4",
        httpd_new="2.4.39-4",
        nginx="1.14-4",
        jessie_dnsutils="1.7",
        nautilus="1.7",
        sample_apiserver="1.29.2",
        etcd="3.6.4-0",
        nonewprivs="1.3",
        sample_apiserver_module="v0.29.2",
        busybox_release="1.37.0",
    ),
}
# busybox is upstream's release, unpatched, compiled here from its defconfig, static (the
# image is FROM scratch); docker-library's busybox image, upstream's base for
# e2e-test-images/busybox, is made from defconfig too (with a few more applets and build
# fixes). Not Debian's busybox-static: Debian reverts upstream's commit 9c143ce5
# (revert-9c143ce52da11ec3d21a3491c3749841d3dc10f0.patch) and brings its behaviour back
# only behind FEATURE_DI_ENV_HACK, which only its installer build sets, so Debian's ash
# drops every environment entry whose name is not a shell identifier, and the Secret and
# ConfigMap specs that pass `data-1=value-1` to `sh -c env` fail. The tarball is the one
# Debian's archive keeps as busybox's .orig.tar.bz2: byte for byte busybox.net's release,
# whose published sha256 is pinned here.
BUSYBOX_SHA256 = {
    "1.37.0": "3311dff32e746499f4df0d5df04d7eb396382d7e108bb9250e7b519b837043a4",
}
# The recipe folders this part owns (PART, at the end, declares them).
MODULE = "conformance"
SAMPLE_APISERVER_MODULE = "sample-apiserver"
CONTEXTS = "conformance"


def e2e_images(rel: KubernetesRelease) -> E2EImages:
    try:
        return E2E_IMAGES[rel.minor]
    except KeyError:
        raise BundleError(
            f"the conformance part has no recipe for Kubernetes {rel.minor}: add its image "
            f"tags to E2E_IMAGES in {__name__} and run `bundle/gomod/pin-conformance.sh "
            f"{rel.minor} {rel.version} SAMPLE_APISERVER`"
        ) from None


def _pin_command(rel: KubernetesRelease) -> str:
    return (
        f"bundle/gomod/pin-conformance.sh {rel.minor} {rel.version} "
        f"{e2e_images(rel).sample_apiserver_module}"
    )


def ginkgo_version(rel: KubernetesRelease) -> str:
    """The ginkgo the part's module pins: the one k8s.io/kubernetes of ``rel`` requires."""
    for line in (GOMOD_DIR / rel.minor / MODULE / "go.mod").read_text().splitlines():
        fields = line.split()
        if fields[:1] == ["github.com/onsi/ginkgo/v2"] or fields[1:2] == [
            "github.com/onsi/ginkgo/v2"
        ]:
            return next(f for f in fields if f.startswith("v2."))
    raise BundleError(f"{GOMOD_DIR / rel.minor / MODULE}/go.mod does not require ginkgo v2")


def go_builds(rel: KubernetesRelease) -> list[GoBuild]:
    k8s = rel.version
    images = e2e_images(rel)
    ginkgo = ginkgo_version(rel)
    return [
        GoBuild(
            MODULE,
            "e2e.test",
            k8s,
            # As the base bundle's binaries: e2e.test then reports the release, not
            # v0.0.0-master, in its log and its JUnit.
            kubernetes_ldflags(k8s),
            (
                GoBinary(
                    "e2e.test",
                    "k8s.io/kubernetes/test/e2e",
                    "binary",
                    k8s,
                    VersionCheck(("--version",), k8s),
                ),
            ),
            test=True,
        ),
        GoBuild(
            MODULE,
            "ginkgo",
            ginkgo,
            (),
            (
                GoBinary(
                    "ginkgo",
                    "github.com/onsi/ginkgo/v2/ginkgo",
                    "binary",
                    ginkgo,
                    VersionCheck(("version",), f"Ginkgo Version {ginkgo.lstrip('v')}"),
                ),
            ),
        ),
        GoBuild(
            MODULE,
            "go-runner",
            k8s,
            (),
            # It has no way to report a version: run, it starts the suite.
            (
                GoBinary(
                    "go-runner",
                    "k8s.io/kubernetes/test/conformance/image/go-runner",
                    "binary",
                    k8s,
                    None,
                ),
            ),
        ),
        GoBuild(
            MODULE,
            "agnhost",
            images.agnhost,
            (f"-X main.Version={images.agnhost}",),
            (
                GoBinary(
                    "agnhost",
                    "k8s.io/kubernetes/test/images/agnhost",
                    "binary",
                    images.agnhost,
                    VersionCheck(("--version",), images.agnhost),
                ),
            ),
        ),
        GoBuild(
            MODULE,
            "nonewprivs",
            images.nonewprivs,
            (),
            (
                GoBinary(
                    "nnp",
                    "k8s.io/kubernetes/test/images/nonewprivs",
                    "binary",
                    images.nonewprivs,
                    # No version to report: run, it prints the uid it runs as.
                    VersionCheck((), "Effective uid: "),
                ),
            ),
        ),
        GoBuild(
            SAMPLE_APISERVER_MODULE,
            "sample-apiserver",
            images.sample_apiserver_module,
            (),
            (
                GoBinary(
                    "sample-apiserver",
                    "k8s.io/sample-apiserver",
                    "binary",
                    images.sample_apiserver_module,
                    # No version flag; its help names what it is.
                    VersionCheck(("--help",), "wardle"),
                ),
            ),
        ),
    ]


def kconfig_builds(rel: KubernetesRelease) -> list[KconfigBuild]:
    """busybox, from its release tarball in Debian's archive (see BUSYBOX_SHA256)."""
    version = e2e_images(rel).busybox_release
    return [
        KconfigBuild(
            "busybox",
            version,
            f"{DEBIAN_MIRROR}/pool/main/b/busybox/busybox_{version}.orig.tar.bz2",
            BUSYBOX_SHA256[version],
            ("CONFIG_STATIC=y",),
            VersionCheck(("--help",), f"BusyBox v{version} "),
        )
    ]


def runner_image(rel: KubernetesRelease) -> str:
    return f"{RUNNER_REPOSITORY}:{rel.version}"


def images(rel: KubernetesRelease) -> list[ImageSpec]:
    """The conformance image, then every image the [Conformance] specs run; agnhost before
    nautilus, which is built on it."""
    tags = e2e_images(rel)
    agnhost = f"{E2E_REGISTRY}/agnhost:{tags.agnhost}"
    ctx = CONTEXTS
    return [
        ImageSpec(
            runner_image(rel),
            f"{ctx}/runner",
            ("e2e.test", "ginkgo", "go-runner", "kubectl", "cluster"),
            debian_base=True,
        ),
        ImageSpec(
            agnhost,
            f"{ctx}/agnhost",
            ("agnhost", "coredns", "localhost.crt", "localhost.key"),
            debian_base=True,
        ),
        ImageSpec(
            f"{E2E_REGISTRY}/nautilus:{tags.nautilus}",
            f"{ctx}/nautilus",
            ("nautilus.jpg", "data.json"),
            base_image=agnhost,
        ),
        ImageSpec(f"{E2E_REGISTRY}/busybox:{tags.busybox}", f"{ctx}/busybox", ("busybox",), True),
        ImageSpec(f"{E2E_REGISTRY}/httpd:{tags.httpd}", f"{ctx}/httpd", (), True),
        ImageSpec(f"{E2E_REGISTRY}/httpd:{tags.httpd_new}", f"{ctx}/httpd", (), True),
        ImageSpec(f"{E2E_REGISTRY}/nginx:{tags.nginx}", f"{ctx}/nginx", (), True),
        ImageSpec(
            f"{E2E_REGISTRY}/jessie-dnsutils:{tags.jessie_dnsutils}",
            f"{ctx}/jessie-dnsutils",
            (),
            True,
        ),
        ImageSpec(
            f"{E2E_REGISTRY}/nonewprivs:{tags.nonewprivs}",
            f"{ctx}/nonewprivs",
            ("nnp",),
            debian_base=True,
        ),
        ImageSpec(
            f"{E2E_REGISTRY}/sample-apiserver:{tags.sample_apiserver}",
            f"{ctx}/sample-apiserver",
            ("sample-apiserver",),
        ),
        # The Aggregator spec's etcd sidecar runs /usr/local/bin/etcd and checks no
        # version: the base bundle's etcd, under the tag the suite asks for.
        ImageSpec(f"{REGISTRY}/etcd:{tags.etcd}", "etcd", ("etcd", "etcdctl", "etcdutl")),
    ]


def test_image_tags(rel: KubernetesRelease) -> list[str]:
    """The images the specs run (every image of the part but the conformance image)."""
    return [spec.tag for spec in images(rel) if spec.tag != runner_image(rel)]


def components(rel: KubernetesRelease) -> dict[str, str]:
    tags = e2e_images(rel)
    return {
        "kubernetes": rel.version,
        "ginkgo": ginkgo_version(rel),
        "agnhost": tags.agnhost,
        "busybox": tags.busybox_release,
        "nonewprivs": tags.nonewprivs,
        "sample-apiserver": tags.sample_apiserver_module,
        "debian": "trixie",
    }


# The base bundle's binaries the part's images carry.
BASE_BINARIES = ("kubectl", "coredns", "etcd", "etcdctl", "etcdutl")
# Files of the k8s.io/kubernetes module the images carry, by the name the build uses.
MODULE_FILES = {
    "cluster": "cluster",
    "localhost.crt": "test/images/agnhost/porter/localhost.crt",
    "localhost.key": "test/images/agnhost/porter/localhost.key",
    "nautilus.jpg": "test/images/nautilus/html/nautilus.jpg",
    "data.json": "test/images/nautilus/html/data.json",
}


def module_files(go: str, rel: KubernetesRelease, log: Path) -> dict[str, Path]:
    """The files of the Kubernetes source the images copy, by the name the build uses."""
    folder = GOMOD_DIR / rel.minor / MODULE
    source = module_source(go, folder, f"k8s.io/kubernetes@{rel.version}", log)
    return {name: source / relative for name, relative in MODULE_FILES.items()}


def listed_images(e2e_test: Path, repo_list: Path) -> list[str]:
    """The images the suite may use, as ``e2e.test --list-images`` names them under
    ``repo_list``."""
    result = subprocess.run(
        [str(e2e_test), "--list-images"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "KUBE_TEST_REPO_LIST": str(repo_list)},
    )
    if result.returncode != 0:
        tail = " ".join((result.stdout + result.stderr).split())[-300:]
        raise BundleError(f"e2e.test --list-images exited {result.returncode}: {tail}")
    return result.stdout.split()


def names_problems(rel: KubernetesRelease, listed: list[str]) -> list[str]:
    """The part's test images whose name e2e.test would not ask for: a wrong tag here
    means a spec pulling a name nothing serves."""
    wanted = set(listed)
    return [
        f"{tag}: e2e.test {rel.version} does not list this image (its --list-images with "
        f"the part's repo list)"
        for tag in test_image_tags(rel)
        if tag not in wanted
    ]


def _names_problems(rel: KubernetesRelease, placed: dict[str, Path]) -> list[str]:
    return names_problems(rel, listed_images(placed["e2e.test"], placed[REPO_LIST_FILE]))


PART = Part(
    NAME,
    "the conformance suite and every image its [Conformance] specs run",
    modules=(MODULE, SAMPLE_APISERVER_MODULE),
    go_builds=go_builds,
    components=components,
    kconfig_builds=kconfig_builds,
    pin_command=_pin_command,
    contexts=(CONTEXTS,),
    images=images,
    debian_packages=DEBIAN_PACKAGES,
    base_artifacts=BASE_BINARIES,
    sources=module_files,
    config_file=REPO_LIST_FILE,
    config=REPO_LIST,
    check=PartCheck("the images' names against e2e.test --list-images", _names_problems),
)
