"""Reaching a lab from this machine: `k8slab kubeconfig`, `k8slab k9s` (the bundle's k9s
part) and `k8slab open` (the add-ons' UIs), without a lab."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.helpers.lab_specs import mutated, write_spec
from toolkit import access
from toolkit.bundle import parts
from toolkit.bundle.manifest import Artifact, Manifest
from toolkit.cli import main
from toolkit.lab.spec import Lab, load_lab
from toolkit.lab.state import LabState


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Lab:
    monkeypatch.setenv("K8SLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("K8SLAB_STATE_DIR", str(tmp_path / "state"))

    def change(data: dict[str, Any]) -> None:
        data["addons"] = ["monitoring", "logging"]
        data["nodes"]["workers"][0]["memory_mb"] = 2560

    return load_lab(write_spec(tmp_path, mutated(change)))


def _up(lab: Lab) -> Path:
    state = LabState.of(lab.name)
    state.write_text(state.kubeconfig, "apiVersion: v1\nkind: Config\n")
    return state.kubeconfig


def test_kubeconfig_prints_the_admin_kubeconfig_of_a_lab_that_is_up(lab: Lab) -> None:
    runner = CliRunner()
    down = runner.invoke(main, ["kubeconfig", str(lab.source)])
    assert down.exit_code == 1 and "has no admin kubeconfig" in down.output
    path = _up(lab)
    assert runner.invoke(main, ["kubeconfig", str(lab.source)]).output.strip() == str(path)


def test_k9s_needs_the_k9s_part_and_runs_it_with_the_lab_s_kubeconfig(lab: Lab) -> None:
    path = _up(lab)
    result = CliRunner().invoke(main, ["k9s", str(lab.source)])
    assert result.exit_code == 1
    assert "run `k8slab bundle build --kubernetes v1.34.4 --with k9s`" in result.output
    folder = parts.part_dir(lab.kubernetes_version, "k9s")
    (folder / "bin").mkdir(parents=True)
    binary = Artifact("k9s", "binary", "v0.50.16", "t", "0" * 64, 1, "bin/k9s")
    Manifest(lab.kubernetes_version, "gomod", {}, [binary], part="k9s").write(folder)
    argv, env = access.k9s(lab)
    assert argv == [str(folder / "bin" / "k9s"), "--kubeconfig", str(path)]
    assert env["KUBECONFIG"] == str(path)
    assert env["K9S_CONFIG_DIR"] == str(LabState.of(lab.name).root / "k9s")
    assert env["KUBECACHEDIR"] == str(LabState.of(lab.name).root / "k9s" / "cache")


def test_open_prints_each_ui_or_the_one_named(lab: Lab) -> None:
    runner = CliRunner()
    both = runner.invoke(main, ["open", str(lab.source)])
    assert both.output.split() == [
        "prometheus",
        "http://172.30.9.21:30090/classic/graph",
        "logs",
        "http://172.30.9.21:30428/select/vmui/",
    ]
    one = runner.invoke(main, ["open", str(lab.source), "monitoring"])
    assert one.output.split() == ["prometheus", "http://172.30.9.21:30090/classic/graph"]
    wrong = runner.invoke(main, ["open", str(lab.source), "dashboard"])
    assert wrong.exit_code == 1 and "its UIs are: prometheus (monitoring), logs" in wrong.output
