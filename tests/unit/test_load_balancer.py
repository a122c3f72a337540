"""LoadBalancer Services: the spec's load_balancer.pool (the model, what a lab with one
needs), how it reaches Ansible, and the verify group's workload and probes, without hosts.
The refusals of a bad pool are rows of tests/helpers/lab_specs.py's INVALID."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.helpers.lab_specs import mutated, with_base_bundle, with_part, write_spec
from toolkit.errors import BundleError
from toolkit.lab import render
from toolkit.lab.model import AddressRange
from toolkit.lab.spec import Lab, load_lab
from toolkit.lab.state import LabState
from toolkit.provision.run import check_bundle
from toolkit.verify import load_balancer
from toolkit.verify.cluster import Run
from toolkit.verify.workload import NAMESPACE, TAINT_KEY, Layout

POOL = ["172.30.9.240/29", "172.30.9.200 - 172.30.9.202"]


def _pool_lab(tmp_path: Path) -> Lab:
    return load_lab(write_spec(tmp_path, mutated(lambda d: d.update(load_balancer={"pool": POOL}))))


def test_the_pool_is_read_as_ranges_in_metallb_s_form(tmp_path: Path) -> None:
    lab = _pool_lab(tmp_path)
    assert lab.load_balancer is not None
    assert [str(entry) for entry in lab.load_balancer.pool] == [
        "172.30.9.240-172.30.9.247",
        "172.30.9.200-172.30.9.202",
    ]
    assert ipaddress.IPv4Address("172.30.9.247") in lab.load_balancer
    assert ipaddress.IPv4Address("172.30.9.201") in lab.load_balancer
    assert ipaddress.IPv4Address("172.30.9.248") not in lab.load_balancer
    assert "172.30.9.241" not in lab.load_balancer  # a string is not an address


def test_address_ranges_overlap_only_when_they_share_an_address() -> None:
    def r(first: str, last: str) -> AddressRange:
        return AddressRange(ipaddress.IPv4Address(first), ipaddress.IPv4Address(last))

    assert r("10.0.0.1", "10.0.0.5").overlaps(r("10.0.0.5", "10.0.0.9"))
    assert not r("10.0.0.1", "10.0.0.4").overlaps(r("10.0.0.5", "10.0.0.9"))


def test_the_bridge_lab_has_a_pool_and_the_others_none() -> None:
    bridge = load_lab("bridge")
    assert bridge.load_balancer is not None
    assert [str(e) for e in bridge.load_balancer.pool] == ["172.30.4.240-172.30.4.247"]
    assert bridge.needed_parts["metallb"] == "load_balancer.pool is set (LoadBalancer Services)"
    for name in ("ha-stacked", "ha-external", "single"):
        lab = load_lab(name)
        assert lab.load_balancer is None
        assert "metallb" not in lab.needed_parts


def test_a_lab_with_a_pool_is_refused_without_the_part_naming_field_and_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("K8SLAB_CACHE_DIR", str(tmp_path / "cache"))
    lab = _pool_lab(tmp_path)
    with_base_bundle(lab)
    with pytest.raises(BundleError) as refused:
        check_bundle(lab)
    assert str(refused.value) == (
        f"{lab.source}: load_balancer.pool is set (LoadBalancer Services), which needs the "
        "bundle's metallb part: build it with "
        f"`k8slab bundle build --kubernetes {lab.kubernetes_version} --with metallb`"
    )
    with_part(lab, "metallb")
    check_bundle(lab)


def test_the_inventory_gives_ansible_the_pool_and_an_empty_one_without(tmp_path: Path) -> None:
    lab = _pool_lab(tmp_path)
    state = LabState(lab.name, tmp_path / "state" / lab.name)
    variables = yaml.safe_load(render.inventory_yaml(lab, state))["all"]["vars"]
    assert variables["k8slab_load_balancer_pool"] == [
        "172.30.9.240-172.30.9.247",
        "172.30.9.200-172.30.9.202",
    ]
    plain = load_lab("single")
    plain_vars = yaml.safe_load(render.inventory_yaml(plain, state))["all"]["vars"]
    assert plain_vars["k8slab_load_balancer_pool"] == []


def _layout() -> Layout:
    lab = load_lab("bridge")
    return Layout(lab.node("w1"), lab.node("w2"), "registry.k8s.io/kube-proxy:v1.34.4")


def test_the_test_service_is_a_load_balancer_in_front_of_one_pod_on_node_a() -> None:
    pod, service = yaml.safe_load_all(load_balancer.manifests(_layout()))
    assert pod["kind"] == "Pod" and pod["metadata"]["namespace"] == NAMESPACE
    assert pod["spec"]["nodeName"] == "w1"
    assert TAINT_KEY in json.dumps(pod["spec"]["tolerations"])
    assert [c["name"] for c in pod["spec"]["containers"]] == ["tcp", "udp"]
    assert all(c["imagePullPolicy"] == "Never" for c in pod["spec"]["containers"])
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["selector"] == pod["metadata"]["labels"]
    ports = {(p["protocol"], p["port"]) for p in service["spec"]["ports"]}
    assert ports == {("TCP", 80), ("UDP", 81)}
    other = yaml.safe_load_all(load_balancer.manifests(_layout(), "elsewhere"))
    assert {d["metadata"]["namespace"] for d in other} == {"elsewhere"}


class _Kubectl:
    """A cluster whose kubectl gives one answer."""

    def __init__(self, status: int, out: str) -> None:
        self.status, self.out = status, out
        self.asked: list[tuple[str, ...]] = []

    def kubectl(self, *args: str, timeout: float = 60) -> Run:
        self.asked.append(args)
        return Run("cp1", " ".join(args), self.status, self.out, self.out)


def test_the_announcers_are_read_from_metallb_s_l2_statuses() -> None:
    items = {"items": [{"status": {"node": "w2"}}, {"status": {"node": "cp1"}}]}
    fake = _Kubectl(0, json.dumps(items))
    assert load_balancer.announcers(fake) == ["cp1", "w2"]  # type: ignore[arg-type]
    assert (
        "metallb.io/service-name=lb-echo,metallb.io/service-namespace=k8slab-verify"
        in (fake.asked[0])
    )
    assert load_balancer.announcers(_Kubectl(1, "no such resource")) == []  # type: ignore[arg-type]


@pytest.fixture
def echo_servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Loopback servers that answer as the backend Pod does, on the probes' ports."""
    tcp = socket.create_server(("127.0.0.1", 0))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    monkeypatch.setitem(load_balancer.PORTS, "tcp", tcp.getsockname()[1])
    monkeypatch.setitem(load_balancer.PORTS, "udp", udp.getsockname()[1])

    # Each test asks one of them; the other's socket is closed under it at the end.
    def serve_tcp() -> None:
        with contextlib.suppress(OSError):
            conn, _ = tcp.accept()
            conn.sendall(b"lb-echo\n")
            conn.close()

    def serve_udp() -> None:
        with contextlib.suppress(OSError):
            _, peer = udp.recvfrom(512)
            udp.sendto(b"lb-echo\n", peer)

    threads = [threading.Thread(target=f, daemon=True) for f in (serve_tcp, serve_udp)]
    for thread in threads:
        thread.start()
    yield
    tcp.close()
    udp.close()


@pytest.mark.usefixtures("echo_servers")
@pytest.mark.parametrize("protocol", ["tcp", "udp"])
def test_a_probe_returns_what_the_backend_said(protocol: str) -> None:
    assert load_balancer.probe("127.0.0.1", protocol) == "lb-echo"


def test_a_probe_nobody_answers_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    monkeypatch.setitem(load_balancer.PORTS, "tcp", port)
    assert load_balancer.probe("127.0.0.1", "tcp").startswith("ConnectionRefusedError")


def test_neighbour_entries_name_their_link_address() -> None:
    entry = "172.30.4.240 dev br-1 lladdr 02:42:AC:1E:04:15 REACHABLE\n"
    assert load_balancer.neighbour_macs(entry) == {"02:42:ac:1e:04:15"}
    assert load_balancer.neighbour_macs("172.30.4.240 dev br-1 INCOMPLETE\n") == set()


def test_the_suite_has_the_group_s_checks_for_every_node_of_a_lab_with_a_pool() -> None:
    from benchmarks.verify_coverage import paper_check_ids

    ids = [i for i in paper_check_ids(load_lab("bridge")) if i.startswith("load-balancer/")]
    assert ids == [
        "load-balancer/controller_ready[-]",
        "load-balancer/speaker_ready[cp1]",
        "load-balancer/speaker_ready[w1]",
        "load-balancer/speaker_ready[w2]",
        "load-balancer/service_gets_an_address_of_the_pool[-]",
        "load-balancer/answers_from_this_machine[tcp]",
        "load-balancer/answers_from_this_machine[udp]",
        "load-balancer/one_speaker_announces[-]",
        "load-balancer/arp_names_the_announcer[-]",
    ]
