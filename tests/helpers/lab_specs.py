"""Lab specs for tests: a valid one to start from, ways to change it, and the invalid
changes every command must refuse by file, field and fix (shared by the spec and CLI tests)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from toolkit.bundle import parts
from toolkit.bundle.build import base_recipe
from toolkit.bundle.manifest import Manifest
from toolkit.bundle.store import bundle_dir, load
from toolkit.lab.spec import Lab
from toolkit.versions import release

BASE: dict[str, Any] = {
    "name": "demo",
    "provider": "docker",
    "kubernetes_version": "v1.34.4",
    "etcd_topology": "stacked",
    "container_runtime": "containerd",
    "cni": "flannel",
    "network": {
        "subnet": "172.30.9.0/24",
        "pod_cidr": "10.244.0.0/16",
        "service_cidr": "10.96.0.0/16",
    },
    "api_endpoint": {"vip": "172.30.9.100", "port": 8443},
    "nodes": {
        "control_planes": [
            {"name": "cp1", "address": "172.30.9.11"},
            {"name": "cp2", "address": "172.30.9.12"},
            {"name": "cp3", "address": "172.30.9.13"},
        ],
        "workers": [{"name": "w1", "address": "172.30.9.21"}],
    },
}


def write_spec(tmp_path: Path, data: Any, name: str = "demo") -> Path:
    path = tmp_path / name / "lab.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def mutated(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    change(data)
    return data


def with_base_bundle(lab: Lab) -> Lab:
    """``lab``, with a complete base bundle of its version (no optional part) in the cache
    (``K8SLAB_CACHE_DIR``, which the caller points at a temporary folder)."""
    folder = bundle_dir(lab.kubernetes_version)
    folder.mkdir(parents=True)
    recipe = base_recipe(release(lab.kubernetes_version))
    Manifest(lab.kubernetes_version, "gomod", {}, [], recipe).write(folder)
    return lab


def with_part(lab: Lab, name: str, recipe: str | None = None) -> Path:
    """Put part ``name`` (no artifacts) into ``lab``'s base bundle, built from today's
    recipe unless ``recipe`` says otherwise; its folder."""
    version = lab.kubernetes_version
    folder = parts.part_dir(version, name)
    folder.mkdir()
    if recipe is None:
        recipe = parts.recipe_hash(parts.get(name), release(version), load(version))
    Manifest(version, "gomod", {}, [], recipe, part=name).write(folder)
    return folder


def external(data: dict[str, Any]) -> None:
    data["etcd_topology"] = "external"
    data["nodes"]["etcd"] = [{"name": f"etcd{i}", "address": f"172.30.9.3{i}"} for i in (1, 2, 3)]


# A declared table: one row a refused spec (its id, the change, the message expected),
# alike in shape by design (duplicates lists the rows).
INVALID: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    (
        "name-with-trailing-newline",
        lambda d: d.update(name="demo\n"),
        "name: 'demo\\n' is not a valid name",
    ),
    (
        "node-name-with-trailing-newline",
        lambda d: d["nodes"]["workers"][0].update(name="w1\n"),
        "nodes.workers[0].name: 'w1\\n' is not a valid hostname",
    ),
    (
        "even-etcd",
        lambda d: (external(d), d["nodes"]["etcd"].pop()),
        "nodes.etcd: has 2 members; etcd needs an odd number",
    ),
    (
        "even-stacked-members",
        lambda d: d["nodes"]["control_planes"].pop(),
        "nodes.control_planes: has 2 nodes, so stacked etcd would have an even member count",
    ),
    (
        "external-without-etcd",
        lambda d: d.update(etcd_topology="external"),
        "nodes.etcd: is empty but etcd_topology is 'external'",
    ),
    (
        "stacked-with-etcd-hosts",
        lambda d: (external(d), d.update(etcd_topology="stacked")),
        "nodes.etcd: lists etcd hosts but etcd_topology is 'stacked'",
    ),
    (
        "no-control-planes",
        lambda d: d["nodes"].update(control_planes=[]),
        "nodes.control_planes: is empty; a cluster needs at least one control plane",
    ),
    ("unknown-provider", lambda d: d.update(provider="hyperv"), "provider: unknown value 'hyperv'"),
    (
        "unknown-runtime",
        lambda d: d.update(container_runtime="rkt"),
        "container_runtime: unknown value 'rkt'; use one of: containerd, docker",
    ),
    (
        "unknown-node-runtime",
        lambda d: d["nodes"]["workers"][0].update(container_runtime="rkt"),
        "nodes.workers[0].container_runtime: unknown value 'rkt'",
    ),
    (
        "refused-node-runtime",
        lambda d: d["nodes"]["workers"][0].update(container_runtime="cri-o"),
        "nodes.workers[0].container_runtime: 'cri-o' is not offered: CRI-O ",
    ),
    (
        "docker-control-planes",
        lambda d: d.update(container_runtime="docker"),
        "nodes.control_planes[0].container_runtime: is 'docker' (from the top-level "
        "container_runtime); control planes run containerd",
    ),
    ("unknown-cni", lambda d: d.update(cni="flanel"), "cni: unknown value 'flanel'; use one of:"),
    (
        "pods-overlap-subnet",
        lambda d: d["network"].update(pod_cidr="172.30.0.0/16"),
        "network.pod_cidr: 172.30.0.0/16 overlaps network.subnet",
    ),
    (
        "services-overlap-pods",
        lambda d: d["network"].update(service_cidr="10.244.128.0/20"),
        "network.service_cidr: 10.244.128.0/20 overlaps network.pod_cidr",
    ),
    (
        "address-outside-subnet",
        lambda d: d["nodes"]["workers"][0].update(address="172.30.8.21"),
        "nodes.workers[0].address: 172.30.8.21 is outside the lab subnet 172.30.9.0/24",
    ),
    (
        "address-twice",
        lambda d: d["nodes"]["workers"][0].update(address="172.30.9.12"),
        "nodes.workers[0].address: 172.30.9.12 is already used by nodes.control_planes[1]",
    ),
    (
        "address-is-gateway",
        lambda d: d["nodes"]["workers"][0].update(address="172.30.9.1"),
        "nodes.workers[0].address: 172.30.9.1 is the lab network's gateway",
    ),
    (
        "vip-outside-subnet",
        lambda d: d["api_endpoint"].update(vip="10.0.0.1"),
        "api_endpoint.vip: 10.0.0.1 is outside the lab subnet",
    ),
    (
        "vip-is-node",
        lambda d: d["api_endpoint"].update(vip="172.30.9.11"),
        "api_endpoint.vip: 172.30.9.11 is the address of nodes.control_planes[0]",
    ),
    (
        "duplicate-names",
        lambda d: d["nodes"]["workers"][0].update(name="cp2"),
        "nodes.workers[0].name: 'cp2' is already used by nodes.control_planes[1]",
    ),
    (
        "bad-hostname",
        lambda d: d["nodes"]["workers"][0].update(name="Worker_1"),
        "nodes.workers[0].name: 'Worker_1' is not a valid hostname",
    ),
    (
        "unsupported-version",
        lambda d: d.update(kubernetes_version="v1.20.0"),
        "kubernetes_version: 'v1.20.0' is not a version the toolkit can supply; "
        "use one of: v1.34.4",
    ),
    (
        "unknown-key-typo",
        lambda d: d.update(cni_plugin="flannel"),
        "cni_plugin: unknown key; did you mean 'cni'?",
    ),
    (
        "unknown-nested-key",
        lambda d: d["network"].update(podcidr="10.1.0.0/16"),
        "network.podcidr: unknown key; did you mean 'pod_cidr'?",
    ),
    ("missing-key", lambda d: d.pop("cni"), "cni: missing; add it (one of: flannel, bridge)"),
    (
        "wrong-type",
        lambda d: d["nodes"]["workers"][0].update(cpus="two"),
        "nodes.workers[0].cpus: is str 'two', expected a whole number",
    ),
    (
        "boolean-for-number",
        lambda d: d["api_endpoint"].update(port=True),
        "api_endpoint.port: is bool True, expected a whole number",
    ),
    (
        "bad-cidr",
        lambda d: d["network"].update(subnet="172.30.9.1/24"),
        "network.subnet: '172.30.9.1/24' is not an IPv4 network in CIDR form",
    ),
    (
        "name-folder-mismatch",
        lambda d: d.update(name="other"),
        "name: is 'other' but the folder is 'demo'; make them the same",
    ),
    (
        "api-port-is-apiserver-port",
        lambda d: d["api_endpoint"].update(port=6443),
        "api_endpoint.port: 6443 is the port every API server binds on its control plane",
    ),
    # What the spec alone dooms, refused before any host exists (issue 11).
    (
        "pod-cidr-smaller-than-a-node-range",
        lambda d: d["network"].update(pod_cidr="10.244.0.0/25"),
        "network.pod_cidr: 10.244.0.0/25 is smaller than the /24 Pod range that "
        "kube-controller-manager gives each node",
    ),
    (
        "pod-cidr-larger-than-kubeadm-allows",
        lambda d: d["network"].update(pod_cidr="100.0.0.0/7"),
        "network.pod_cidr: 100.0.0.0/7 is larger than kubeadm allows",
    ),
    (
        "pod-cidr-too-few-node-ranges",
        lambda d: d["network"].update(pod_cidr="10.244.0.0/23"),
        "network.pod_cidr: 10.244.0.0/23 holds 2 per-node Pod ranges (/24 each) but the lab "
        "has 4 Kubernetes nodes, so kube-controller-manager cannot give every node one; "
        "use a /22 or larger",
    ),
    (
        "service-cidr-larger-than-the-api-server-allows",
        lambda d: d["network"].update(service_cidr="10.96.0.0/11"),
        "network.service_cidr: 10.96.0.0/11 is larger than the API server allows",
    ),
    (
        "service-cidr-without-the-dns-address",
        lambda d: d["network"].update(service_cidr="10.96.0.0/29"),
        "network.service_cidr: 10.96.0.0/29 has no room for the cluster DNS Service",
    ),
    (
        "subnet-loopback",
        lambda d: d["network"].update(subnet="127.30.9.0/24"),
        "network.subnet: 127.30.9.0/24 overlaps the loopback range 127.0.0.0/8",
    ),
    (
        "subnet-link-local",
        lambda d: d["network"].update(subnet="169.254.9.0/24"),
        "network.subnet: 169.254.9.0/24 overlaps the link-local range 169.254.0.0/16",
    ),
    (
        "service-cidr-multicast",
        lambda d: d["network"].update(service_cidr="239.96.0.0/16"),
        "network.service_cidr: 239.96.0.0/16 overlaps the multicast range 224.0.0.0/4",
    ),
    (
        "api-port-is-the-kubelet-port",
        lambda d: d["api_endpoint"].update(port=10250),
        "api_endpoint.port: 10250 is the port of the kubelet on every control plane",
    ),
    (
        "api-port-is-sshd-port",
        lambda d: d["api_endpoint"].update(port=22),
        "api_endpoint.port: 22 is the port of sshd on every control plane",
    ),
    (
        "api-port-is-stacked-etcd-port",
        lambda d: d["api_endpoint"].update(port=2379),
        "api_endpoint.port: 2379 is the port of etcd's clients on every control plane",
    ),
    (
        "api-port-in-node-port-range",
        lambda d: d["api_endpoint"].update(port=30443),
        "api_endpoint.port: 30443 is in the NodePort range 30000-32767",
    ),
    (
        "control-plane-memory-below-kubeadm-minimum",
        lambda d: d["nodes"]["control_planes"][0].update(memory_mb=1024),
        "nodes.control_planes[0].memory_mb: is 1024; kubeadm's preflight wants at least 1700 "
        "on a control plane",
    ),
    (
        "control-plane-memory-from-defaults",
        lambda d: d.update(node_defaults={"memory_mb": 1536}),
        "nodes.control_planes[2].memory_mb: is 1536 (from node_defaults); kubeadm's preflight",
    ),
    (
        "control-plane-one-cpu",
        lambda d: d["nodes"]["control_planes"][1].update(cpus=1),
        "nodes.control_planes[1].cpus: is 1; kubeadm's preflight wants at least 2",
    ),
    (
        "too-little-memory",
        lambda d: d["nodes"]["workers"][0].update(memory_mb=128),
        "nodes.workers[0].memory_mb: is 128; it must be at least 512",
    ),
    (
        "load-balancer-pool-outside-the-subnet",
        lambda d: d.update(load_balancer={"pool": ["172.30.10.240/29"]}),
        "load_balancer.pool[0]: 172.30.10.240-172.30.10.247 is not inside the lab subnet "
        "172.30.9.0/24",
    ),
    (
        "load-balancer-pool-holding-a-node",
        lambda d: d.update(load_balancer={"pool": ["172.30.9.20-172.30.9.29"]}),
        "load_balancer.pool[0]: 172.30.9.20-172.30.9.29 holds 172.30.9.21, w1's address, "
        "nodes.workers[0].address;",
    ),
    (
        "load-balancer-pool-holding-the-vip",
        lambda d: d.update(load_balancer={"pool": ["172.30.9.96/28"]}),
        "holds 172.30.9.100, api_endpoint.vip, the API's virtual IP;",
    ),
    (
        "load-balancer-pool-holding-the-gateway",
        lambda d: d.update(load_balancer={"pool": ["172.30.9.0/28"]}),
        "holds 172.30.9.0, the network address of 172.30.9.0/24; 172.30.9.1, the lab "
        "network's gateway, which the host holds; 172.30.9.11, cp1's address",
    ),
    (
        "load-balancer-pool-holding-the-broadcast-address",
        lambda d: d.update(load_balancer={"pool": ["172.30.9.240/28"]}),
        "holds 172.30.9.255, the broadcast address of 172.30.9.0/24;",
    ),
    (
        "load-balancer-pool-with-host-bits",
        lambda d: d.update(load_balancer={"pool": ["172.30.9.241/29"]}),
        "load_balancer.pool[0]: '172.30.9.241/29' is not an IPv4 range (172.30.9.241/29 has "
        "host bits set)",
    ),
    (
        "load-balancer-pool-backwards",
        lambda d: d.update(load_balancer={"pool": ["172.30.9.250-172.30.9.240"]}),
        "load_balancer.pool[0]: '172.30.9.250-172.30.9.240' ends before it starts",
    ),
    (
        "load-balancer-pool-entries-overlapping",
        lambda d: d.update(
            load_balancer={"pool": ["172.30.9.240/29", "172.30.9.244-172.30.9.250"]}
        ),
        "load_balancer.pool[1]: 172.30.9.244-172.30.9.250 overlaps load_balancer.pool[0] "
        "172.30.9.240-172.30.9.247",
    ),
    (
        "load-balancer-pool-empty",
        lambda d: d.update(load_balancer={"pool": []}),
        "load_balancer.pool: is empty; a list of address ranges inside network.subnet",
    ),
    (
        "load-balancer-without-pool",
        lambda d: d.update(load_balancer={"range": ["172.30.9.240/29"]}),
        "load_balancer.pool: missing; add it",
    ),
    (
        "load-balancer-pool-not-a-string",
        lambda d: d.update(load_balancer={"pool": [24]}),
        "load_balancer.pool[0]: is int 24, expected an address range",
    ),
]


def private_key(path: Path, mode: int = 0o600, passphrase: bytes | None = None) -> Path:
    """An ed25519 private key in OpenSSH's format at ``path`` (as ssh-keygen writes it)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    data = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    return path


def existing(data: dict[str, Any], key: Path, **defaults: Any) -> None:
    """Make ``data`` a lab of existing hosts logged in to with ``key``."""
    data["provider"] = "existing"
    data["node_defaults"] = {"ssh_user": "admin", "ssh_key": str(key), **defaults}
