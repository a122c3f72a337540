"""``network_policy`` in a spec: what enforces NetworkPolicy (the model's policy_agent), the
inventory that tells the roles, and the bundle part it needs, refused before any host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from tests.helpers.lab_specs import mutated, with_base_bundle, with_part, write_spec
from toolkit.bundle import cilium
from toolkit.cli import main
from toolkit.errors import BundleError, SpecError
from toolkit.hosts import lifecycle
from toolkit.lab.model import PolicyAgent
from toolkit.lab.render import inventory
from toolkit.lab.spec import Lab, load_lab
from toolkit.lab.state import LabState
from toolkit.paths import PLAYBOOKS_DIR, REPO_ROOT
from toolkit.provision.run import check_bundle


def _policy(cni: str = "flannel") -> Any:
    def change(data: dict[str, Any]) -> None:
        data["network_policy"] = True
        data["cni"] = cni

    return change


@pytest.fixture
def policy_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Lab:
    """A lab with network_policy, and a complete base bundle without any part."""
    monkeypatch.setenv("K8SLAB_CACHE_DIR", str(tmp_path / "cache"))
    lab = load_lab(write_spec(tmp_path, mutated(_policy())))
    return with_base_bundle(lab)


def test_nothing_enforces_policy_unless_the_spec_asks(tmp_path: Path) -> None:
    lab = load_lab(write_spec(tmp_path, mutated(lambda d: None)))
    assert (lab.network_policy, lab.policy_agent, lab.needed_parts) == (False, None, {})


@pytest.mark.parametrize("cni", ["flannel", "bridge"])
def test_network_policy_is_cilium_chained_after_the_lab_s_cni(tmp_path: Path, cni: str) -> None:
    lab = load_lab(write_spec(tmp_path, mutated(_policy(cni))))
    assert lab.policy_agent == PolicyAgent("cilium", chained_after=cni, bundle_part="cilium")
    assert lab.needed_parts == {"cilium": "network_policy is true"}


@pytest.mark.parametrize("value", ["yes", 1])
def test_network_policy_is_a_boolean(tmp_path: Path, value: Any) -> None:
    with pytest.raises(SpecError) as refused:
        load_lab(write_spec(tmp_path, mutated(lambda d: d.update(network_policy=value))))
    assert "network_policy: is " in str(refused.value)
    assert "expected true or false" in str(refused.value)


def test_the_inventory_names_the_policy_agent(isolated_state: Path, tmp_path: Path) -> None:
    plain = load_lab(write_spec(tmp_path / "a", mutated(lambda d: None)))
    policed = load_lab(write_spec(tmp_path / "b", mutated(_policy())))
    for lab, agent in ((plain, ""), (policed, "cilium")):
        rendered = inventory(lab, LabState.of(lab.name))["all"]["vars"]
        assert rendered["k8slab_policy_agent"] == agent
        # The part's manifest for the lab's CNI, as the build names it.
        assert rendered["k8slab_policy_manifest"] == cilium.manifest_path(lab.cni)


def test_the_network_phase_imports_the_images_then_runs_the_role_only_for_cilium() -> None:
    plays = yaml.safe_load((PLAYBOOKS_DIR / "network.yml").read_text())
    policy = [play for play in plays if play["name"].startswith("NetworkPolicy")]
    assert [play["roles"][0]["role"] for play in policy] == ["artifacts", "cilium"]
    assert plays[-2:] == policy
    for play in policy:
        assert play["roles"][0]["when"] == "k8slab_policy_agent == 'cilium'"


def _refusal(lab: Lab) -> str:
    return (
        f"{lab.source}: network_policy is true, which needs the bundle's cilium part: build it "
        f"with `k8slab bundle build --kubernetes {lab.kubernetes_version} --with cilium`"
    )


def test_up_refuses_network_policy_without_the_part_before_any_host(
    isolated_state: Path, policy_lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[str] = []
    monkeypatch.setattr(lifecycle, "up_hosts", lambda lab, progress: created.append(lab.name))
    result = CliRunner().invoke(main, ["up", str(policy_lab.source)])
    assert result.exit_code == 1
    assert _refusal(policy_lab) in " ".join(result.output.split())
    assert created == []


def test_a_built_cilium_part_lets_the_lab_through(policy_lab: Lab) -> None:
    with pytest.raises(BundleError):
        check_bundle(policy_lab)
    with_part(policy_lab, "cilium")
    check_bundle(policy_lab)


def test_the_bridge_lab_enforces_policy_and_the_ha_labs_do_not() -> None:
    for name, expected in (("bridge", True), ("ha-stacked", False), ("ha-external", False)):
        lab = load_lab(REPO_ROOT / "inventories" / name / "lab.yml")
        assert lab.network_policy is expected, name
    needs = load_lab(REPO_ROOT / "inventories" / "bridge" / "lab.yml").needed_parts
    assert needs["cilium"] == "network_policy is true"


def test_the_full_test_run_builds_the_part_the_bridge_lab_needs_and_ci_does_not() -> None:
    script = (REPO_ROOT / "scripts" / "test").read_text()
    assert "parts=(--with cri-dockerd --with conformance)\n" in script
    full = next(
        line for line in script.splitlines() if line.startswith("[[ $mode == full ]] && parts+=")
    )
    assert "--with cilium" in full
