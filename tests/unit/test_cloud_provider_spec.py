"""A lab's cloud in its spec (`cloud_provider`, each node's `zone`): what is accepted and
refused, what the inventory gives the roles, and the bundle part such a lab needs before
any host is made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.helpers.lab_specs import external, mutated, with_base_bundle, with_part, write_spec
from toolkit.cli import main
from toolkit.errors import BundleError, SpecError
from toolkit.hosts import lifecycle
from toolkit.lab import render
from toolkit.lab.spec import Lab, load_lab
from toolkit.lab.state import LabState
from toolkit.provision.run import check_bundle

ZONES = {"cp1": "zone-a", "cp2": "zone-b", "cp3": "zone-c", "w1": "zone-a"}


def _cloud(data: dict[str, Any]) -> None:
    data["cloud_provider"] = "k8slab"
    for group in ("control_planes", "workers"):
        for node in data["nodes"][group]:
            node["zone"] = ZONES[node["name"]]


def _refused(tmp_path: Path, change: Any) -> str:
    with pytest.raises(SpecError) as refused:
        load_lab(write_spec(tmp_path, mutated(change)))
    return str(refused.value)


def test_a_lab_without_cloud_provider_has_none_as_kubeadm_does(tmp_path: Path) -> None:
    lab = load_lab(write_spec(tmp_path, mutated(lambda d: None)))
    assert lab.cloud_provider == "none"
    assert {n.zone for n in lab.nodes} == {""}
    assert lab.needed_parts == {}


def test_a_k8slab_cloud_zones_every_node_and_the_region_is_the_lab(tmp_path: Path) -> None:
    lab = load_lab(write_spec(tmp_path, mutated(_cloud)))
    assert lab.cloud_provider == "k8slab"
    assert {n.name: n.zone for n in lab.nodes} == ZONES
    assert lab.region == "demo"
    assert lab.needed_parts == {"cloud-provider": "cloud_provider is 'k8slab'"}


def test_the_shipped_single_lab_has_the_cloud() -> None:
    lab = load_lab("single")
    assert lab.cloud_provider == "k8slab"
    assert [(n.name, n.zone) for n in lab.nodes] == [("cp1", "zone-a"), ("w1", "zone-b")]
    assert load_lab("ha-stacked").cloud_provider == load_lab("ha-external").cloud_provider == "none"


def test_an_unknown_cloud_provider_is_refused_with_the_choices(tmp_path: Path) -> None:
    message = _refused(tmp_path, lambda d: d.update(cloud_provider="aws"))
    assert "cloud_provider: unknown value 'aws'; use one of: none, k8slab" in message


def test_a_node_without_a_zone_in_a_cloud_is_refused_naming_the_field(tmp_path: Path) -> None:
    message = _refused(tmp_path, lambda d: (_cloud(d), d["nodes"]["workers"][0].pop("zone")))
    assert "nodes.workers[0].zone: missing: cloud_provider is 'k8slab'" in message
    assert "1 problem " in message


def test_a_zone_without_a_cloud_is_refused(tmp_path: Path) -> None:
    message = _refused(tmp_path, lambda d: d["nodes"]["workers"][0].update(zone="zone-a"))
    assert "nodes.workers[0].zone: is 'zone-a' but the lab has no cloud provider" in message
    assert "add `cloud_provider: k8slab` or remove the zone" in message


@pytest.mark.parametrize("zone", ["-a", "a b", "zone/a", "x" * 64, "", 3])
def test_a_zone_that_is_no_label_value_is_refused(tmp_path: Path, zone: object) -> None:
    message = _refused(
        tmp_path, lambda d: (_cloud(d), d["nodes"]["control_planes"][1].update(zone=zone))
    )
    assert "nodes.control_planes[1].zone: " in message


def test_an_etcd_host_has_no_zone(tmp_path: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        _cloud(data)
        external(data)
        data["nodes"]["etcd"][0]["zone"] = "zone-a"

    message = _refused(tmp_path, change)
    assert "nodes.etcd[0].zone: an etcd host is not a Kubernetes node" in message
    assert load_lab(write_spec(tmp_path / "ok", mutated(lambda d: (_cloud(d), external(d)))))


def test_the_inventory_gives_the_roles_the_cloud(tmp_path: Path) -> None:
    lab = load_lab(write_spec(tmp_path, mutated(_cloud)))
    state = LabState(lab.name, tmp_path / "state")
    state.ensure_key_pair()
    inventory = render.inventory(lab, state)["all"]
    assert inventory["vars"]["k8slab_cloud_provider"] == "k8slab"
    assert inventory["vars"]["k8slab_region"] == "demo"
    planes = inventory["children"]["k8s_cluster"]["children"]["kube_control_plane"]["hosts"]
    assert planes["cp2"]["k8slab_zone"] == "zone-b"


@pytest.fixture
def cloud_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Lab:
    """A lab with the k8slab cloud, and a complete base bundle without any part."""
    monkeypatch.setenv("K8SLAB_CACHE_DIR", str(tmp_path / "cache"))
    return with_base_bundle(load_lab(write_spec(tmp_path, mutated(_cloud))))


def test_a_cloud_lab_without_the_part_is_refused_before_any_host(
    cloud_lab: Lab, isolated_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refusal = (
        f"{cloud_lab.source}: cloud_provider is 'k8slab', which needs the bundle's "
        "cloud-provider part: build it with `k8slab bundle build --kubernetes v1.34.4 "
        "--with cloud-provider`"
    )
    with pytest.raises(BundleError) as refused:
        check_bundle(cloud_lab)
    assert str(refused.value) == refusal
    created: list[str] = []
    monkeypatch.setattr(lifecycle, "up_hosts", lambda lab, progress: created.append(lab.name))
    result = CliRunner().invoke(main, ["up", str(cloud_lab.source)])
    assert result.exit_code == 1
    assert refusal in " ".join(result.output.split())
    assert created == []
    with_part(cloud_lab, "cloud-provider")
    check_bundle(cloud_lab)
