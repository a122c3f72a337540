"""NetworkPolicy, enforced: every connection first made with no policy, then each policy
applied and polled until in force (bounded, its time noted), then each case judged against
its verdict. Skipped, with the reason, where nothing in the lab enforces NetworkPolicy.
Per node: the policy agent is Ready and manages that node's Pods, and sees the machine's
sysctls read-only. The cases, Pods and policies: toolkit/verify/policy.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from toolkit.bundle.cilium import AGENT_IMAGE
from toolkit.constants import CILIUM_MACHINE_SYSCTLS
from toolkit.lab.spec import Lab, Node
from toolkit.verify import policy
from toolkit.verify.checks import RecordProperty, expect, fail
from toolkit.verify.cluster import Cluster, Run, eventually
from toolkit.verify.policy import Case, Policy
from toolkit.verify.probes import in_pod
from toolkit.verify.report import NOTE_PROPERTY
from toolkit.verify.run import VerifyContext, layout_for
from toolkit.verify.workload import Layout, describe_pods, pod_ready

READY_TIMEOUT_S = 120
GONE_TIMEOUT_S = 90
IN_FORCE_TIMEOUT_S = 60
# A refused connection is tried this often: any that connects fails the case.
REFUSED_ATTEMPTS = 2


@pytest.fixture(scope="module", autouse=True)
def enforced(lab: Lab) -> None:
    if lab.policy_agent is None:
        pytest.skip(
            f"nothing in lab {lab.name} enforces NetworkPolicy: its CNI ({lab.cni}) does "
            "not, and its spec does not set network_policy: true"
        )


@dataclass
class Scene:
    layout: Layout
    pods: dict[str, dict[str, Any]]
    services: dict[str, str]  # namespace/name -> ClusterIP


@pytest.fixture(scope="module")
def scene(cluster: Cluster, verify_context: VerifyContext) -> Iterator[Scene]:
    """The test Pods, applied once the previous run's namespaces are gone, and Ready
    (bounded); removed afterwards (run_verify removes them too, after an interrupt)."""
    workload = verify_context.workload
    layout = workload.layout if workload else layout_for(cluster)
    eventually(
        lambda: cluster.kubectl("get", "namespace", *policy.NAMESPACES, "--ignore-not-found"),
        lambda run: run.ok and not run.stdout.strip(),
        GONE_TIMEOUT_S,
    )
    applied = cluster.apply(policy.manifests(layout), timeout=90)
    try:
        expect(applied.ok, "could not create the policy test Pods", applied.evidence)

        def probe() -> dict[str, dict[str, Any]]:
            run = cluster.kubectl("get", "pods", "-A", "-l", "app=web", "-o", "json")
            clients = cluster.kubectl("get", "pods", "-A", "-l", "role", "-o", "json")
            items = [
                pod
                for r in (run, clients)
                if r.ok
                for pod in json.loads(r.stdout)["items"]
                if pod["metadata"]["namespace"] in policy.NAMESPACES
            ]
            return {f"{p['metadata']['namespace']}/{p['metadata']['name']}": p for p in items}

        _, pods = eventually(
            probe, lambda p: all(pod_ready(p.get(k)) for k in policy.PODS), READY_TIMEOUT_S
        )
        services = cluster.kubectl_json("get", "services", "-n", policy.SERVERS)["items"]
        yield Scene(
            layout,
            pods,
            {f"{policy.SERVERS}/{s['metadata']['name']}": s["spec"]["clusterIP"] for s in services},
        )
    finally:
        policy.remove(cluster)


def attempt(cluster: Cluster, scene: Scene, case: Case, tries: int) -> Run:
    """Make the case's connection (``tries`` times at most); exit 0 when it connected."""
    kind, _, name = case.target.rpartition(":")
    if kind == "service":
        address = scene.services.get(name)
    else:
        address = scene.pods.get(name, {}).get("status", {}).get("podIP")
    script = policy.connection_script(case, address or "no-address", tries)
    return in_pod(cluster, case.source, script, timeout=15 * tries)


def judge(cluster: Cluster, scene: Scene, case: Case) -> None:
    # A Service's target is the server Pod of its name; a refusal by a missing Pod is none.
    for pod in (case.source, case.target.rpartition(":")[2]):
        if pod in policy.PODS:
            expect(
                pod_ready(scene.pods.get(pod)),
                f"test Pod {pod} is not Ready: {case.describe(scene.layout)}",
                describe_pods(scene.pods),
            )
    run = attempt(cluster, scene, case, 5 if case.allowed else REFUSED_ATTEMPTS)
    problem = policy.verdict_problem(case, run.ok, scene.layout)
    expect(not problem, problem, run.evidence)


@dataclass(frozen=True)
class InForce:
    ok: bool
    seconds: float
    evidence: str


def apply_policy(cluster: Cluster, scene: Scene, rule: Policy) -> InForce:
    """Apply ``rule``, then poll its sentinel connection until it gets its verdict."""
    started = time.monotonic()
    applied = cluster.apply(rule.manifest())
    if not applied.ok:
        return InForce(False, 0, applied.evidence)
    sentinel = policy.SENTINELS[rule.name]
    ok, run = eventually(
        lambda: attempt(cluster, scene, sentinel, 1),
        lambda r: r.ok == sentinel.allowed,
        IN_FORCE_TIMEOUT_S,
        1,
    )
    return InForce(ok, time.monotonic() - started, run.evidence)


@pytest.fixture(scope="module")
def egress_denied(cluster: Cluster, scene: Scene) -> InForce:
    return apply_policy(cluster, scene, policy.DENY_EGRESS)


@pytest.fixture(scope="module")
def dns_allowed(cluster: Cluster, scene: Scene, egress_denied: InForce) -> InForce:
    return apply_policy(cluster, scene, policy.ALLOW_DNS)


@pytest.fixture(scope="module")
def ingress_denied(cluster: Cluster, scene: Scene, dns_allowed: InForce) -> InForce:
    return apply_policy(cluster, scene, policy.DENY_INGRESS)


@pytest.fixture(scope="module")
def web_allowed(cluster: Cluster, scene: Scene, ingress_denied: InForce) -> InForce:
    return apply_policy(cluster, scene, policy.ALLOW_WEB)


@pytest.mark.parametrize("connection", list(policy.BASELINE))
def test_connects_before_any_policy(cluster: Cluster, scene: Scene, connection: str) -> None:
    judge(cluster, scene, policy.BASELINE[connection])


def in_force(state: InForce, rule: Policy, record_property: RecordProperty) -> None:
    sentinel = policy.SENTINELS[rule.name]
    if state.ok:
        record_property(
            NOTE_PROPERTY, f"{rule.namespace}/{rule.name} in force after {state.seconds:.1f}s"
        )
        return
    fail(
        f"{rule.namespace}/{rule.name} not in force within {IN_FORCE_TIMEOUT_S}s: "
        f"{sentinel.short} was never {sentinel.verdict}",
        state.evidence,
    )


def test_egress_deny_in_force(egress_denied: InForce, record_property: RecordProperty) -> None:
    in_force(egress_denied, policy.DENY_EGRESS, record_property)


@pytest.mark.parametrize("case", list(policy.EGRESS_DENIED))
def test_egress_deny_blocks_dns(
    cluster: Cluster, scene: Scene, egress_denied: InForce, case: str
) -> None:
    judge(cluster, scene, policy.EGRESS_DENIED[case])


def test_dns_allow_in_force(dns_allowed: InForce, record_property: RecordProperty) -> None:
    in_force(dns_allowed, policy.ALLOW_DNS, record_property)


@pytest.mark.parametrize("case", list(policy.EGRESS_DNS_ALLOWED))
def test_egress_allows_only_dns(
    cluster: Cluster, scene: Scene, dns_allowed: InForce, case: str
) -> None:
    judge(cluster, scene, policy.EGRESS_DNS_ALLOWED[case])


def test_ingress_deny_in_force(ingress_denied: InForce, record_property: RecordProperty) -> None:
    in_force(ingress_denied, policy.DENY_INGRESS, record_property)


@pytest.mark.parametrize("case", list(policy.INGRESS_DENIED))
def test_default_deny_ingress(
    cluster: Cluster, scene: Scene, ingress_denied: InForce, case: str
) -> None:
    judge(cluster, scene, policy.INGRESS_DENIED[case])


def test_allow_rule_in_force(web_allowed: InForce, record_property: RecordProperty) -> None:
    in_force(web_allowed, policy.ALLOW_WEB, record_property)


@pytest.mark.parametrize("case", list(policy.INGRESS_ALLOWED))
def test_allow_rule_admits_exactly_what_it_names(
    cluster: Cluster, scene: Scene, web_allowed: InForce, case: str
) -> None:
    judge(cluster, scene, policy.INGRESS_ALLOWED[case])


# --- the agent, node by node ------------------------------------------------------------


@pytest.fixture(scope="module")
def agents(cluster: Cluster) -> dict[str, dict[str, Any]]:
    """Cilium's agent Pods by node."""
    pods = cluster.kubectl_json("get", "pods", "-n", "kube-system", "-l", "k8s-app=cilium")
    return {p["spec"].get("nodeName", ""): p for p in pods["items"]}


def agent_on(agents: dict[str, dict[str, Any]], node: Node) -> dict[str, Any]:
    pod = agents.get(node.name)
    if pod is None:
        fail(f"no Cilium agent Pod on {node.name}", describe_pods(agents))
    return pod


def test_policy_agent_ready_and_manages_pods(
    cluster: Cluster, agents: dict[str, dict[str, Any]], kube_node: Node
) -> None:
    pod = agent_on(agents, kube_node)
    images = {c["image"] for c in pod["spec"]["containers"]}
    expect(
        pod_ready(pod) and images == {AGENT_IMAGE},
        f"the Cilium agent on {kube_node.name} is not Ready with {AGENT_IMAGE} (runs {images})",
        describe_pods({pod["metadata"]["name"]: pod}),
    )
    # An endpoint is written a moment after its Pod's network: asked again, bounded.
    _, unmanaged = eventually(lambda: unmanaged_pods(cluster, kube_node), lambda u: not u, 30)
    expect(
        not unmanaged,
        f"Pods on {kube_node.name} outside NetworkPolicy (no CiliumEndpoint): {unmanaged}",
    )


def unmanaged_pods(cluster: Cluster, node: Node) -> list[str]:
    """The running Pods of the Pod network on ``node`` that have no CiliumEndpoint."""
    everything = cluster.kubectl_json("get", "pods,ciliumendpoints", "-A")["items"]

    def key(o: dict[str, Any]) -> str:
        return f"{o['metadata']['namespace']}/{o['metadata']['name']}"

    endpoints = {key(o) for o in everything if o["kind"] == "CiliumEndpoint"}
    return sorted(
        key(o)
        for o in everything
        if o["kind"] == "Pod"
        and o["spec"].get("nodeName") == node.name
        and not o["spec"].get("hostNetwork")
        and o["status"].get("phase") == "Running"
        and not o["metadata"].get("deletionTimestamp")
        and key(o) not in endpoints
    )


def test_agent_sees_machine_sysctls_read_only(
    cluster: Cluster, agents: dict[str, dict[str, Any]], kube_node: Node
) -> None:
    pod = agent_on(agents, kube_node)
    run = in_pod(
        cluster,
        f"kube-system/{pod['metadata']['name']}",
        "awk '{ print $5, $6 }' /proc/self/mountinfo",
        container="cilium-agent",
    )
    paths = {f"/host/proc/sys/{s.replace('.', '/')}" for s in CILIUM_MACHINE_SYSCTLS}
    mounts = dict(line.split(" ", 1) for line in run.stdout.splitlines() if " " in line)
    writable = sorted(p for p in paths if mounts.get(p, "").split(",")[0] != "ro")
    expect(
        run.ok and not writable,
        f"the agent on {kube_node.name} may write the machine's {writable} "
        "(each must be a read-only mount in its view)",
        run.evidence,
    )
