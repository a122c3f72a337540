"""The host and cluster actions of `k8slab scale`, on fakes: the drain's command and its
refusal, the etcd member removed only through healthy members that stay, the leaving
host's known_hosts lines forgotten, and a host destroyed (once) from Vagrant's list."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from toolkit import kube
from toolkit.etcd import cluster
from toolkit.etcd.status import ClusterHealth, EndpointStatus, MemberInfo
from toolkit.etcd.topology import Member, Topology
from toolkit.hosts import engine, lifecycle, vagrant
from toolkit.hosts.vagrant import Vagrant
from toolkit.lab.spec import Lab, load_lab
from toolkit.lab.state import LabState
from toolkit.scale import ScaleError, steps


@pytest.fixture
def lab(isolated_state: Path) -> Lab:
    return load_lab("ha-stacked")


def without(lab: Lab, name: str) -> Lab:
    return dataclasses.replace(lab, nodes=tuple(n for n in lab.nodes if n.name != name))


def test_drain_respects_budgets_within_a_bound_and_says_what_blocks_it(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[Sequence[str]] = []

    def kubectl(lab: Lab, args: Sequence[str], **kwargs: Any) -> tuple[int, str]:
        asked.append(args)
        if args[0] == "get":
            return 0, "node/w2\n"
        return (
            1,
            "error when evicting pods/web-1: Cannot evict pod as it would violate the "
            "pod's disruption budget.",
        )

    monkeypatch.setattr(kube, "kubectl", kubectl)
    with pytest.raises(ScaleError, match=r"cannot drain w2 within 300s .*disruption budget"):
        steps.drain(without(lab, "w2"), lab.node("w2"))
    drain = asked[-1]
    assert drain[:2] == ["drain", "w2"]
    assert "--ignore-daemonsets" in drain and "--timeout=300s" in drain
    assert "--force" not in drain and "--disable-eviction" not in drain


def test_a_node_the_cluster_no_longer_has_is_not_drained(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[Sequence[str]] = []

    def kubectl(lab: Lab, args: Sequence[str], **kwargs: Any) -> tuple[int, str]:
        asked.append(args)
        return 0, ""

    monkeypatch.setattr(kube, "kubectl", kubectl)
    steps.drain(lab, lab.node("w2"))
    assert [a[0] for a in asked] == ["get"]


class FakeEtcd:
    def __init__(self, lab: Lab, silent: str = "") -> None:
        self.members = [
            MemberInfo(i + 1, n.name, (f"https://{n.address}:2380",), (), False)
            for i, n in enumerate(lab.control_planes)
        ]
        self.silent = silent
        self.commands: list[str] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(cluster, "members", lambda topo, avoid=None: list(self.members))
        monkeypatch.setattr(cluster, "health", self.health)
        monkeypatch.setattr(cluster, "etcdctl_on_any", self.etcdctl)
        monkeypatch.setattr(cluster, "wait_healthy", lambda topo, *a, **k: 0.0)

    def health(self, topo: Topology, avoid: set[str] | None = None) -> ClusterHealth:
        answered = {
            m.client_url: EndpointStatus(m.client_url, 1, 1, 10, 2, "3.6.0", 1)
            for m in topo.members
            if m.name != self.silent
        }
        return ClusterHealth(answered, tuple(m.client_url for m in topo.members))

    def etcdctl(
        self, topo: Topology, args: str, avoid: Any = None, timeout: float = 30
    ) -> tuple[Member, int, str]:
        self.commands.append(args)
        assert "cp3" not in [m.name for m in topo.members]  # asked of members that stay
        return topo.members[0], 0, ""


def test_the_etcd_member_is_removed_through_the_members_that_stay(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeEtcd(lab)
    fake.install(monkeypatch)
    said = steps.remove_etcd_member(without(lab, "cp3"), lab.node("cp3"))
    assert fake.commands == ["member remove 3"]
    assert said == "removed etcd member cp3; 2 stay"
    fake.members = fake.members[:2]
    assert steps.remove_etcd_member(without(lab, "cp3"), lab.node("cp3")) == (
        "cp3 is no longer an etcd member"
    )


def test_no_member_is_removed_while_one_that_stays_is_silent(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeEtcd(lab, silent="cp2")
    fake.install(monkeypatch)
    with pytest.raises(ScaleError, match=r"could cost quorum \(https://172.30.2.12:2379 does not"):
        steps.remove_etcd_member(without(lab, "cp3"), lab.node("cp3"))
    assert fake.commands == []


def test_the_leaving_hosts_key_is_forgotten(lab: Lab) -> None:
    state = LabState.of(lab.name)
    state.ensure_root()
    state.known_hosts.write_text(
        "172.30.2.21 ssh-ed25519 AAAA1\n172.30.2.22 ssh-ed25519 AAAA2\nw2 ssh-ed25519 AAAA3\n"
    )
    lifecycle.forget_host_key(state, lab.node("w2"))
    assert state.known_hosts.read_text() == "172.30.2.21 ssh-ed25519 AAAA1\n"


def test_a_host_is_destroyed_from_vagrants_list_once(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    destroyed: list[tuple[str, ...]] = []

    @contextlib.contextmanager
    def networks_lock(progress: object = None) -> Iterator[None]:
        yield

    monkeypatch.setattr(engine, "networks_lock", networks_lock)
    monkeypatch.setattr(engine, "remove_node_volume", lambda lab, node, root: ["volume v"])
    monkeypatch.setattr(
        Vagrant, "destroy", lambda self, provider, machines=(): destroyed.append(machines)
    )
    state = LabState.of(lab.name)
    state.ensure_key_pair()
    machines = {"machines": [{"name": n.name} for n in lab.nodes], "hosts": {}}
    state.write_json(state.machines, machines)
    staying = without(lab, "w2")
    assert lifecycle.destroy_node(lab, lab.node("w2"), staying) == ["host w2", "volume v"]
    assert destroyed == [("w2",)]
    listed = json.loads(state.machines.read_text())
    assert [m["name"] for m in listed["machines"]] == ["cp1", "cp2", "cp3", "w1"]
    assert "w2" not in listed["hosts"] and "w2:" not in state.inventory.read_text()
    again = lifecycle.destroy_node(lab, lab.node("w2"), staying)  # a resumed run
    assert again[0] == "host w2 (gone already)" and destroyed == [("w2",)]


def test_vagrant_destroys_only_the_named_machine(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[list[str]] = []
    monkeypatch.setattr(vagrant, "run", lambda argv, **kwargs: ran.append(argv))
    state = LabState.of(lab.name)
    state.ensure_root()
    state.machines.write_text("{}")
    state.vagrant_dotfile.mkdir(parents=True)
    Vagrant(state).destroy("docker", machines=("w2",))
    assert ran == [["vagrant", "destroy", "--force", "w2"]]


def test_only_a_volume_this_state_owns_is_removed(
    lab: Lab, isolated_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    removed: list[list[str]] = []
    owner: list[str] = []
    monkeypatch.setattr(
        engine, "_inspect", lambda kind, name: {"Labels": {engine.STATE_LABEL: owner[0]}}
    )
    monkeypatch.setattr(engine, "run", lambda argv, **kwargs: removed.append(argv))
    state = LabState.of(lab.name)
    owner.append("/another/state/root")
    assert engine.remove_node_volume(lab, lab.node("w2"), state.root) == []
    owner[0] = str(state.root.resolve())
    assert engine.remove_node_volume(lab, lab.node("w2"), state.root) == [
        "volume k8slab-ha-stacked-w2-var"
    ]
    assert removed == [["docker", "volume", "rm", "-f", "k8slab-ha-stacked-w2-var"]]
