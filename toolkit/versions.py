"""The Kubernetes versions the toolkit can supply, and what each is paired with.

The default is the newest patch of the newest minor whose kubelet starts on cgroup v1
hosts with default settings: 1.35 and later refuse cgroup v1 unless the kubelet
configuration sets ``failCgroupV1: false``.
"""

from __future__ import annotations

from dataclasses import dataclass

from toolkit.errors import SpecError


@dataclass(frozen=True)
class KubernetesRelease:
    """One Kubernetes version and the components a cluster of it runs with.

    etcd, CoreDNS and pause are the versions kubeadm of that release asks for
    (``DefaultEtcdVersion``, ``CoreDNSVersion``, ``PauseVersion`` in
    cmd/kubeadm/app/constants); the CNI plugins are those of its build/dependencies.yaml.
    crictl follows the Kubernetes minor where the Go module proxy has that release; for
    1.35 it does not serve cri-tools v1.35.0, so 1.35 gets v1.34.0, the crictl its own
    build/dependencies.yaml pins.
    """

    version: str
    needs_fail_cgroup_v1_false: bool
    etcd: str
    etcd_image_revision: str
    coredns: str
    pause: str
    crictl: str
    cni_plugins: str
    flannel: str

    @property
    def pause_image(self) -> str:
        """The pause image: the bundle builds it, containerd runs every Pod sandbox from it
        (the roles take its name from the bundle's manifest, which this names)."""
        return f"registry.k8s.io/pause:{self.pause}"

    @property
    def minor(self) -> str:
        """``v1.34`` for ``v1.34.4``."""
        return ".".join(self.version.split(".")[:2])


# A declared table: one row a release, alike in shape by design (duplicates lists the rows).
RELEASES: dict[str, KubernetesRelease] = {
    "v1.34.4": KubernetesRelease(
        "v1.34.4",
        needs_fail_cgroup_v1_false=False,
        etcd="3.6.5",
        etcd_image_revision="0",
        coredns="v1.12.1",
        pause="3.10.1",
        crictl="v1.34.0",
        cni_plugins="v1.7.1",
        flannel="v0.27.4",
    ),
    "v1.35.4": KubernetesRelease(
        "v1.35.4",
        needs_fail_cgroup_v1_false=True,
        etcd="3.6.6",
        etcd_image_revision="0",
        coredns="v1.13.1",
        pause="3.10.1",
        crictl="v1.34.0",
        cni_plugins="v1.8.0",
        flannel="v0.27.4",
    ),
}
DEFAULT_KUBERNETES_VERSION = "v1.34.4"


def supported_versions() -> list[str]:
    return list(RELEASES)


def release(version: str) -> KubernetesRelease:
    """The release for ``version``; a clear error listing the supported ones otherwise."""
    try:
        return RELEASES[version]
    except KeyError:
        raise SpecError(
            f"Kubernetes version {version!r} is not one the toolkit can supply; "
            f"use one of: {', '.join(RELEASES)}"
        ) from None
