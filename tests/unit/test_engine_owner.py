"""Engine objects belong to one state directory: `up` refuses a same-named lab's objects that
another state directory owns, and `destroy` removes only its own. The docker CLI is replaced
by a table of objects, so nothing in the real engine is listed or removed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from toolkit.errors import EngineError
from toolkit.hosts import engine
from toolkit.lab.spec import load_lab

MINE = Path("/state/mine")
THEIRS = Path("/tmp/pytest-of-root/state0")
# kind -> (name, k8slab.state label); "" is an object made without the label
OBJECTS = {
    "container": [("k8slab-single-cp1", str(MINE)), ("k8slab-single-w1", str(THEIRS))],
    "network": [("k8slab-single", "")],
    "volume": [("k8slab-single-cp1-var", str(MINE))],
}


@pytest.fixture
def docker(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Answers the listing commands from OBJECTS; returns every removal asked for."""
    removals: list[list[str]] = []
    kinds = {("ps",): "container", ("network", "ls"): "network", ("volume", "ls"): "volume"}

    def run(argv: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        for words, kind in kinds.items():
            if tuple(argv[1 : 1 + len(words)]) == words:
                assert "label=k8slab.lab=single" in argv
                lines = [f"{name}\t{owner}" for name, owner in OBJECTS[kind]]
                return subprocess.CompletedProcess(argv, 0, "\n".join(lines) + "\n", "")
        removals.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(engine, "run", run)
    return removals


def test_destroy_removes_only_what_its_state_directory_owns(docker: list[list[str]]) -> None:
    removed = engine.remove_lab_objects("single", MINE)
    assert removed == ["container k8slab-single-cp1", "volume k8slab-single-cp1-var"]
    assert docker == [
        ["docker", "rm", "-f", "-v", "k8slab-single-cp1"],
        ["docker", "volume", "rm", "-f", "k8slab-single-cp1-var"],
    ]


def test_objects_of_another_state_or_of_none_are_foreign(docker: list[list[str]]) -> None:
    assert engine.foreign_objects("single", MINE) == [
        f"container k8slab-single-w1 (state {THEIRS})",
        "network k8slab-single (no k8slab.state label)",
    ]
    assert docker == []


def test_up_refuses_a_same_named_lab_of_another_state_before_creating_anything(
    docker: list[list[str]],
) -> None:
    lab = load_lab("single")
    with pytest.raises(EngineError) as refused:
        engine.refuse_foreign_objects(lab, MINE)
    message = str(refused.value)
    assert str(lab.source) in message and str(MINE) in message
    assert f"container k8slab-single-w1 (state {THEIRS})" in message
    assert "k8slab destroy single" in message and "another name" in message
    assert docker == []


def test_a_lab_alone_in_the_engine_is_not_refused(
    docker: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(OBJECTS, "container", [("k8slab-single-cp1", str(MINE))])
    monkeypatch.setitem(OBJECTS, "network", [("k8slab-single", str(MINE))])
    engine.refuse_foreign_objects(load_lab("single"), MINE)
