"""LoadBalancer Services as the verify suite and the fault module see them: a test Service
of type LoadBalancer with one backend Pod that answers with its own name, MetalLB's record
of which speaker announces the Service's address, and probes of that address from this
machine, which is on the lab network as a client outside the cluster would be.

The probes send traffic only to an address of the lab's own pool, on the lab's network.
"""

from __future__ import annotations

import json
import socket
import subprocess

from toolkit.verify.cluster import Cluster
from toolkit.verify.workload import NAMESPACE, TCP_PORT, UDP_PORT, Layout, tolerations

METALLB_NAMESPACE = "metallb-system"
SERVICE = "lb-echo"  # the Service, and its one backend Pod
PORTS = {"tcp": 80, "udp": 81}
PROBE_TIMEOUT_S = 3
# MetalLB's record of who announces a Service in L2 mode: one ServiceL2Status per
# announcing speaker, labelled with the Service (internal/k8s/controllers/values.go).
L2_STATUS_LABELS = "metallb.io/service-name={service},metallb.io/service-namespace={namespace}"

# Answer each TCP connection, and each UDP datagram, with the Pod's name.
NAME_TCP = (
    f"$s = IO::Socket::INET->new(LocalPort => {TCP_PORT}, Listen => 64, ReuseAddr => 1)"
    ' or die $!; while ($c = $s->accept) { print $c "$ENV{POD_NAME}\\n"; close $c }'
)
NAME_UDP = (
    f"$s = IO::Socket::INET->new(LocalPort => {UDP_PORT}, Proto => 'udp') or die $!;"
    ' while ($s->recv($m, 512)) { $s->send("$ENV{POD_NAME}\\n") }'
)


def _container(protocol: str, program: str, layout: Layout, extra: str = "") -> str:
    return f"""
    - name: {protocol}
      image: {layout.image}
      imagePullPolicy: Never
      env: [{{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}]
      command: [perl, -MIO::Socket::INET, -e, {json.dumps(program)}]{extra}"""


def manifests(layout: Layout, namespace: str = NAMESPACE) -> str:
    """The backend Pod and the LoadBalancer Service in front of it, TCP and UDP. The Pod
    runs on node a, beside the test client: the faults that break a node break node b, and
    the Service's answers then still say whether the address reaches a backend."""
    ready = f"\n      readinessProbe: {{tcpSocket: {{port: {TCP_PORT}}}, periodSeconds: 1}}"
    tcp = _container("tcp", NAME_TCP, layout, ready)
    udp = _container("udp", NAME_UDP, layout)
    return f"""apiVersion: v1
kind: Pod
metadata: {{name: {SERVICE}, namespace: {namespace}, labels: {{app: {SERVICE}}}}}
spec:
  nodeName: {layout.a.name}
  terminationGracePeriodSeconds: 0
  tolerations: {tolerations(layout)}
  containers:{tcp}{udp}
---
apiVersion: v1
kind: Service
metadata: {{name: {SERVICE}, namespace: {namespace}}}
spec:
  type: LoadBalancer
  selector: {{app: {SERVICE}}}
  ports:
    - {{name: tcp, protocol: TCP, port: {PORTS["tcp"]}, targetPort: {TCP_PORT}}}
    - {{name: udp, protocol: UDP, port: {PORTS["udp"]}, targetPort: {UDP_PORT}}}"""


def service_address(cluster: Cluster, namespace: str = NAMESPACE) -> str:
    """The address MetalLB gave the test Service ("" while it has none)."""
    run = cluster.kubectl(
        "get",
        "service",
        SERVICE,
        "-n",
        namespace,
        "-o",
        "jsonpath={.status.loadBalancer.ingress[*].ip}",
    )
    return run.stdout.strip() if run.ok else ""


def announcers(cluster: Cluster, namespace: str = NAMESPACE) -> list[str]:
    """The nodes whose speaker announces the test Service, by MetalLB's own record."""
    run = cluster.kubectl(
        "get",
        "servicel2statuses",
        "-n",
        METALLB_NAMESPACE,
        "-l",
        L2_STATUS_LABELS.format(service=SERVICE, namespace=namespace),
        "-o",
        "json",
    )
    if not run.ok:
        return []
    return sorted(item["status"].get("node", "") for item in json.loads(run.stdout)["items"])


def answer(address: str, protocol: str) -> str:
    """What the Service says at ``address`` over ``protocol`` (tcp or udp), asked from
    this machine; an OSError when nothing answers in time."""
    port = PORTS[protocol]
    if protocol == "tcp":
        with socket.create_connection((address, port), PROBE_TIMEOUT_S) as conn:
            conn.settimeout(PROBE_TIMEOUT_S)
            return conn.recv(256).decode(errors="replace").strip()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(PROBE_TIMEOUT_S)
        sock.sendto(b"?", (address, port))
        return sock.recv(256).decode(errors="replace").strip()


def probe(address: str, protocol: str) -> str:
    """:func:`answer`, or the error in words (for polling and evidence)."""
    try:
        return answer(address, protocol)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


def neighbour_macs(ip_neigh: str) -> set[str]:
    """The link addresses in `ip neigh show to ADDR` (an entry still resolving has none)."""
    found = set()
    for line in ip_neigh.splitlines():
        words = line.split()
        if "lladdr" in words[:-1]:
            found.add(words[words.index("lladdr") + 1].lower())
    return found


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)


def forget_neighbour(address: str) -> str:
    """Drop this machine's ARP entry for ``address``, so that the next packet asks anew
    who has it; what went wrong, if anything (it needs CAP_NET_ADMIN)."""
    result = _ip("neigh", "flush", "to", address)
    return "" if result.returncode == 0 else result.stderr.strip()


def neighbour(address: str) -> str:
    """This machine's ARP entry for ``address`` (`ip neigh show to ADDR`)."""
    result = _ip("neigh", "show", "to", address)
    return (result.stdout + result.stderr).strip()


def mac_command(address: str) -> str:
    """A node's command printing the MAC of its interface that holds ``address``."""
    return (
        f"i=$(ip -o -4 addr show | awk -v a='{address}/' 'index($4, a) == 1 {{print $2; exit}}')"
        ' && cat "/sys/class/net/$i/address"'
    )
