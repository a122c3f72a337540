"""The lab spec: the shipped labs load, and every class of invalid spec is refused by name."""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from toolkit.errors import LabNotFoundError, SpecError
from toolkit.lab.spec import available_labs, load_lab

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


def external(data: dict[str, Any]) -> None:
    data["etcd_topology"] = "external"
    data["nodes"]["etcd"] = [{"name": f"etcd{i}", "address": f"172.30.9.3{i}"} for i in (1, 2, 3)]


@pytest.mark.parametrize("lab", ["single", "ha-stacked", "ha-external"])
def test_shipped_labs_are_valid(lab: str) -> None:
    model = load_lab(lab)
    assert model.name == lab


def test_shipped_labs_have_the_documented_shape() -> None:
    stacked, ext, single = load_lab("ha-stacked"), load_lab("ha-external"), load_lab("single")
    assert (len(stacked.control_planes), len(stacked.etcd_hosts), len(stacked.workers)) == (3, 0, 2)
    assert (len(ext.control_planes), len(ext.etcd_hosts), len(ext.workers)) == (3, 3, 2)
    assert (len(single.control_planes), len(single.workers)) == (1, 1)
    assert [n.name for n in stacked.etcd_members] == ["cp1", "cp2", "cp3"]
    assert [n.name for n in ext.etcd_members] == ["etcd1", "etcd2", "etcd3"]
    assert set(available_labs()) >= {"single", "ha-stacked", "ha-external"}


def test_subnets_of_shipped_labs_do_not_collide() -> None:
    subnets = [load_lab(name).network.subnet for name in ("single", "ha-stacked", "ha-external")]
    for i, first in enumerate(subnets):
        for second in subnets[i + 1 :]:
            assert not first.overlaps(second)


def test_model_fields(tmp_path: Path) -> None:
    lab = load_lab(write_spec(tmp_path, mutated(lambda d: d.update(node_defaults={"cpus": 3}))))
    assert lab.api_vip == ipaddress.IPv4Address("172.30.9.100")
    assert lab.network.gateway == ipaddress.IPv4Address("172.30.9.1")
    assert all(node.cpus == 3 for node in lab.nodes)
    assert lab.node("w1").role == "workers"
    with pytest.raises(SpecError, match="no node 'nope'"):
        lab.node("nope")


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
        "container_runtime: unknown value 'rkt'; use one of: containerd",
    ),
    (
        "unknown-node-runtime",
        lambda d: d["nodes"]["workers"][0].update(container_runtime="docker"),
        "nodes.workers[0].container_runtime: unknown value 'docker'",
    ),
    ("unknown-cni", lambda d: d.update(cni="weave"), "cni: unknown value 'weave'; use one of:"),
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
    (
        "too-little-memory",
        lambda d: d["nodes"]["workers"][0].update(memory_mb=128),
        "nodes.workers[0].memory_mb: is 128; it must be at least 512",
    ),
]


@pytest.mark.parametrize(
    ("change", "expected"), [(c, e) for _, c, e in INVALID], ids=[i for i, _, _ in INVALID]
)
def test_invalid_spec_names_file_field_and_fix(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], expected: str
) -> None:
    path = write_spec(tmp_path, mutated(change))
    with pytest.raises(SpecError) as raised:
        load_lab(path)
    message = str(raised.value)
    assert expected in message
    assert str(path) in message or "lab.yml" in message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    def two_problems(d: dict[str, Any]) -> None:
        d.update(cni="weave", provider="hyperv")

    with pytest.raises(SpecError) as raised:
        load_lab(write_spec(tmp_path, mutated(two_problems)))
    assert "2 problems" in str(raised.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("- just\n- a list\n", "must be a YAML mapping (key: value), but it is a list"),
        ("", "must be a YAML mapping (key: value), but it is empty"),
        ("name: [unclosed\n", "not valid YAML at line"),
    ],
    ids=["list", "empty", "broken-yaml"],
)
def test_unusable_yaml(tmp_path: Path, content: str, expected: str) -> None:
    with pytest.raises(SpecError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load_lab(write_spec(tmp_path, content))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="file not found"):
        load_lab(tmp_path / "nothing" / "lab.yml")


def test_unreadable_file(tmp_path: Path) -> None:
    # A directory where the file belongs cannot be read, even by root (CI runs as root).
    path = tmp_path / "demo" / "lab.yml"
    path.mkdir(parents=True)
    with pytest.raises(SpecError, match="cannot read it"):
        load_lab(path)


def test_unknown_lab_lists_the_known_ones(tmp_path: Path) -> None:
    write_spec(tmp_path, BASE)
    with pytest.raises(LabNotFoundError, match=r"labs under .*: demo"):
        load_lab("nope", inventories=tmp_path)
