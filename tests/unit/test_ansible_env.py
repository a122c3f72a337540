"""The environment Ansible runs with: this process's, on every run, never a stored one."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import ansible_mitogen
import ansible_runner
import pytest
from ansible_runner.interface import init_runner

from toolkit import ansible
from toolkit.ansible import ansible_env
from toolkit.lab.state import LabState


def test_runs_use_mitogen_from_this_environment() -> None:
    env = ansible_env()
    assert env["ANSIBLE_STRATEGY"] == "mitogen_linear"
    assert (Path(env["ANSIBLE_STRATEGY_PLUGINS"]) / "mitogen_linear.py").is_file()


def test_the_stock_strategy_can_be_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K8SLAB_ANSIBLE_STRATEGY", "linear")
    assert ansible_env()["ANSIBLE_STRATEGY"] == "linear"


def _prepared_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    """ansible_runner.run replaced by its own preparation: the Runner it would start, with the
    environment and command it would use, and nothing run."""

    def prepare_only(**kwargs: Any) -> ansible_runner.Runner:
        return init_runner(cancel_callback=lambda: False, **kwargs)

    monkeypatch.setattr(ansible_runner, "run", prepare_only)


def _from_venv(monkeypatch: pytest.MonkeyPatch, venv: Path, strategy: str) -> None:
    """Pretend this process runs from ``venv``, with its own Mitogen and strategy."""
    monkeypatch.setattr(sys, "executable", str(venv / "bin" / "python"))
    plugins = venv / "lib" / "ansible_mitogen"
    monkeypatch.setattr(ansible_mitogen, "__file__", str(plugins / "__init__.py"))
    monkeypatch.setenv("K8SLAB_ANSIBLE_STRATEGY", strategy)


def _run_from(
    monkeypatch: pytest.MonkeyPatch, venv: Path, strategy: str, state_dir: str
) -> ansible_runner.Runner:
    _from_venv(monkeypatch, venv, strategy)
    state = LabState.of("demo")
    state.root.mkdir(parents=True, exist_ok=True)
    state.inventory.write_text("all:\n  hosts: {}\n")
    return ansible.run_runner(
        state, "provision", playbook="site.yml", extravars={"k8slab_state_dir": state_dir}
    )


def test_one_lab_provisioned_from_two_venvs_uses_the_current_one(
    isolated_state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _prepared_runner(monkeypatch)
    first, second = tmp_path / "venv-a", tmp_path / "venv-b"
    _run_from(monkeypatch, first, "mitogen_linear", "/state/a")

    run = _run_from(monkeypatch, second, "linear", "/state/b")

    env, command = run.config.env, " ".join(run.config.command)
    assert env["PATH"].split(":")[0] == str(second / "bin")
    assert env["ANSIBLE_STRATEGY_PLUGINS"] == str(second / "lib/ansible_mitogen/plugins/strategy")
    assert env["ANSIBLE_STRATEGY"] == "linear"
    assert str(first) not in env["PATH"] + env["ANSIBLE_STRATEGY_PLUGINS"]
    assert "/state/b" in command and "/state/a" not in command


def test_files_an_earlier_run_left_in_the_data_dir_are_not_preferred(
    isolated_state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lab first provisioned by an older toolkit still has env/envvars and env/extravars."""
    _prepared_runner(monkeypatch)
    env_dir = LabState.of("demo").root / "ansible" / "provision" / "env"
    env_dir.mkdir(parents=True)
    gone = str(tmp_path / "deleted-venv")
    (env_dir / "envvars").write_text(
        json.dumps({"PATH": f"{gone}/bin", "ANSIBLE_STRATEGY_PLUGINS": gone})
    )
    (env_dir / "extravars").write_text(json.dumps({"k8slab_state_dir": "/old"}))

    run = _run_from(monkeypatch, tmp_path / "venv", "mitogen_linear", "/state/now")

    assert gone not in run.config.env["PATH"] + run.config.env["ANSIBLE_STRATEGY_PLUGINS"]
    assert "/old" not in " ".join(run.config.command)
    assert not any(env_dir.iterdir()), "nothing derived from a run is kept for the next one"
