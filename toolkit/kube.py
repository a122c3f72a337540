"""The cluster client: every request the toolkit makes of a lab's Kubernetes API.

kubectl runs inside the lab (on a control plane, with the admin kubeconfig, as root), not
from this machine against the VIP, so that every request to cluster addresses starts on
a lab node. Commands go through the one host layer, :mod:`toolkit.hosts.ssh`; the verify
suites run the same command lines through testinfra (``kubectl_command``,
``apply_command``, ``holds_vip_command``, ``healthz_command``, ``APISERVER_CLIENT_CERT``).
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable, Sequence
from typing import Any

from toolkit import leases
from toolkit.constants import APISERVER_PORT, CONTROLLER_MANAGER_PORT, SCHEDULER_PORT
from toolkit.errors import HostError, K8slabError
from toolkit.hosts import remote
from toolkit.lab.spec import Lab, Node
from toolkit.poll import problems_gone, wait_until

ADMIN_KUBECONFIG = "/etc/kubernetes/admin.conf"
PKI_DIR = "/etc/kubernetes/pki"
# A client certificate of the cluster CA, and the server's certificate checked against
# that CA, for asking one API server directly (not anonymous, not --insecure).
APISERVER_CLIENT_CERT = (
    f"--cacert {PKI_DIR}/ca.crt --cert {PKI_DIR}/apiserver-kubelet-client.crt "
    f"--key {PKI_DIR}/apiserver-kubelet-client.key"
)
# The components a control plane runs beside its API server, and where each serves /healthz.
COMPONENT_PORTS = {
    "kube-scheduler": SCHEDULER_PORT,
    "kube-controller-manager": CONTROLLER_MANAGER_PORT,
}
READY_TIMEOUT_S = 300
POLL_INTERVAL_S = 3


class ClusterError(K8slabError):
    """The cluster's API refused or failed a request (kubectl exited non-zero)."""


# --- command lines (run as root on a control plane) -----------------------------------------


def kubectl_command(args: Sequence[str]) -> str:
    """kubectl with the admin kubeconfig and ``args``, each quoted for the shell."""
    return " ".join(["kubectl", "--kubeconfig", ADMIN_KUBECONFIG, *map(shlex.quote, args)])


def apply_command(manifest: str) -> str:
    """``kubectl apply`` of ``manifest`` (YAML or JSON documents) given on stdin."""
    return f"{kubectl_command(['apply', '-f', '-'])} <<'K8SLAB_EOF'\n{manifest}\nK8SLAB_EOF"


def holds_vip_command(lab: Lab) -> str:
    """Exits 0 on the node that holds the lab's API VIP (keepalived adds it there)."""
    return f"ip -o -4 addr show | grep -qw {shlex.quote(str(lab.api_vip))}"


def healthz_command(component: str) -> str:
    """The local /healthz of a control plane's scheduler or controller-manager."""
    return f"curl -sSk --max-time 5 https://127.0.0.1:{COMPONENT_PORTS[component]}/healthz"


def readyz_verbose_command(nodes: Sequence[Node], max_time_s: int = 10) -> str:
    """Each node's API server's own ``/readyz?verbose``, one after the other, each answer
    after a ``=== <node>`` line (what :func:`apiservers_not_ready` reads)."""
    return " ; ".join(
        f"echo '=== {node.name}'; curl -sS --max-time {max_time_s} {APISERVER_CLIENT_CERT} "
        + shlex.quote(f"https://{node.address}:{APISERVER_PORT}/readyz?verbose")
        for node in nodes
    )


# --- running them over SSH -----------------------------------------------------------------


def _tail(output: str, status: int, lines: int = 10) -> str:
    text = "\n".join(output.strip().splitlines()[-lines:])
    return text or f"exit {status}, no output"


def kubectl(
    lab: Lab, args: Sequence[str], *, on: Node | None = None, timeout: float = 60
) -> tuple[int, str]:
    """kubectl ``args`` on ``on`` (default: the first control plane); status and output."""
    return remote.try_root(lab, on or lab.control_planes[0], kubectl_command(args), timeout)


def kubectl_ok(
    lab: Lab, args: Sequence[str], *, on: Node | None = None, timeout: float = 60
) -> str:
    """kubectl ``args``; its output, or :class:`ClusterError` with the command and output."""
    status, output = kubectl(lab, args, on=on, timeout=timeout)
    if status != 0:
        raise ClusterError(f"kubectl {' '.join(args)} exited {status}: {_tail(output, status)}")
    return output


def kubectl_json(
    lab: Lab, args: Sequence[str], *, on: Node | None = None, timeout: float = 60
) -> Any:
    """kubectl ``args -o json``, parsed."""
    return json.loads(kubectl_ok(lab, [*args, "-o", "json"], on=on, timeout=timeout))


def apply(lab: Lab, manifest: str, *, on: Node | None = None, timeout: float = 60) -> str:
    """``kubectl apply`` of ``manifest``; its output, or :class:`ClusterError`."""
    status, output = remote.try_root(
        lab, on or lab.control_planes[0], apply_command(manifest), timeout
    )
    if status != 0:
        raise ClusterError(f"kubectl apply exited {status}: {_tail(output, status)}")
    return output


# --- questions about the cluster -------------------------------------------------------------


def is_ready(obj: dict[str, Any]) -> bool:
    """A Node or Pod (as kubectl's JSON gives it) whose Ready condition is True."""
    conditions = obj.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def not_ready_nodes(lab: Lab) -> list[str]:
    """The names of the lab's Kubernetes nodes that are not Ready (or not registered)."""
    nodes = kubectl_json(lab, ["get", "nodes"], timeout=30)
    ready = {node["metadata"]["name"] for node in nodes["items"] if is_ready(node)}
    return sorted({n.name for n in lab.control_planes + lab.workers} - ready)


def pods_not_ready_on(lab: Lab, node: Node) -> list[str]:
    """The Pods (any namespace) scheduled on ``node`` that are not Running and Ready; a Pod
    that ran to completion (a Job's, such as kubeadm's upgrade health check) is not one."""
    pods = kubectl_json(
        lab, ["get", "pods", "-A", "--field-selector", f"spec.nodeName={node.name}"]
    )
    return sorted(
        f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        for pod in pods["items"]
        if pod["status"].get("phase") != "Succeeded"
        and (pod["status"].get("phase") != "Running" or not is_ready(pod))
    )


def not_rolled_out(workloads: dict[str, Any]) -> list[str]:
    """The Deployments and DaemonSets (kubectl's JSON list) not all updated and ready, of
    the namespaces provisioning fills (``kube-*``: kube-system, the CNI's)."""
    pending = []
    for item in workloads.get("items", []):
        meta, spec, status = item["metadata"], item.get("spec", {}), item.get("status", {})
        if not meta["namespace"].startswith("kube-"):
            continue
        if item["kind"] == "Deployment":
            wanted = spec.get("replicas", 1)
            ready, updated = status.get("readyReplicas", 0), status.get("updatedReplicas", 0)
        else:
            wanted = status.get("desiredNumberScheduled", 0)
            ready, updated = status.get("numberReady", 0), status.get("updatedNumberScheduled", 0)
        if ready < wanted or updated < wanted:
            pending.append(f"{meta['namespace']}/{meta['name']} {ready}/{wanted} ready")
    return sorted(pending)


def system_workloads_pending(lab: Lab) -> list[str]:
    """The cluster's own workloads (CoreDNS, kube-proxy, the CNI's) not yet rolled out."""
    found = kubectl_json(lab, ["get", "deployments,daemonsets", "--all-namespaces"], timeout=30)
    return not_rolled_out(found)


def vip_holder(lab: Lab) -> Node | None:
    """The control plane that holds the API VIP now; None if none does (or none answers)."""
    for node in lab.control_planes:
        try:
            status, _ = remote.try_root(lab, node, holds_vip_command(lab), timeout=15)
        except HostError:
            continue
        if status == 0:
            return node
    return None


def api_answers(lab: Lab, on: Node) -> bool:
    """``/readyz`` through the VIP answers ``ok``, asked from inside ``on``."""
    url = f"https://{lab.api_vip}:{lab.api_port}/readyz"
    status, output = remote.try_root(lab, on, f"curl -sk --max-time 5 {url}", timeout=20)
    return status == 0 and output.strip() == "ok"


def apiservers_not_ready(lab: Lab) -> list[str]:
    """Each control plane's API server whose own ``/readyz`` is not ok, with the checks it
    fails (e.g. ``[-]etcd failed``); asked from the first control plane in one command.
    Through the VIP, haproxy hides a server that is not ready: each is asked directly."""
    nodes = lab.control_planes
    _, output = remote.try_root(
        lab, nodes[0], readyz_verbose_command(nodes), timeout=20 + 12 * len(nodes)
    )
    answers: dict[str, list[str]] = {}
    current = ""
    for line in output.splitlines():
        if line.startswith("=== "):
            current = line[4:].strip()
            answers[current] = []
        elif current:
            answers[current].append(line.strip())
    problems = []
    for node in nodes:
        lines = answers.get(node.name, [])
        if "readyz check passed" not in lines:
            failing = ", ".join(x for x in lines if x.startswith(("[-]", "curl:"))) or "no answer"
            problems.append(f"the API server on {node.name} is not ready: {failing}")
    return problems


# --- waiting for the cluster -------------------------------------------------------------------


def leaderless_components(lab: Lab, since: float = 0.0) -> list[str]:
    """The scheduler and controller-manager whose leader lease no live instance has renewed
    (since the epoch time ``since``, e.g. a restart: a restarted one takes the lease only once
    the old holder's has run out)."""
    planes = {n.name for n in lab.control_planes}
    found = []
    for component in COMPONENT_PORTS:
        lease = kubectl_json(lab, ["-n", "kube-system", "get", "lease", component])
        found += [f"{component}: {p}" for p in leases.problems(lease, planes, time.time(), since)]
    return found


def wait_rolled_out(lab: Lab, workload: str, namespace: str, timeout_s: float = 180) -> float:
    """Wait (bounded, by ``kubectl rollout status``) until every Pod of ``workload`` (e.g.
    ``deployment/coredns``) runs updated and ready; return the seconds waited."""
    started = time.monotonic()
    args = ["rollout", "status", workload, "-n", namespace, f"--timeout={int(timeout_s)}s"]
    status, output = kubectl(lab, args, timeout=timeout_s + 30)
    if status != 0:
        raise ClusterError(f"{namespace}/{workload} not rolled out: {_tail(output, status, 3)}")
    return time.monotonic() - started


def _wait_for_nothing_pending(probe: Callable[[], list[str]], timeout_s: float, what: str) -> float:
    """Poll ``probe`` (what is still pending) until it lists nothing; an API or SSH hiccup
    on the way is "not yet"."""
    return wait_until(
        probe,
        problems_gone,
        timeout_s=timeout_s,
        interval_s=POLL_INTERVAL_S,
        what=what,
        retry_on=(HostError, ClusterError),
    )


def wait_for_ready_nodes(lab: Lab, timeout_s: float = READY_TIMEOUT_S) -> float:
    """Wait (bounded) until every node of the lab is Ready; return the seconds waited."""
    return _wait_for_nothing_pending(
        lambda: [f"{name} not Ready" for name in not_ready_nodes(lab)],
        timeout_s,
        f"lab {lab.name}: every node Ready",
    )


def wait_for_system_workloads(lab: Lab, timeout_s: float = READY_TIMEOUT_S) -> float:
    """Wait (bounded) until the cluster's own workloads (CoreDNS, kube-proxy, the CNI's
    DaemonSet) have every replica ready: Ready nodes alone left CoreDNS at 1 of 2 replicas
    when `up` returned. Return the seconds waited."""
    return _wait_for_nothing_pending(
        lambda: system_workloads_pending(lab),
        timeout_s,
        f"lab {lab.name}: the cluster's own workloads ready",
    )


def ready_pod_nodes(pods: dict[str, Any]) -> dict[str, str]:
    """Pod name -> node of the Ready, not terminating Pods of a kubectl list."""
    return {
        pod["metadata"]["name"]: str(pod["spec"].get("nodeName", ""))
        for pod in pods.get("items", [])
        if is_ready(pod) and not pod["metadata"].get("deletionTimestamp")
    }


def replicas_on_one_node(pods: dict[str, Any]) -> bool:
    """Whether the ready Pods of a kubectl list (two or more) all run on one node."""
    nodes = list(ready_pod_nodes(pods).values())
    return len(nodes) >= 2 and len(set(nodes)) == 1


def spread_coredns(lab: Lab, timeout_s: float = 180) -> bool:
    """Move one CoreDNS replica when they share one node, so that losing a node leaves a
    resolver (verify's nodes/coredns_replicas_on_different_nodes): they are scheduled when
    the first node turns Ready, often before any other. One replica is deleted and its
    replacement scheduled while the other still runs, so kubeadm's preferred anti-affinity
    sends it to another node; a rollout restart schedules each new replica beside old ones
    on every node and can land them together again (seen on single). Whether it moved one."""
    if len(lab.control_planes) + len(lab.workers) < 2:
        return False

    def coredns() -> dict[str, Any]:
        return dict(
            kubectl_json(lab, ["get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns"])
        )

    pods = coredns()
    if not replicas_on_one_node(pods):
        return False
    ready = ready_pod_nodes(pods)
    replicas, moved = len(ready), max(ready)
    kubectl_ok(lab, ["delete", "pod", "-n", "kube-system", moved])

    def spread(found: dict[str, Any]) -> bool:
        ready = ready_pod_nodes(found)
        return len(ready) >= replicas and len(set(ready.values())) >= 2

    wait_until(
        coredns,
        spread,
        timeout_s=timeout_s,
        interval_s=POLL_INTERVAL_S,
        what=f"CoreDNS's {replicas} replicas ready on two nodes after moving {moved}",
        retry_on=(HostError, ClusterError),
    )
    return True
