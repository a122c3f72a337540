"""The spec's ``addons:``: the names it accepts and refuses, the memory the add-ons need on
the nodes, what the inventory hands the roles, and a lab refused before any host when its
bundle lacks the addons part."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.helpers.lab_specs import mutated, with_base_bundle, with_part, write_spec
from toolkit.cli import main
from toolkit.errors import BundleError, SpecError
from toolkit.hosts import lifecycle
from toolkit.lab import addons, render
from toolkit.lab.spec import Lab, load_lab
from toolkit.lab.state import LabState
from toolkit.provision.run import check_bundle


def _with(names: list[Any], worker_mb: int = 2560) -> Any:
    def change(data: dict[str, Any]) -> None:
        data["addons"] = names
        data["nodes"]["workers"][0]["memory_mb"] = worker_mb

    return change


def _problems(tmp_path: Path, change: Any) -> str:
    with pytest.raises(SpecError) as refused:
        load_lab(write_spec(tmp_path, mutated(change)))
    return str(refused.value)


def test_every_add_on_may_be_asked_for_and_comes_back_in_the_catalogue_s_order(
    tmp_path: Path,
) -> None:
    lab = load_lab(write_spec(tmp_path, mutated(_with(["logging", "metrics-server"]))))
    assert lab.addons == ("metrics-server", "logging")
    everything = load_lab(write_spec(tmp_path / "all", mutated(_with(list(addons.NAMES)))))
    assert everything.addons == addons.NAMES == ("metrics-server", "monitoring", "logging")
    assert load_lab(write_spec(tmp_path / "none", mutated(lambda d: None))).addons == ()


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["metrics"], "addons[0]: unknown add-on 'metrics'; use some of: metrics-server"),
        (["logging", "logging"], "addons[1]: 'logging' is named twice"),
        ([3], "addons[0]: is int 3, expected an add-on name"),
        (["dashboard"], "addons[0]: 'dashboard' is not offered: neither the Kubernetes Dashboard"),
        (["grafana"], "'grafana' is not offered: Grafana is AGPL-licensed"),
        (["loki"], "'loki' is not offered: Loki is AGPL-licensed"),
    ],
)
def test_a_wrong_add_on_is_refused_by_its_index_with_the_fix(
    tmp_path: Path, names: list[Any], expected: str
) -> None:
    assert expected in _problems(tmp_path, _with(names))


def test_addons_must_be_a_list(tmp_path: Path) -> None:
    message = _problems(tmp_path, lambda d: d.update(addons="monitoring"))
    assert "addons: is str 'monitoring', expected a list" in message


def test_a_worker_too_small_for_the_add_ons_is_refused_with_what_it_needs(tmp_path: Path) -> None:
    message = _problems(tmp_path, _with(list(addons.NAMES), worker_mb=1024))
    per_node = addons.MEMORY_MB["node-exporter"] + addons.MEMORY_MB["vlagent"]
    assert (
        f"nodes.workers[0].memory_mb: is 1024; with the add-ons metrics-server, monitoring, "
        f"logging node w1 needs at least {1024 + per_node}"
    ) in message
    assert "nodes.workers: have 0 MiB left for the add-ons' other Pods" in message


def test_the_workers_together_must_hold_the_add_ons_deployments(tmp_path: Path) -> None:
    # 2048 holds a worker's own share and the DaemonSets, not Prometheus and the rest too.
    message = _problems(tmp_path, _with(list(addons.NAMES), worker_mb=2048))
    assert "nodes.workers: have 848 MiB left for the add-ons' other Pods, which need 1152" in (
        message
    )
    assert "raise the workers' memory_mb by 304 in all" in message


def test_add_ons_need_a_worker(tmp_path: Path) -> None:
    def no_workers(data: dict[str, Any]) -> None:
        data["addons"] = ["logging"]
        del data["nodes"]["workers"]

    assert "addons: add-ons run on workers; add a worker" in _problems(tmp_path, no_workers)


def test_the_inventory_hands_the_roles_the_add_ons_and_what_they_need(tmp_path: Path) -> None:
    lab = load_lab(write_spec(tmp_path, mutated(_with(["logging"]))))
    values = render.inventory(lab, LabState("demo", tmp_path / "state"))["all"]["vars"]
    assert values["k8slab_addons"] == ["logging"]
    assert values["k8slab_addons_memory_mb"] == addons.MEMORY_MB
    # Only what reads the kubelets or etcd changes them.
    assert values["k8slab_kubelet_serving_certs"] is False
    assert values["k8slab_etcd_metrics_on_node_address"] is False
    monitored = load_lab(write_spec(tmp_path / "m", mutated(_with(["monitoring"]))))
    values = render.inventory(monitored, LabState("demo", tmp_path / "state"))["all"]["vars"]
    assert values["k8slab_kubelet_serving_certs"] is True
    assert values["k8slab_etcd_metrics_on_node_address"] is True


@pytest.fixture
def addons_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Lab:
    """A lab asking for add-ons, and a complete base bundle without any part."""
    monkeypatch.setenv("K8SLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("K8SLAB_STATE_DIR", str(tmp_path / "state"))
    lab = load_lab(write_spec(tmp_path, mutated(_with(["monitoring", "logging"]))))
    return with_base_bundle(lab)


REFUSAL = (
    "addons is [monitoring, logging], which needs the bundle's addons part: build it with "
    "`k8slab bundle build --kubernetes v1.34.4 --with addons`"
)


def test_a_lab_with_add_ons_needs_the_addons_part(addons_lab: Lab) -> None:
    with pytest.raises(BundleError) as refused:
        check_bundle(addons_lab)
    assert str(refused.value) == f"{addons_lab.source}: {REFUSAL}"
    with_part(addons_lab, "addons")
    check_bundle(addons_lab)


def test_up_refuses_it_before_any_host_exists(
    addons_lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[str] = []
    monkeypatch.setattr(lifecycle, "up_hosts", lambda lab, progress: created.append(lab.name))
    result = CliRunner().invoke(main, ["up", str(addons_lab.source)])
    assert result.exit_code == 1
    assert REFUSAL in " ".join(result.output.split())
    assert created == []
