"""The bundle's images inside a lab node: containerd imports them and runs the pause image.

A throwaway host container of the node image (the same run flags as lab hosts), with
containerd from Debian's archive as the runtime role would install it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator

import pytest

from toolkit.bundle import Manifest, build
from toolkit.hosts.engine import host_run_args, privileged_allowed
from toolkit.hosts.image import build_node_image
from toolkit.progress import Progress
from toolkit.versions import DEFAULT_KUBERNETES_VERSION

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SOCKET = "unix:///run/containerd/containerd.sock"


def _in(node: str, command: str, timeout: float = 300) -> str:
    result = subprocess.run(
        ["docker", "exec", node, "sh", "-c", command],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def node_with_bundle() -> Iterator[tuple[str, Manifest]]:
    bundle = build(DEFAULT_KUBERNETES_VERSION, progress=Progress())
    image = build_node_image(Progress()).tag
    name = f"k8slab-bundle-node-{os.getpid()}"
    volume = f"{name}-containerd"
    subprocess.run(
        [
            "docker",
            "run",
            "-d",
            f"--name={name}",
            *host_run_args(privileged_allowed(image)),
            # containerd cannot mount its snapshots on the container's own overlay root.
            f"--volume={volume}:/var/lib/containerd",
            f"--volume={bundle.path}:/bundle:ro",
            image,
            "/sbin/init",
        ],
        check=True,
        capture_output=True,
    )
    try:
        for _ in range(60):
            state = subprocess.run(
                ["docker", "exec", name, "systemctl", "is-system-running"],
                capture_output=True,
                text=True,
            ).stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(1)
        _in(
            name,
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
            "apt-get install -y -qq containerd >/dev/null && systemctl start containerd",
            timeout=600,
        )
        yield name, bundle.manifest
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True)
        subprocess.run(["docker", "volume", "rm", volume], capture_output=True)


def test_containerd_in_a_node_imports_every_image_under_its_tag(
    node_with_bundle: tuple[str, Manifest],
) -> None:
    node, manifest = node_with_bundle
    for artifact in manifest.by_kind("image"):
        _in(node, f"ctr -n k8s.io images import /bundle/{artifact.path}")
    listed = _in(node, "ctr -n k8s.io images ls -q").split()
    assert set(manifest.image_tags()) <= set(listed)
    # The kubelet sees them through the CRI, as crictl from the bundle shows.
    cri = _in(node, f"/bundle/bin/crictl --runtime-endpoint {SOCKET} images")
    for tag in manifest.image_tags():
        repository, version = tag.rsplit(":", 1)
        assert any(line.split()[:2] == [repository, version] for line in cri.splitlines()), tag


def test_the_pause_image_runs_in_a_node(node_with_bundle: tuple[str, Manifest]) -> None:
    node, manifest = node_with_bundle
    pause = next(a for a in manifest.by_kind("image") if "/pause:" in a.tag)
    _in(node, f"ctr -n k8s.io images import /bundle/{pause.path}")
    _in(node, f"ctr -n k8s.io run -d {pause.tag} k8slab-pause")
    tasks = _in(node, "ctr -n k8s.io tasks ls")
    assert any("k8slab-pause" in line and "RUNNING" in line for line in tasks.splitlines())
    _in(node, "ctr -n k8s.io tasks kill -s SIGTERM k8slab-pause")


def test_the_cni_plugins_are_in_the_bundle_for_opt_cni_bin(
    node_with_bundle: tuple[str, Manifest],
) -> None:
    node, manifest = node_with_bundle
    for artifact in manifest.by_kind("cni-plugin"):
        about = _in(node, f"/bundle/{artifact.path} 2>&1")
        assert f"CNI {artifact.name} plugin" in about


FLANNEL_CONF = (
    '{"cniVersion":"1.0.0","name":"cbr0","type":"flannel",'
    '"delegate":{"hairpinMode":true,"isDefaultGateway":true}}'
)


def _flannel_cni(node: str, command: str, container: str) -> str:
    env = (
        f"CNI_COMMAND={command} CNI_CONTAINERID={container} CNI_NETNS=/var/run/netns/{container} "
        "CNI_IFNAME=eth0 CNI_PATH=/bundle/cni"
    )
    return _in(node, f"echo '{FLANNEL_CONF}' | env {env} /bundle/cni/flannel")


def test_the_flannel_cni_plugin_gives_a_pod_an_address_in_the_nodes_subnet(
    node_with_bundle: tuple[str, Manifest],
) -> None:
    node, _ = node_with_bundle
    _in(
        node,
        "mkdir -p /run/flannel && printf '%s\\n' FLANNEL_NETWORK=10.244.0.0/16 "
        "FLANNEL_SUBNET=10.244.1.1/24 FLANNEL_MTU=1450 FLANNEL_IPMASQ=true "
        "> /run/flannel/subnet.env && ip netns add pod-a",
    )
    try:
        result = json.loads(_flannel_cni(node, "ADD", "pod-a"))
        address = result["ips"][0]["address"]
        assert address.startswith("10.244.1.")
        assert address in _in(node, "ip netns exec pod-a ip -o addr show eth0")
        assert "mtu 1450" in _in(node, "ip netns exec pod-a ip link show eth0")
        assert "default via 10.244.1.1" in _in(node, "ip netns exec pod-a ip route")
        _flannel_cni(node, "DEL", "pod-a")
        assert _in(node, "ls /var/lib/cni/flannel").strip() == ""
        _flannel_cni(node, "DEL", "pod-a")  # DEL must succeed when repeated
    finally:
        _in(node, "ip netns del pod-a")
