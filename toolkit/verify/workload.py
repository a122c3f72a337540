"""The test Pods and Services a verification run creates, and their removal.

Everything lives in two namespaces of its own (a second one for cross-namespace
checks); the only things outside them are a label and a taint on two nodes, which the
scheduling checks need and :func:`remove` takes away again. Every image is the bundle's
kube-proxy image (a Debian userland with bash, perl and getent), never pulled.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from toolkit.kube import is_ready
from toolkit.lab.spec import Node, Role
from toolkit.verify.cluster import Cluster, Run, eventually

NAMESPACE = "k8slab-verify"
PEER_NAMESPACE = "k8slab-verify-peer"
SSD_LABEL = ("disk", "ssd")
TAINT_KEY = "k8slab-verify/dedicated"
TCP_PORT = 8080
UDP_PORT = 8081
SCTP_PORT = 8082
READY_TIMEOUT_S = 75
NAMESPACES_GONE_TIMEOUT_S = 90
APPLY_TIMEOUT_S = 90
# Waiting for the namespaces, then applying, plus the label and the taint.
APPLY_WAIT_S = NAMESPACES_GONE_TIMEOUT_S + APPLY_TIMEOUT_S + 30

# Answers each TCP connection, and each UDP datagram, with the address it came from:
# a receiver that sees the sender's Pod IP proves there was no NAT on the way.
TCP_ECHO = (
    "$s = IO::Socket::INET->new(LocalPort => {port}, Listen => 64, ReuseAddr => 1) or die $!;"
    ' while ($c = $s->accept) {{ print $c $c->peerhost, "\\n"; close $c }}'
)
SCTP_ECHO = (
    "use Socket; $s = IO::Socket::INET->new(LocalPort => {port}, Listen => 16, Proto => 132,"
    " Type => SOCK_STREAM, ReuseAddr => 1) or die $!;"
    ' while ($c = $s->accept) {{ print $c $c->peerhost, "\\n"; close $c }}'
)
UDP_ECHO = (
    "$s = IO::Socket::INET->new(LocalPort => {port}, Proto => 'udp') or die $!;"
    ' while ($s->recv($m, 512)) {{ $s->send($s->peerhost . "\\n") }}'
)


@dataclass(frozen=True)
class Layout:
    """Where the test Pods run: node ``a`` holds a client and a server, node ``b`` a server
    (and the other namespace's server); scheduling checks taint ``a`` and label ``b``."""

    a: Node
    b: Node
    image: str
    sctp: bool = False  # whether the nodes' kernel offers SCTP
    sctp_reason: str = ""
    # Every node that runs Pods: each gets a Pod of its own, run through its runtime.
    kube_nodes: tuple[str, ...] = ()

    @property
    def a_tolerates_control_plane(self) -> bool:
        return Role.CONTROL_PLANE in (self.a.role, self.b.role)


@dataclass
class Workload:
    cluster: Cluster
    layout: Layout
    # Documents of other suites' own, applied with the rest (toolkit/verify/load_balancer.py).
    extra: tuple[str, ...] = ()
    applied: Run | None = None
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> None:
        """Label and taint, and apply every manifest, in the background."""
        self._thread = threading.Thread(target=self._apply, name="verify-workload", daemon=True)
        self._thread.start()

    def _apply(self) -> None:
        a, b = self.layout.a.name, self.layout.b.name
        # A previous run's namespaces may still be terminating (removal does not wait), and
        # nothing can be created in a terminating namespace.
        eventually(
            lambda: self.cluster.kubectl(
                "get", "namespace", NAMESPACE, PEER_NAMESPACE, "--ignore-not-found", "-o", "name"
            ),
            lambda run: run.ok and not run.stdout.strip(),
            NAMESPACES_GONE_TIMEOUT_S,
        )
        self.cluster.kubectl("label", "node", b, "=".join(SSD_LABEL), "--overwrite")
        self.cluster.kubectl("taint", "node", a, f"{TAINT_KEY}=verify:NoSchedule", "--overwrite")
        documents = "\n---\n".join([manifests(self.layout), *self.extra])
        self.applied = self.cluster.apply(documents, timeout=APPLY_TIMEOUT_S)

    def wait_applied(self) -> Run:
        if self._thread is not None:
            self._thread.join(timeout=APPLY_WAIT_S)
        if self.applied is None:
            return Run(self.cluster.first.name, "kubectl apply (verify workload)", 1, "not applied")
        return self.applied

    def pods(self, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
        run = self.cluster.kubectl("get", "pods", "-n", namespace, "-o", "json")
        return list(json.loads(run.stdout)["items"]) if run.ok else []

    def wait_pods_ready(
        self, names: list[str], namespace: str = NAMESPACE, timeout_s: float = READY_TIMEOUT_S
    ) -> tuple[bool, dict[str, dict[str, Any]]]:
        """Wait (bounded) until the named Pods are Ready; return them by name either way."""
        self.wait_applied()

        def probe() -> dict[str, dict[str, Any]]:
            return {p["metadata"]["name"]: p for p in self.pods(namespace)}

        return eventually(probe, lambda pods: all(pod_ready(pods.get(n)) for n in names), timeout_s)

    def remove(self) -> None:
        """Delete everything the run created; bounded, and whatever state it is in."""
        if self._thread is not None:
            self._thread.join(timeout=APPLY_WAIT_S)
        a, b = self.layout.a.name, self.layout.b.name
        self.cluster.kubectl("taint", "node", a, f"{TAINT_KEY}-")
        self.cluster.kubectl("label", "node", b, f"{SSD_LABEL[0]}-")
        self.cluster.kubectl(
            "delete", "namespace", NAMESPACE, PEER_NAMESPACE, "--ignore-not-found", "--wait=false"
        )


def pod_ready(pod: dict[str, Any] | None) -> bool:
    return pod is not None and is_ready(pod)


def describe_pods(pods: dict[str, dict[str, Any]]) -> str:
    """One line per Pod: name, node, phase, readiness and why not, for evidence."""
    lines = []
    for name, pod in sorted(pods.items()):
        status = pod.get("status", {})
        waiting = [
            f"{c['name']}: {_waiting_reason(c)}"
            for c in status.get("containerStatuses", [])
            if not c.get("ready")
        ]
        reasons = [
            f"{c['type']}={c['status']} {c.get('reason', '')} {c.get('message', '')}".strip()
            for c in status.get("conditions", [])
            if c["status"] != "True"
        ]
        lines.append(
            f"{name} node={pod['spec'].get('nodeName', '-')} phase={status.get('phase')} "
            f"ready={pod_ready(pod)} ip={status.get('podIP', '-')} " + "; ".join(waiting + reasons)
        )
    return "\n".join(lines) or "(no Pods)"


def _waiting_reason(container_status: dict[str, Any]) -> str:
    for state in container_status.get("state", {}).values():
        return str(state.get("reason", ""))
    return ""


CONTROL_PLANE_TOLERATION = {
    "key": "node-role.kubernetes.io/control-plane",
    "operator": "Exists",
    "effect": "NoSchedule",
}


def tolerations(layout: Layout, verify_taint: bool = True) -> str:
    """The test Pods' tolerations: the verify taint on node ``a`` (unless ``verify_taint``
    is off: the Pods that must stay away from it), and kubeadm's control-plane taint when
    one of the two nodes is a control plane (a lab with fewer than two workers), so that
    only the taint under test decides where they go."""
    tolerations = []
    if verify_taint:
        tolerations.append({"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"})
    if layout.a_tolerates_control_plane:
        tolerations.append(CONTROL_PLANE_TOLERATION)
    return json.dumps(tolerations)


def _server_pod(name: str, namespace: str, node: str, layout: Layout) -> str:
    tcp = json.dumps(TCP_ECHO.format(port=TCP_PORT))
    udp = json.dumps(UDP_ECHO.format(port=UDP_PORT))
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {namespace}, labels: {{app: echo}}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 0
  tolerations: {tolerations(layout)}
  containers:
    - name: tcp
      image: {layout.image}
      imagePullPolicy: Never
      command: [perl, -MIO::Socket::INET, -e, {tcp}]
      readinessProbe: {{tcpSocket: {{port: {TCP_PORT}}}, periodSeconds: 1}}
    - name: udp
      image: {layout.image}
      imagePullPolicy: Never
      command: [perl, -MIO::Socket::INET, -e, {udp}]
{_sctp_container(layout)}    - name: sidecar
      image: {layout.image}
      imagePullPolicy: Never
      command: [sleep, infinity]
"""


def _sctp_container(layout: Layout) -> str:
    if not layout.sctp:
        return ""
    sctp = json.dumps(SCTP_ECHO.format(port=SCTP_PORT))
    return f"""    - name: sctp
      image: {layout.image}
      imagePullPolicy: Never
      command: [perl, -MIO::Socket::INET, -e, {sctp}]
"""


def _client_pod(layout: Layout) -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: {NAMESPACE}, labels: {{app: client}}}}
spec:
  nodeName: {layout.a.name}
  terminationGracePeriodSeconds: 0
  tolerations: {tolerations(layout)}
  containers:
    - name: client
      image: {layout.image}
      imagePullPolicy: Never
      command: [sleep, infinity]
"""


def _service(name: str, namespace: str, layout: Layout, kind: str = "ClusterIP") -> str:
    udp = ""
    if kind == "ClusterIP":
        udp = f"\n    - {{name: udp, protocol: UDP, port: 81, targetPort: {UDP_PORT}}}"
        if layout.sctp:
            udp += f"\n    - {{name: sctp, protocol: SCTP, port: 82, targetPort: {SCTP_PORT}}}"
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  type: {kind}
  selector: {{app: echo}}
  ports:
    - {{name: tcp, protocol: TCP, port: 80, targetPort: {TCP_PORT}}}{udp}
"""


def _scheduled_deployment(name: str, extra_spec: str, layout: Layout, replicas: int = 2) -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {NAMESPACE}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 0
{extra_spec}
      containers:
        - name: sleep
          image: {layout.image}
          imagePullPolicy: Never
          command: [sleep, infinity]
"""


def lifecycle_pod(node: str) -> str:
    """The name of the Pod that the nodes suite runs, logs, execs into and deletes on
    ``node``, through whichever runtime the node has."""
    return f"lifecycle-{node}"


LIFECYCLE_GREETING = "k8slab lifecycle Pod on"


def _lifecycle_pod(node: str, layout: Layout) -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {lifecycle_pod(node)}, namespace: {NAMESPACE}, labels: {{app: lifecycle}}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 0
  tolerations: [{{operator: Exists}}]
  containers:
    - name: main
      image: {layout.image}
      imagePullPolicy: Never
      env: [{{name: NODE, valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}}}]
      command: [sh, -c, 'echo "{LIFECYCLE_GREETING} $NODE"; exec sleep infinity']
"""


def manifests(layout: Layout) -> str:
    a, b = layout.a.name, layout.b.name
    documents = [
        f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NAMESPACE}}}",
        f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {PEER_NAMESPACE}}}",
        _server_pod("echo-a", NAMESPACE, a, layout),
        _server_pod("echo-b", NAMESPACE, b, layout),
        _server_pod("peer", PEER_NAMESPACE, b, layout),
        _client_pod(layout),
        _service("echo", NAMESPACE, layout),
        _service("echo-nodeport", NAMESPACE, layout, "NodePort"),
        _service("peer", PEER_NAMESPACE, layout),
        _scheduled_deployment(
            "ssd",
            f"      nodeSelector: {{{SSD_LABEL[0]}: {SSD_LABEL[1]}}}\n"
            f"      tolerations: {tolerations(layout, verify_taint=False)}",
            layout,
        ),
        # No toleration of the verify taint: the scheduler must keep these off node a.
        _scheduled_deployment(
            "untolerated",
            f"      tolerations: {tolerations(layout, verify_taint=False)}",
            layout,
            replicas=3,
        ),
        _scheduled_deployment(
            "tolerating",
            f"      nodeSelector: {{kubernetes.io/hostname: {a}}}\n"
            f"      tolerations: {tolerations(layout)}",
            layout,
            replicas=1,
        ),
        *(_lifecycle_pod(node, layout) for node in layout.kube_nodes),
    ]
    return "\n---\n".join(d.strip("\n") for d in documents)
