"""NetworkPolicy checks: their test Pods, the policies, and each case with its verdict.

In the style of cilium's connectivity test, each case names its source Pod and node, its
destination and port, and the verdict it expects; a connection that should be refused
and is not is a failure. Namespaces of their own: ``k8slab-policy`` (the servers web-a on
node a and web-b on node b, each on ports 8080 and 9090, and a Service per server),
``k8slab-policy-client`` (client-a and client-b labelled ``role=allowed``, stranger-a
``role=stranger``), ``k8slab-policy-other`` (outsider-a, ``role=allowed`` but in the wrong
namespace) and ``k8slab-policy-egress`` (resolver-a). The images are the verify
workload's (the bundle's kube-proxy image), never pulled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from toolkit.verify.cluster import Cluster
from toolkit.verify.probes import tcp_probe
from toolkit.verify.workload import TCP_ECHO, Layout, tolerations

SERVERS = "k8slab-policy"
CLIENTS = "k8slab-policy-client"
OTHER = "k8slab-policy-other"
EGRESS = "k8slab-policy-egress"
NAMESPACES = (SERVERS, CLIENTS, OTHER, EGRESS)
PORT = 8080  # what the allow rule names
OTHER_PORT = 9090  # what it does not
SERVICE_PORT = 80  # each server's Service, to PORT
DNS_NAME = "kubernetes.default.svc.cluster.local"
# Every test Pod: namespace/name -> (layout node "a" or "b", labels).
PODS = {
    f"{SERVERS}/web-a": ("a", {"app": "web", "server": "a"}),
    f"{SERVERS}/web-b": ("b", {"app": "web", "server": "b"}),
    f"{CLIENTS}/client-a": ("a", {"role": "allowed"}),
    f"{CLIENTS}/client-b": ("b", {"role": "allowed"}),
    f"{CLIENTS}/stranger-a": ("a", {"role": "stranger"}),
    f"{OTHER}/outsider-a": ("a", {"role": "allowed"}),
    f"{EGRESS}/resolver-a": ("a", {"role": "resolver"}),
}


@dataclass(frozen=True)
class Policy:
    name: str
    namespace: str
    spec: dict[str, object]

    def manifest(self) -> str:
        return json.dumps(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self.spec,
            }
        )


DENY_INGRESS = Policy(
    "default-deny-ingress", SERVERS, {"podSelector": {}, "policyTypes": ["Ingress"]}
)
ALLOW_WEB = Policy(
    "allow-clients-to-web",
    SERVERS,
    {
        "podSelector": {"matchLabels": {"app": "web"}},
        "policyTypes": ["Ingress"],
        "ingress": [
            {
                # One peer: that namespace AND that label, both.
                "from": [
                    {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": CLIENTS}
                        },
                        "podSelector": {"matchLabels": {"role": "allowed"}},
                    }
                ],
                "ports": [{"protocol": "TCP", "port": PORT}],
            }
        ],
    },
)
DENY_EGRESS = Policy("default-deny-egress", EGRESS, {"podSelector": {}, "policyTypes": ["Egress"]})
ALLOW_DNS = Policy(
    "allow-dns",
    EGRESS,
    {
        "podSelector": {},
        "policyTypes": ["Egress"],
        "egress": [{"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}],
    },
)
# In the order they are applied: each stays in force for the cases after it.
POLICIES = (DENY_EGRESS, ALLOW_DNS, DENY_INGRESS, ALLOW_WEB)


@dataclass(frozen=True)
class Case:
    """One connection and the verdict expected: ``target`` is a Pod (namespace/name), a
    Service (``service:namespace/name``) or a name to resolve (``dns:name``)."""

    source: str
    target: str
    port: int
    allowed: bool

    @property
    def verdict(self) -> str:
        return "allowed" if self.allowed else "refused"

    @property
    def short(self) -> str:
        """The connection in a few words: ``client-a-to-web-a-8080``."""
        kind, _, name = self.target.rpartition(":")
        target = "dns" if kind == "dns" else name.split("/")[1]
        if kind == "service":
            target = f"service-{target}"
        return f"{self.source.split('/')[1]}-to-{target}-{self.port}"

    def describe(self, layout: Layout) -> str:
        """Source Pod and node, destination and its node, port, expected verdict."""

        def node(pod: str) -> str:
            return layout.a.name if PODS[pod][0] == "a" else layout.b.name

        kind, _, name = self.target.rpartition(":")
        if kind == "dns":
            where = f"DNS {name} (kube-dns)"
        elif kind == "service":
            # Each Service selects the server Pod of its own name.
            where = f"Service {name} (Pod {name} on {node(name)})"
        else:
            where = f"{name} on {node(name)}"
        source = f"{self.source} on {node(self.source)}"
        return f"{source} -> {where}:{self.port}, expected {self.verdict}"


def connection_script(case: Case, address: str, tries: int) -> str:
    """Bash, run in the source Pod: make the case's connection (to ``address``, a Pod's or
    a Service's; a name to resolve needs none) ``tries`` times at most, exit 0 once made."""
    kind, _, name = case.target.rpartition(":")
    if kind == "dns":
        return (
            f"for i in $(seq {tries}); do timeout 5 getent hosts {name} && exit 0; sleep 1; "
            "done; exit 1"
        )
    return tcp_probe(address, case.port, tries)


def verdict_problem(case: Case, connected: bool, layout: Layout) -> str:
    """What is wrong with a connection's outcome ("" when it is the case's verdict): an
    allowed one not made, or a refused one made."""
    if connected == case.allowed:
        return ""
    what = "connected, should be refused" if connected else "no connection"
    return f"{what}: {case.describe(layout)}"


def case(source: str, target: str, port: int, allowed: bool) -> Case:
    return Case(source, target, port, allowed)


WEB_A = f"{SERVERS}/web-a"
WEB_B = f"{SERVERS}/web-b"
CLIENT_A = f"{CLIENTS}/client-a"
CLIENT_B = f"{CLIENTS}/client-b"
RESOLVER = f"{EGRESS}/resolver-a"
DNS = f"dns:{DNS_NAME}"
# Each phase's cases, by the id its check reports, in the order they run.
EGRESS_DENIED = {"dns-denied": case(RESOLVER, DNS, 53, False)}
EGRESS_DNS_ALLOWED = {
    "dns-allowed": case(RESOLVER, DNS, 53, True),
    "other-egress-still-denied": case(RESOLVER, WEB_B, PORT, False),
}
INGRESS_DENIED = {
    "pod-same-node": case(CLIENT_A, WEB_A, PORT, False),
    "pod-other-node": case(CLIENT_B, WEB_A, PORT, False),
    "service-same-node": case(CLIENT_A, f"service:{SERVERS}/web-a", SERVICE_PORT, False),
    "service-other-node": case(CLIENT_B, f"service:{SERVERS}/web-a", SERVICE_PORT, False),
}
INGRESS_ALLOWED = {
    "named-pod-same-node": case(CLIENT_A, WEB_A, PORT, True),
    "named-pod-other-node": case(CLIENT_B, WEB_A, PORT, True),
    "named-pod-through-service": case(CLIENT_B, f"service:{SERVERS}/web-a", SERVICE_PORT, True),
    "wrong-label": case(f"{CLIENTS}/stranger-a", WEB_A, PORT, False),
    "wrong-namespace": case(f"{OTHER}/outsider-a", WEB_A, PORT, False),
    "other-port": case(CLIENT_A, WEB_A, OTHER_PORT, False),
}
PHASES = {
    DENY_EGRESS.name: EGRESS_DENIED,
    ALLOW_DNS.name: EGRESS_DNS_ALLOWED,
    DENY_INGRESS.name: INGRESS_DENIED,
    ALLOW_WEB.name: INGRESS_ALLOWED,
}
# What must connect before any policy: every case's connection, allowed.
BASELINE = {
    c.short: Case(c.source, c.target, c.port, True)
    for phase in PHASES.values()
    for c in phase.values()
}
# The group's checks of each set of cases (the suite's test functions), by their name.
CHECKS = {
    "connects_before_any_policy": BASELINE,
    "egress_deny_blocks_dns": EGRESS_DENIED,
    "egress_allows_only_dns": EGRESS_DNS_ALLOWED,
    "default_deny_ingress": INGRESS_DENIED,
    "allow_rule_admits_exactly_what_it_names": INGRESS_ALLOWED,
}


def checks_with_a_pod_on(where: str) -> set[str]:
    """The check ids of every case with a Pod on layout node ``where`` ("a" or "b") at
    either end (a Service's end is its server Pod): what fails when no Pod starts there."""
    return {
        f"network-policy/{check}[{case_id}]"
        for check, cases in CHECKS.items()
        for case_id, case in cases.items()
        if any(
            PODS.get(pod, ("",))[0] == where
            for pod in (case.source, case.target.rpartition(":")[2])
        )
    }


# The connection each policy is polled with until it is in force.
SENTINELS = {
    DENY_EGRESS.name: EGRESS_DENIED["dns-denied"],
    ALLOW_DNS.name: EGRESS_DNS_ALLOWED["dns-allowed"],
    DENY_INGRESS.name: INGRESS_DENIED["pod-same-node"],
    ALLOW_WEB.name: INGRESS_ALLOWED["named-pod-same-node"],
}


def _pod(key: str, layout: Layout) -> str:
    namespace, name = key.split("/")
    where, labels = PODS[key]
    node = layout.a.name if where == "a" else layout.b.name
    if labels.get("app") == "web":
        containers = [
            {
                "name": f"tcp-{port}",
                "image": layout.image,
                "imagePullPolicy": "Never",
                "command": ["perl", "-MIO::Socket::INET", "-e", TCP_ECHO.format(port=port)],
                "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1},
            }
            for port in (PORT, OTHER_PORT)
        ]
    else:
        containers = [
            {
                "name": "client",
                "image": layout.image,
                "imagePullPolicy": "Never",
                "command": ["sleep", "infinity"],
            }
        ]
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {
                "nodeName": node,
                "terminationGracePeriodSeconds": 0,
                "tolerations": json.loads(tolerations(layout)),
                "containers": containers,
            },
        }
    )


def _service(server: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"web-{server}", "namespace": SERVERS},
            "spec": {
                "selector": {"app": "web", "server": server},
                "ports": [{"protocol": "TCP", "port": SERVICE_PORT, "targetPort": PORT}],
            },
        }
    )


def manifests(layout: Layout) -> str:
    """The namespaces, test Pods and Services, without any policy."""
    documents = [
        json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}})
        for n in NAMESPACES
    ]
    documents += [_pod(key, layout) for key in PODS]
    documents += [_service("a"), _service("b")]
    return "\n---\n".join(documents)


def remove(cluster: Cluster) -> None:
    """Delete the namespaces (their Pods and policies with them), without waiting."""
    cluster.kubectl("delete", "namespace", *NAMESPACES, "--ignore-not-found", "--wait=false")
