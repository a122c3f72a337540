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
    version: str
    needs_fail_cgroup_v1_false: bool


RELEASES: dict[str, KubernetesRelease] = {
    "v1.34.4": KubernetesRelease("v1.34.4", needs_fail_cgroup_v1_false=False),
    "v1.35.4": KubernetesRelease("v1.35.4", needs_fail_cgroup_v1_false=True),
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
