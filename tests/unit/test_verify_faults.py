"""The fault module's choices and observations (tests/e2e/test_verify_faults.py), without a
lab: which nodes a fault breaks, what it expects to fail, and how it reads the result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import pytest

from tests.e2e import test_verify_faults as faults
from toolkit.lab.spec import Lab, Node, load_lab
from toolkit.verify.cluster import Cluster, Run
from toolkit.verify.workload import Layout


@dataclass(frozen=True)
class FakeScene(faults.Scene):
    leader: str = ""

    def etcd_leader(self) -> str:
        return self.leader


class FakeCluster:
    """Runs nothing: ``answer(node, command)`` gives each command's exit status and output."""

    def __init__(self, answer: Callable[[str, str], tuple[int, str]]) -> None:
        self.answer = answer

    def run(self, node: Node | str, command: str, **_: Any) -> Run:
        name = node if isinstance(node, str) else node.name
        status, out = self.answer(name, command)
        return Run(name, command, status, out, out)


def scene(lab: Lab, leader: str = "", cluster: object = None) -> FakeScene:
    a, b = lab.workers[:2]
    return FakeScene(lab, cast(Cluster, cluster), Layout(a, b, ""), leader)


@pytest.mark.parametrize(
    ("leader", "member", "peer"),
    [("cp1", "cp2", "cp3"), ("cp2", "cp1", "cp3"), ("cp3", "cp1", "cp2")],
)
def test_the_peer_link_cut_is_between_two_followers(leader: str, member: str, peer: str) -> None:
    lab = load_lab("ha-stacked")
    chosen = faults.peer_link(scene(lab, leader))
    assert (chosen[0].name, chosen[1].name) == (member, peer)
    fault = next(f for f in faults.FAULTS if f.name == "etcd-peer-link-cut-one-way")
    assert fault.expected(scene(lab, leader)) == {f"etcd/peers_connected[{member}]"}
    assert fault.may_fail(scene(lab, leader)) == {f"etcd/peers_connected[{peer}]"}


def test_the_peer_link_cut_needs_three_members() -> None:
    fault = next(f for f in faults.FAULTS if f.name == "etcd-peer-link-cut-one-way")
    assert fault.unfit(load_lab("ha-stacked")) == ""
    assert fault.unfit(load_lab("ha-external")) == ""
    assert "3 etcd members" in fault.unfit(load_lab("single"))


@pytest.mark.parametrize(
    ("cp2_to_cp3", "cp3_to_cp2", "one_way"),
    [(False, True, True), (True, True, False), (False, False, False), (True, False, False)],
)
def test_the_cut_is_one_way_only_when_the_peer_still_connects_back(
    cp2_to_cp3: bool, cp3_to_cp2: bool, one_way: bool
) -> None:
    lab = load_lab("ha-stacked")
    cp2, cp3 = lab.node("cp2"), lab.node("cp3")
    opens = {("cp2", str(cp3.address)): cp2_to_cp3, ("cp3", str(cp2.address)): cp3_to_cp2}

    def answer(node: str, command: str) -> tuple[int, str]:
        assert command.startswith("timeout 3 bash -c ': </dev/tcp/") and "/2380'" in command
        target = command.split("/dev/tcp/")[1].split("/")[0]
        return (0 if opens[(node, target)] else 124), ""

    assert faults.cut_one_way(scene(lab, cluster=FakeCluster(answer)), cp2, cp3) is one_way
