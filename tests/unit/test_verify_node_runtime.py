"""The judgements of verify's node checks, on the text nodes give, without a lab."""

from __future__ import annotations

import json

from toolkit.verify.node_runtime import (
    cni_configurations,
    cni_plugin_types,
    endpoint_flag,
    kubelet_connected_to,
    missing_plugins_command,
    pod_left_command,
    read_kubelet_config,
    runtime_identity,
    sandboxes,
)

CONTAINERD = "/run/containerd/containerd.sock"
# The runtime's end of a connection (its socket's path, inode 23456) and the kubelet's.
SS_UNIX = (
    f'u_str ESTAB 0 0 {CONTAINERD} 23456 * 23455 users:(("containerd",pid=100,fd=12))\n'
    'u_str ESTAB 0 0 * 23455 * 23456 users:(("kubelet",pid=200,fd=15))\n'
    'u_str ESTAB 0 0 * 30001 * 30002 users:(("systemd",pid=1,fd=40))\n'
    "u_str LISTEN 0 4096\n"
)
CTR_CONTAINERS = """CONTAINER    IMAGE                              RUNTIME
aaa          registry.k8s.io/pause:3.10         io.containerd.runc.v2
bbb          registry.k8s.io/kube-proxy:v1.34.4 io.containerd.runc.v2
"""

# cri-dockerd: each sandbox is a container of the pause image in Docker Engine.
DOCKER_CONTAINERS = """CONTAINER ID\tIMAGE
aaa\tregistry.k8s.io/pause:3.10
bbb\tsha256:0123abcd
"""


def running(*pairs: tuple[str, str]) -> str:
    containers = [{"podSandboxId": sandbox, "metadata": {"name": name}} for name, sandbox in pairs]
    return json.dumps({"containers": containers})


def test_the_kubelet_config_is_a_mapping_or_nothing() -> None:
    assert read_kubelet_config("authentication:\n  anonymous:\n    enabled: false\n") == {
        "authentication": {"anonymous": {"enabled": False}}
    }
    assert read_kubelet_config("- a list\n") == {}
    assert read_kubelet_config("key: [unclosed\n") == {}
    assert read_kubelet_config("") == {}


def test_the_runtime_endpoint_is_read_from_kubeadms_flags() -> None:
    flags = f'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix://{CONTAINERD} --v=2"\n'
    assert endpoint_flag(flags) == f"unix://{CONTAINERD}"
    assert endpoint_flag('KUBELET_KUBEADM_ARGS="--v=2"\n') == ""


def test_the_kubelet_is_connected_only_through_the_runtimes_own_socket() -> None:
    assert kubelet_connected_to(SS_UNIX, CONTAINERD)
    assert not kubelet_connected_to(SS_UNIX, "/run/crio/crio.sock")
    # The kubelet's connection goes elsewhere: the runtime's socket has no kubelet peer.
    assert not kubelet_connected_to(SS_UNIX.replace("* 23456 users", "* 99999 users"), CONTAINERD)
    assert not kubelet_connected_to("", CONTAINERD)


def test_sandboxes_without_pause_and_containers_without_a_ready_sandbox() -> None:
    healthy = sandboxes("aaa\n", CTR_CONTAINERS, running(("kube-proxy", "aaa")))
    assert healthy.ready == {"aaa"} and not healthy.without_pause and not healthy.orphans
    broken = sandboxes("aaa\nccc\n", CTR_CONTAINERS, running(("coredns", "ddd")))
    assert broken.without_pause == {"ccc"} and broken.orphans == {"coredns"}
    assert not sandboxes("", CTR_CONTAINERS, running()).ready


def test_a_docker_nodes_sandboxes_are_its_pause_containers() -> None:
    healthy = sandboxes("aaa\n", DOCKER_CONTAINERS, running(("kube-proxy", "aaa")))
    assert healthy.ready == {"aaa"} and not healthy.without_pause and not healthy.orphans
    assert sandboxes("bbb\n", DOCKER_CONTAINERS, running()).without_pause == {"bbb"}


def test_the_runtime_names_itself_in_crictls_version() -> None:
    containerd = (
        "Version:  0.1.0\nRuntimeName:  containerd\nRuntimeVersion:  v2.1.4\n"
        "RuntimeApiVersion:  v1\n"
    )
    assert runtime_identity(containerd) == ("containerd", "v2.1.4")
    docker = "Version:  0.1.0\nRuntimeName:  docker\nRuntimeVersion:  28.5.1\n"
    assert runtime_identity(docker) == ("docker", "28.5.1")
    # No runtime behind the socket: crictl prints its error and no field.
    assert runtime_identity("") == ("", "")


def test_what_is_left_of_a_deleted_pod_is_asked_by_its_name_label() -> None:
    command = pod_left_command("unix:///run/cri-dockerd.sock", "lifecycle-w2")
    label = "--label io.kubernetes.pod.name=lifecycle-w2"
    assert command == (
        f"crictl --runtime-endpoint unix:///run/cri-dockerd.sock --timeout 10s ps -q {label}; "
        f"crictl --runtime-endpoint unix:///run/cri-dockerd.sock --timeout 10s pods -q "
        f"--state ready {label}"
    )


def test_cni_configurations_in_the_runtimes_order_and_their_plugins() -> None:
    listing = "99-loopback.conf\n10-flannel.conflist\nREADME\n"
    assert cni_configurations(listing) == ["10-flannel.conflist", "99-loopback.conf"]
    assert cni_plugin_types({"plugins": [{"type": "flannel"}, {"type": "portmap"}]}) == [
        "flannel",
        "portmap",
    ]
    assert cni_plugin_types({"type": "bridge"}) == ["bridge"]
    assert missing_plugins_command(["bridge", "portmap"]) == (
        "test -x /opt/cni/bin/bridge || echo bridge ; test -x /opt/cni/bin/portmap || echo portmap"
    )
