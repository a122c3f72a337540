from pathlib import Path

import pytest

from toolkit.ansible import ansible_env


def test_runs_use_mitogen_from_this_environment() -> None:
    env = ansible_env()
    assert env["ANSIBLE_STRATEGY"] == "mitogen_linear"
    assert (Path(env["ANSIBLE_STRATEGY_PLUGINS"]) / "mitogen_linear.py").is_file()


def test_the_stock_strategy_can_be_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K8SLAB_ANSIBLE_STRATEGY", "linear")
    assert ansible_env()["ANSIBLE_STRATEGY"] == "linear"
