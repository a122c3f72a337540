"""LoadBalancer Services (External-to-Service): MetalLB in L2 mode, for a lab whose spec
declares load_balancer.pool (every check is skipped for any other lab).

The test Service ``lb-echo`` (type LoadBalancer) has one backend Pod on node a, which
answers each TCP connection and each UDP datagram with its own name. Each check says its
source, destination and what it expects: the Service gets an address of the pool; from
this machine (source) to that address (destination), TCP and UDP answer with the backend
Pod's name; MetalLB records exactly one speaker announcing it; and this machine's ARP
entry for the address names that node's MAC.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from toolkit.bundle import metallb
from toolkit.lab.spec import Lab, Node
from toolkit.verify.checks import expect, fail
from toolkit.verify.cluster import Cluster, eventually
from toolkit.verify.load_balancer import (
    METALLB_NAMESPACE,
    PORTS,
    SERVICE,
    announcers,
    forget_neighbour,
    mac_command,
    neighbour,
    neighbour_macs,
    probe,
    service_address,
)
from toolkit.verify.workload import NAMESPACE, Workload, describe_pods, pod_ready

ADDRESS_TIMEOUT_S = 90
ANSWER_TIMEOUT_S = 60
ANNOUNCE_TIMEOUT_S = 30


@pytest.fixture(scope="module", autouse=True)
def declared(lab: Lab) -> None:
    if lab.load_balancer is None:
        pytest.skip(f"lab {lab.name} declares no load_balancer.pool, so it runs no MetalLB")


@pytest.fixture(scope="module")
def metallb_pods(cluster: Cluster) -> list[dict[str, Any]]:
    return list(cluster.kubectl_json("get", "pods", "-n", METALLB_NAMESPACE)["items"])


def _component(pods: list[dict[str, Any]], component: str) -> list[dict[str, Any]]:
    return [p for p in pods if p["metadata"].get("labels", {}).get("component") == component]


def _images(pod: dict[str, Any]) -> list[str]:
    return [c["image"] for c in pod["spec"]["containers"]]


def test_controller_ready(metallb_pods: list[dict[str, Any]]) -> None:
    pods = _component(metallb_pods, "controller")
    ready = [p for p in pods if pod_ready(p)]
    wanted = [metallb.image("controller")]
    expect(
        len(ready) == 1 and _images(ready[0]) == wanted,
        f"MetalLB's controller: {len(ready)} ready Pod(s), expected one running {wanted}",
        describe_pods({p["metadata"]["name"]: p for p in pods}),
    )


def test_speaker_ready(metallb_pods: list[dict[str, Any]], kube_node: Node) -> None:
    pods = [
        p
        for p in _component(metallb_pods, "speaker")
        if p["spec"].get("nodeName") == kube_node.name
    ]
    wanted = [metallb.image("speaker")]
    expect(
        len(pods) == 1 and pod_ready(pods[0]) and _images(pods[0]) == wanted,
        f"{kube_node.name}: no ready MetalLB speaker running {wanted} (it answers ARP for "
        "the addresses it is elected to announce)",
        describe_pods({p["metadata"]["name"]: p for p in pods}),
    )


@pytest.fixture(scope="module")
def address(cluster: Cluster, workload: Workload) -> str:
    """The test Service's address, once MetalLB gave it one and its backend is Ready."""
    applied = workload.wait_applied()
    if not applied.ok:
        pytest.fail(f"could not create the test workload\n\n{applied.evidence}", pytrace=False)
    ready, pods = workload.wait_pods_ready([SERVICE])
    expect(ready, f"the backend Pod {SERVICE} is not Ready", describe_pods(pods))
    given, found = eventually(lambda: service_address(cluster), bool, ADDRESS_TIMEOUT_S)
    if not given:
        service = cluster.kubectl("get", "service", SERVICE, "-n", NAMESPACE, "-o", "yaml")
        events = cluster.kubectl(
            "get", "events", "-n", NAMESPACE, "--field-selector", f"involvedObject.name={SERVICE}"
        )
        fail(
            f"the LoadBalancer Service {SERVICE} got no address within {ADDRESS_TIMEOUT_S}s",
            service.evidence,
            events.evidence,
        )
    return found


def test_service_gets_an_address_of_the_pool(lab: Lab, address: str) -> None:
    assert lab.load_balancer is not None
    pool = ", ".join(str(entry) for entry in lab.load_balancer.pool)
    expect(
        ipaddress.IPv4Address(address) in lab.load_balancer,
        f"Service {SERVICE} got {address}, outside the lab's pool {pool}",
    )


@pytest.mark.parametrize("protocol", list(PORTS))
def test_answers_from_this_machine(address: str, protocol: str) -> None:
    port = PORTS[protocol]
    answered, said = eventually(
        lambda: probe(address, protocol), lambda text: text == SERVICE, ANSWER_TIMEOUT_S
    )
    expect(
        answered,
        f"this machine -> {address}:{port}/{protocol} (Service {SERVICE}): expected the backend "
        f"Pod's name {SERVICE!r}, got {said!r} after {ANSWER_TIMEOUT_S}s",
    )


@pytest.fixture(scope="module")
def announcer(cluster: Cluster, address: str) -> str:
    """The one node whose speaker announces the address, by MetalLB's record."""
    one, nodes = eventually(lambda: announcers(cluster), lambda n: len(n) == 1, ANNOUNCE_TIMEOUT_S)
    if not one:
        statuses = cluster.kubectl(
            "get", "servicel2statuses", "-n", METALLB_NAMESPACE, "-o", "yaml"
        )
        fail(
            f"{address} (Service {SERVICE}) is announced by {nodes or 'no speaker'}; exactly "
            "one speaker must answer ARP for it",
            statuses.evidence,
        )
    return nodes[0]


def test_one_speaker_announces(lab: Lab, announcer: str) -> None:
    expect(
        announcer in {n.name for n in lab.control_planes + lab.workers},
        f"the announcing speaker's node {announcer!r} is not a node of lab {lab.name}",
    )


def test_arp_names_the_announcer(cluster: Cluster, lab: Lab, address: str, announcer: str) -> None:
    node = lab.node(announcer)
    mac_run = cluster.run(node, mac_command(str(node.address)))
    mac = mac_run.stdout.strip().lower()
    expect(
        mac_run.ok and mac, f"{announcer}: cannot read its MAC on the lab network", mac_run.evidence
    )
    # Asked anew: this machine's entry, if any, may predate the address's last move.
    forgotten = forget_neighbour(address)

    def entry() -> str:
        probe(address, "tcp")
        return neighbour(address)

    named, last = eventually(entry, lambda text: neighbour_macs(text) == {mac}, ANSWER_TIMEOUT_S)
    expect(
        named,
        f"this machine's ARP entry for {address} names {sorted(neighbour_macs(last)) or 'no MAC'}, "
        f"not {announcer}'s {mac}, the node MetalLB says announces it",
        f"ip neigh show to {address}: {last or '(no entry)'}",
        f"(could not flush the entry first: {forgotten})" if forgotten else "",
    )
