"""What an upgrade costs the lab's users, measured: a workload behind a Service, and two
bounded probes on a lab node during every stage (the drills' probes,
``toolkit/drills/probes.py``): the API's /readyz through the VIP, and the Service.

The workload is a Deployment of three replicas with a PodDisruptionBudget (one may be
unavailable) behind a ClusterIP Service, so a drain moves its Pods one at a time; each Pod
keeps serving for a few seconds after it is told to stop, while the Service stops sending
it requests (a preStop pause), as a Deployment that must not drop requests does. Its image
is the bundle's kube-proxy image (a Debian userland with perl), never pulled.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from toolkit import kube
from toolkit.constants import DRILL_DIR
from toolkit.drills import probes
from toolkit.drills.lab_ops import start_probe, stop_probe
from toolkit.hosts import remote
from toolkit.lab.spec import Lab, Node

NAMESPACE = "k8slab-upgrade"
APP = "upgrade-probe"
REPLICAS = 3
PORT = 8080
API_PROBE, SERVICE_PROBE = "upgrade-api", "upgrade-service"
INTERVAL_S, REQUEST_TIMEOUT_S = 0.25, 2
# Bounds of one stage's probes: a stage that outlasts them is measured for this long only.
PROBE_MAX_S = 3600
PROBE_MAX_COUNT = int(PROBE_MAX_S / INTERVAL_S)
ROLLOUT_TIMEOUT_S = 240

# Answers every HTTP request with 200; one connection at a time is plenty for one client.
HTTP_SERVER = (
    "use IO::Socket::INET; $s = IO::Socket::INET->new(LocalPort => {port}, Listen => 64,"
    " ReuseAddr => 1) or die $!; while ($c = $s->accept) {{ while (<$c>) {{ last if /^\\r?$/ }}"
    ' print $c "HTTP/1.0 200 OK\\r\\nContent-Length: 3\\r\\n\\r\\nok\\n"; close $c }}'
)


def manifest(lab: Lab, image: str) -> str:
    """The namespace, Deployment, PodDisruptionBudget and Service, as JSON documents."""
    labels = {"app": APP}
    spread = len(lab.workers) >= 2
    pod: dict[str, Any] = {
        "terminationGracePeriodSeconds": 20,
        "containers": [
            {
                "name": "http",
                "image": image,
                "imagePullPolicy": "Never",
                "command": ["perl", "-e", HTTP_SERVER.format(port=PORT)],
                "ports": [{"containerPort": PORT}],
                "readinessProbe": {
                    "httpGet": {"path": "/", "port": PORT},
                    "periodSeconds": 2,
                },
                # Endpoints drop a terminating Pod within a second or two; until every
                # node's kube-proxy has followed, the Pod must still answer.
                "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
            }
        ],
    }
    if not spread:
        # One worker or none: the replicas may also run on control planes, or a drain of
        # the only worker could never move them anywhere.
        pod["tolerations"] = [
            {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
        ]
    documents = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": APP, "namespace": NAMESPACE},
            "spec": {
                "replicas": REPLICAS,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": pod},
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": APP, "namespace": NAMESPACE},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": APP, "namespace": NAMESPACE},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": PORT}]},
        },
    ]
    return "\n---\n".join(json.dumps(document) for document in documents)


def kube_proxy_image(lab: Lab) -> str:
    """The image kube-proxy's DaemonSet runs (every node has it imported)."""
    found = kube.kubectl_json(lab, ["get", "daemonset", "-n", "kube-system", "kube-proxy"])
    return str(found["spec"]["template"]["spec"]["containers"][0]["image"])


def workload_image(lab: Lab) -> str:
    """The image of the workload a cut-short run deployed (a resumed run keeps it, or
    applying the workload again would roll it), else kube-proxy's."""
    args = ["get", "deployment", APP, "-n", NAMESPACE, "-o", "json", "--ignore-not-found"]
    found = kube.kubectl_ok(lab, args).strip()
    if found:
        return str(json.loads(found)["spec"]["template"]["spec"]["containers"][0]["image"])
    return kube_proxy_image(lab)


def deploy(lab: Lab) -> str:
    """Apply the workload (again: it is idempotent), wait until it runs; its Service's address."""
    kube.apply(lab, manifest(lab, workload_image(lab)))
    kube.wait_rolled_out(lab, f"deployment/{APP}", NAMESPACE, ROLLOUT_TIMEOUT_S)
    service = kube.kubectl_json(lab, ["get", "service", APP, "-n", NAMESPACE])
    return f"{service['spec']['clusterIP']}:80"


def remove(lab: Lab) -> None:
    args = ["delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false"]
    kube.kubectl(lab, args)


def probe_node(lab: Lab, busy: Node | None) -> Node:
    """Where a stage's probes run: a node that stage leaves alone, workers first."""
    candidates = [n for n in lab.workers + lab.control_planes if n != busy]
    return candidates[0] if candidates else lab.control_planes[0]


@dataclass(frozen=True)
class Figures:
    """What one probe saw: requests, how many failed, the longest time without an answer."""

    requests: int = 0
    failed: int = 0
    longest_gap_s: float = 0.0

    @classmethod
    def of(cls, samples: list[probes.Sample]) -> Figures:
        return cls(
            len(samples),
            sum(1 for s in samples if not s.ok),
            round(probes.longest_gap(samples), 2),
        )

    def plus(self, other: Figures) -> Figures:
        """Two runs of a stage's probe (before and after a resume)."""
        return Figures(
            self.requests + other.requests,
            self.failed + other.failed,
            max(self.longest_gap_s, other.longest_gap_s),
        )


def leftover(lab: Lab, node: Node) -> dict[str, Figures]:
    """What an earlier run's probes on ``node`` saw, stopped first if they still run (a
    run cut short leaves them running until their bound); nothing when there were none."""
    found = {}
    for key, name in (("api", API_PROBE), ("service", SERVICE_PROBE)):
        log = f"{DRILL_DIR}/{name}.log"
        script = (
            f"if [ -e {log} ] && [ ! -e {log}.done ]; then {probes.stop_command(name)}; "
            f"else {probes.read_command(name)}; fi"
        )
        found[key] = Figures.of(probes.parse_samples(remote.root(lab, node, script, timeout=90)))
    return found


def start(lab: Lab, node: Node, service: str) -> dict[str, Figures]:
    """Start both probes on ``node``; what an earlier run's probes there saw (see
    :func:`leftover`)."""
    earlier = leftover(lab, node)
    start_probe(
        lab,
        node,
        API_PROBE,
        probes.loop_script(
            API_PROBE,
            probes.readyz_request(lab, REQUEST_TIMEOUT_S),
            PROBE_MAX_COUNT,
            PROBE_MAX_S,
            INTERVAL_S,
        ),
    )
    request = (
        f"curl -s -o /dev/null -w '%{{http_code}}' --max-time {REQUEST_TIMEOUT_S} http://{service}/"
    )
    start_probe(
        lab,
        node,
        SERVICE_PROBE,
        probes.loop_script(SERVICE_PROBE, request, PROBE_MAX_COUNT, PROBE_MAX_S, INTERVAL_S),
    )
    return earlier


def stop(lab: Lab, node: Node) -> dict[str, Figures]:
    """Stop both probes on ``node`` (bounded) and say what each saw."""
    return {
        "api": Figures.of(stop_probe(lab, node, API_PROBE)),
        "service": Figures.of(stop_probe(lab, node, SERVICE_PROBE)),
    }


def as_dict(figures: dict[str, Figures]) -> dict[str, Any]:
    return {name: asdict(value) for name, value in figures.items()}


def from_dict(data: dict[str, Any]) -> dict[str, Figures]:
    return {name: Figures(**data[name]) for name in ("api", "service") if name in data}
