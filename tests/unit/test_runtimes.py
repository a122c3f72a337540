"""Container runtimes per node: what the spec accepts and refuses, what each node renders,
and which optional bundle parts a lab needs (the parts themselves: test_bundle.py); the
sandboxed runtime classes the spec refuses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.lab_specs import mutated, write_spec
from tests.molecule import MoleculeSetupError, run_molecule
from toolkit import constants
from toolkit.bundle import parts
from toolkit.errors import SpecError
from toolkit.lab import render
from toolkit.lab.schema import REFUSED_RUNTIME_CLASSES, REFUSED_RUNTIMES, RUNTIMES
from toolkit.lab.spec import load_lab
from toolkit.lab.state import LabState


def _docker_worker(data: dict[str, Any]) -> None:
    data["nodes"]["workers"].append(
        {"name": "w2", "address": "172.30.9.22", "container_runtime": "docker"}
    )


def test_a_worker_may_run_docker_beside_containerd_workers(tmp_path: Path) -> None:
    lab = load_lab(write_spec(tmp_path, mutated(_docker_worker)))
    assert lab.node("w1").container_runtime == "containerd"
    assert lab.node("w2").container_runtime == "docker"
    assert lab.bundle_parts == {"cri-dockerd": [lab.node("w2")]}
    assert lab.node("w2").runtime_field == "nodes.workers[1].container_runtime"
    assert lab.node("w1").runtime_field == "container_runtime"


def test_a_lab_of_containerd_needs_no_optional_part(tmp_path: Path) -> None:
    assert load_lab(write_spec(tmp_path, mutated(lambda d: None))).bundle_parts == {}


def test_docker_at_the_top_with_containerd_control_planes_is_accepted(tmp_path: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        data["container_runtime"] = "docker"
        for node in data["nodes"]["control_planes"]:
            node["container_runtime"] = "containerd"

    lab = load_lab(write_spec(tmp_path, mutated(change)))
    assert [n.container_runtime for n in lab.control_planes] == ["containerd"] * 3
    assert lab.node("w1").container_runtime == "docker"


def test_a_control_plane_given_docker_is_refused_with_the_reason(tmp_path: Path) -> None:
    spec = mutated(lambda d: d["nodes"]["control_planes"][1].update(container_runtime="docker"))
    with pytest.raises(SpecError) as refused:
        load_lab(write_spec(tmp_path, spec))
    message = str(refused.value)
    assert "nodes.control_planes[1].container_runtime: is 'docker'; control planes run " in message
    assert "etcd restore and drills" in message
    assert "control_planes[0]" not in message


@pytest.mark.parametrize("runtime", sorted(REFUSED_RUNTIMES))
@pytest.mark.parametrize("where", ["top", "node"])
def test_a_refused_runtime_is_named_with_its_reason(
    tmp_path: Path, runtime: str, where: str
) -> None:
    if where == "top":
        spec = mutated(lambda d: d.update(container_runtime=runtime))
        field = "container_runtime"
    else:
        spec = mutated(lambda d: d["nodes"]["workers"][0].update(container_runtime=runtime))
        field = "nodes.workers[0].container_runtime"
    with pytest.raises(SpecError) as refused:
        load_lab(write_spec(tmp_path, spec))
    expected = (
        f"{field}: {runtime!r} is not offered: {REFUSED_RUNTIMES[runtime]}; "
        "use one of: containerd, docker"
    )
    assert expected in str(refused.value)


def test_every_accepted_runtime_has_a_socket_a_unit_and_a_known_part() -> None:
    assert set(RUNTIMES) == set(constants.CRI_RUNTIMES)
    assert not set(RUNTIMES) & set(REFUSED_RUNTIMES)
    for cri in constants.CRI_RUNTIMES.values():
        assert cri.bundle_part in ("", *parts.NAMES)
    assert constants.CRI_RUNTIMES["docker"].bundle_part == "cri-dockerd"
    sockets = [cri.socket for cri in constants.CRI_RUNTIMES.values()]
    assert len(set(sockets)) == len(sockets)


def test_each_node_gets_its_runtime_socket_and_unit(tmp_path: Path) -> None:
    lab = load_lab(write_spec(tmp_path, mutated(_docker_worker)))
    state = LabState(lab.name, tmp_path / "state")
    state.ensure_key_pair()
    hosts = render.inventory(lab, state)["all"]["children"]["k8s_cluster"]["children"]
    w1, w2 = hosts["kube_node"]["hosts"]["w1"], hosts["kube_node"]["hosts"]["w2"]
    cp1 = hosts["kube_control_plane"]["hosts"]["cp1"]
    assert w2["k8slab_container_runtime"] == "docker"
    assert w2["k8slab_cri_socket"] == "/run/cri-dockerd.sock"
    assert w2["k8slab_cri_endpoint"] == "unix:///run/cri-dockerd.sock"
    assert w2["k8slab_cri_service"] == "cri-docker.service"
    for node in (w1, cp1):
        assert node["k8slab_cri_endpoint"] == "unix:///run/containerd/containerd.sock"
        assert node["k8slab_cri_service"] == "containerd.service"


def test_the_docker_engine_scenario_is_refused_without_its_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("K8SLAB_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(
        MoleculeSetupError, match=r"`k8slab bundle build --kubernetes v1\.34\.4 --with cri-dockerd`"
    ):
        run_molecule("docker_engine", ["test"], {})


def test_the_runtimes_lab_needs_the_cri_dockerd_part_for_its_docker_worker() -> None:
    lab = load_lab("runtimes")
    (docker,) = lab.bundle_parts["cri-dockerd"]
    assert (docker.name, docker.runtime_field) == (
        "w-docker",
        "nodes.workers[1].container_runtime",
    )
    assert [n.container_runtime for n in lab.control_planes] == ["containerd"]


@pytest.mark.parametrize("name", sorted(REFUSED_RUNTIME_CLASSES))
def test_a_runtime_class_is_refused_with_its_reason(tmp_path: Path, name: str) -> None:
    spec = mutated(lambda d: d.update(runtime_classes=[name]))
    with pytest.raises(SpecError) as refused:
        load_lab(write_spec(tmp_path, spec))
    expected = f"runtime_classes[0]: {name!r} is not offered: {REFUSED_RUNTIME_CLASSES[name]}"
    assert expected in str(refused.value)


def test_gvisor_is_refused_for_what_was_measured_wherever_a_spec_asks_for_it() -> None:
    # The two routes tried in a lab node, each without patching gVisor or containerd.
    reason = REFUSED_RUNTIME_CLASSES["gvisor"]
    assert REFUSED_RUNTIMES["gvisor"] == reason
    assert "failed to set OOM Score on shim" in reason
    assert "CAP_SYS_RESOURCE" in reason
    assert "runc shim never finishes starting a Pod's containers" in reason


@pytest.mark.parametrize(
    ("classes", "expected"),
    [
        (["nosuch"], "runtime_classes[0]: unknown value 'nosuch'; no runtime class is offered"),
        ([1], "runtime_classes[0]: is int 1, expected a class name"),
        ("gvisor", "runtime_classes: is str 'gvisor', expected a list"),
    ],
)
def test_a_wrong_runtime_classes_is_refused_by_field(
    tmp_path: Path, classes: Any, expected: str
) -> None:
    spec = mutated(lambda d: d.update(runtime_classes=classes))
    with pytest.raises(SpecError, match=re.escape(expected)):
        load_lab(write_spec(tmp_path, spec))


def test_an_empty_runtime_classes_asks_for_none(tmp_path: Path) -> None:
    lab = load_lab(write_spec(tmp_path, mutated(lambda d: d.update(runtime_classes=[]))))
    assert lab.name == "demo"
