"""Kubernetes networking requirements, probed from inside Pods (and a NodePort from outside).

The test Pods: ``client`` and ``echo-a`` on node a, ``echo-b`` on node b, ``peer`` (in a
namespace of its own) on node b. Each echo server answers with the address it saw.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
import socket
import time
from typing import Any

import pytest

from toolkit.lab.spec import Node
from toolkit.verify.checks import expect, fail
from toolkit.verify.cluster import Cluster, eventually
from toolkit.verify.probes import ATTEMPTS, in_pod, tcp_probe
from toolkit.verify.workload import (
    NAMESPACE,
    PEER_NAMESPACE,
    SCTP_PORT,
    TCP_PORT,
    UDP_PORT,
    Workload,
    describe_pods,
    pod_ready,
)

TEST_PODS = (
    f"{NAMESPACE}/client",
    f"{NAMESPACE}/echo-a",
    f"{NAMESPACE}/echo-b",
    f"{PEER_NAMESPACE}/peer",
)
NODEPORT_TIMEOUT_S = 3


@pytest.fixture(scope="module")
def test_pods(cluster: Cluster, workload: Workload) -> dict[str, dict[str, Any]]:
    """The test Pods by namespace/name once all are Ready (bounded), or as they are then."""
    applied = workload.wait_applied()
    if not applied.ok:
        pytest.fail(f"could not create the test workload\n\n{applied.evidence}", pytrace=False)

    def probe() -> dict[str, dict[str, Any]]:
        run = cluster.kubectl("get", "pods", "-A", "-l", "app in (echo,client)", "-o", "json")
        if not run.ok:
            return {}
        items = json.loads(run.stdout)["items"]
        return {f"{p['metadata']['namespace']}/{p['metadata']['name']}": p for p in items}

    _, pods = eventually(probe, lambda p: all(pod_ready(p.get(n)) for n in TEST_PODS), 75)
    return pods


def ready_pod(pods: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
    pod = pods.get(key)
    expect(pod_ready(pod), f"test Pod {key} is not Ready", describe_pods(pods))
    assert pod is not None
    return pod


def udp_probe(target: str, port: int) -> str:
    perl = (
        "$s = IO::Socket::INET->new(PeerAddr => $ARGV[0], PeerPort => $ARGV[1], Proto => 'udp')"
        f" or die $!; for (1..{ATTEMPTS}) {{ $s->send('?'); $r = '';"
        " eval { local $SIG{ALRM} = sub { die }; alarm 2; $s->recv($r, 512); alarm 0 };"
        " if ($r) { print $r; exit 0 } } exit 1"
    )
    return f"perl -MIO::Socket::INET -e {shlex.quote(perl)} {target} {port}"


def sctp_probe(target: str, port: int) -> str:
    perl = (
        "use Socket; $s = IO::Socket::INET->new(PeerAddr => $ARGV[0], PeerPort => $ARGV[1],"
        " Proto => 132, Type => SOCK_STREAM, Timeout => 3) or die $!; print scalar <$s>"
    )
    return f"perl -MIO::Socket::INET -e {shlex.quote(perl)} {target} {port}"


def resolve(name: str) -> str:
    """Bash: the first address the Pod's resolver gives for ``name``, into $ip."""
    return (
        f"export ip=$(getent hosts {name} | cut -d' ' -f1 | head -n1); "
        f"test -n \"$ip\" || {{ echo 'no address for {name}'; exit 2; }}; "
    )


def test_test_pods_ready(test_pods: dict[str, dict[str, Any]]) -> None:
    missing = [key for key in TEST_PODS if not pod_ready(test_pods.get(key))]
    expect(not missing, f"test Pods not Ready: {missing}", describe_pods(test_pods))


def test_container_to_container_over_localhost(cluster: Cluster, test_pods: dict[str, Any]) -> None:
    key = f"{NAMESPACE}/echo-a"
    ready_pod(test_pods, key)
    run = in_pod(cluster, key, tcp_probe("127.0.0.1", TCP_PORT), container="sidecar")
    expect(
        run.ok and run.stdout.strip() == "127.0.0.1",
        "the sidecar container did not reach the tcp container over localhost",
        run.evidence,
    )


@pytest.fixture(scope="module")
def services(cluster: Cluster, test_pods: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every Service by namespace/name, once the test workload exists."""
    items = cluster.kubectl_json("get", "services", "-A")["items"]
    return {f"{s['metadata']['namespace']}/{s['metadata']['name']}": s for s in items}


@pytest.fixture(scope="module")
def all_pods(cluster: Cluster, test_pods: dict[str, Any]) -> list[dict[str, Any]]:
    return list(cluster.kubectl_json("get", "pods", "-A")["items"])


def test_ip_per_pod(
    nodes_json: dict[str, Any], all_pods: list[dict[str, Any]], kube_node: Node
) -> None:
    cidr = nodes_json.get(kube_node.name, {}).get("spec", {}).get("podCIDR")
    expect(cidr, f"{kube_node.name} has no Pod range")
    node_range = ipaddress.ip_network(cidr)
    seen: dict[str, str] = {}
    problems = []
    for pod in all_pods:
        if pod["spec"].get("nodeName") != kube_node.name:
            continue
        if pod["spec"].get("hostNetwork") or not pod["status"].get("podIP"):
            continue
        name = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        address = pod["status"]["podIP"]
        if ipaddress.ip_address(address) not in node_range:
            problems.append(f"{name} has {address}, outside {node_range}")
        if address in seen:
            problems.append(f"{name} and {seen[address]} share {address}")
        seen[address] = name
    expect(not problems, f"{kube_node.name}: " + "; ".join(problems))


@pytest.mark.parametrize("where", ["same-node", "other-node"])
def test_pod_to_pod_without_nat(cluster: Cluster, test_pods: dict[str, Any], where: str) -> None:
    client = ready_pod(test_pods, f"{NAMESPACE}/client")
    server = ready_pod(test_pods, f"{NAMESPACE}/echo-{'a' if where == 'same-node' else 'b'}")
    client_ip, server_ip = client["status"]["podIP"], server["status"]["podIP"]
    run = in_pod(cluster, f"{NAMESPACE}/client", tcp_probe(server_ip, TCP_PORT))
    expect(
        run.ok and run.stdout.strip() == client_ip,
        f"client {client_ip} on {client['spec']['nodeName']} -> {server['metadata']['name']} "
        f"{server_ip} on {server['spec']['nodeName']}: the server saw "
        f"{run.stdout.strip() or 'nothing'}, not the client's Pod IP",
        run.evidence,
    )


SERVICE_CASES = {
    "cluster-ip-same-namespace": ("echo", NAMESPACE, False),
    "dns-same-namespace": ("echo", NAMESPACE, True),
    "cluster-ip-other-namespace": ("peer", PEER_NAMESPACE, False),
    "dns-other-namespace": ("peer", PEER_NAMESPACE, True),
}


@pytest.mark.parametrize("case", list(SERVICE_CASES))
def test_pod_to_service(
    cluster: Cluster, test_pods: dict[str, Any], services: dict[str, Any], case: str
) -> None:
    service, namespace, by_name = SERVICE_CASES[case]
    client = ready_pod(test_pods, f"{NAMESPACE}/client")
    if by_name:
        # The short name in the client's own namespace; name.namespace across namespaces.
        name = service if namespace == NAMESPACE else f"{service}.{namespace}"
        script = resolve(name) + tcp_probe("$ip", 80)
    else:
        address = services[f"{namespace}/{service}"]["spec"]["clusterIP"]
        script = tcp_probe(address, 80)
    run = in_pod(cluster, f"{NAMESPACE}/client", script)
    expect(
        run.ok and run.stdout.strip().splitlines()[-1:] == [client["status"]["podIP"]],
        f"client -> Service {service}.{namespace} ({case}) got no answer naming the client",
        run.evidence,
    )


def test_dns_resolves_kubernetes_default(
    cluster: Cluster, test_pods: dict[str, Any], services: dict[str, Any]
) -> None:
    ready_pod(test_pods, f"{NAMESPACE}/client")
    wanted = services["default/kubernetes"]["spec"]["clusterIP"]
    run = in_pod(
        cluster, f"{NAMESPACE}/client", "getent hosts kubernetes.default; cat /etc/resolv.conf"
    )
    expect(
        run.ok and run.stdout.split()[:1] == [wanted],
        f"kubernetes.default did not resolve to {wanted} from a Pod",
        run.evidence,
    )


@pytest.mark.parametrize("protocol", ["tcp", "udp", "sctp"])
def test_service_forwarding(
    cluster: Cluster,
    workload: Workload,
    test_pods: dict[str, Any],
    services: dict[str, Any],
    protocol: str,
) -> None:
    if protocol == "sctp" and not workload.layout.sctp:
        pytest.skip(f"SCTP: {workload.layout.sctp_reason}")
    client = ready_pod(test_pods, f"{NAMESPACE}/client")
    address = services[f"{NAMESPACE}/echo"]["spec"]["clusterIP"]
    port = {"tcp": 80, "udp": 81, "sctp": 82}[protocol]
    probe = {"tcp": tcp_probe, "udp": udp_probe, "sctp": sctp_probe}[protocol](address, port)
    run = in_pod(cluster, f"{NAMESPACE}/client", probe)
    expect(
        run.ok and run.stdout.strip() == client["status"]["podIP"],
        f"{protocol.upper()} through Service echo {address}:{port} got no answer naming the client "
        f"(targets: tcp {TCP_PORT}, udp {UDP_PORT}, sctp {SCTP_PORT})",
        run.evidence,
    )


def test_nodeport_from_outside_the_cluster(services: dict[str, Any], kube_node: Node) -> None:
    # From this machine (outside the cluster) to the node's lab address, a lab host.
    service = services[f"{NAMESPACE}/echo-nodeport"]
    port = service["spec"]["ports"][0]["nodePort"]
    answers: list[str] = []
    for _ in range(ATTEMPTS):
        try:
            with socket.create_connection(
                (str(kube_node.address), port), NODEPORT_TIMEOUT_S
            ) as conn:
                conn.settimeout(NODEPORT_TIMEOUT_S)
                answer = conn.recv(256).decode(errors="replace").strip()
            if answer:
                return
            answers.append("(connected, no answer)")
        except OSError as exc:
            answers.append(f"{type(exc).__name__}: {exc}")
        time.sleep(1)
    fail(
        f"NodePort {kube_node.address}:{port} gave no answer from outside the cluster",
        "\n".join(answers),
    )
