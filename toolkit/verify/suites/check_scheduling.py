"""Scheduling: a nodeSelector places Pods on the labelled node; a taint keeps Pods off a node
unless they tolerate it. Node b carries ``disk=ssd``, node a the verify taint."""

from __future__ import annotations

import json
from typing import Any

from toolkit.verify.checks import expect
from toolkit.verify.cluster import Cluster, eventually
from toolkit.verify.workload import NAMESPACE, SSD_LABEL, TAINT_KEY, Workload, describe_pods

SCHEDULE_TIMEOUT_S = 45


def running(
    cluster: Cluster, workload: Workload, app: str, replicas: int
) -> tuple[bool, dict[str, dict[str, Any]], dict[str, str]]:
    """Wait (bounded) until ``replicas`` Pods of ``app`` are Running: whether they are, the
    Pods by name, and the node each one runs on."""
    workload.wait_applied()

    def probe() -> dict[str, dict[str, Any]]:
        run = cluster.kubectl("get", "pods", "-n", NAMESPACE, "-l", f"app={app}", "-o", "json")
        if not run.ok:
            return {}
        return {p["metadata"]["name"]: p for p in json.loads(run.stdout)["items"]}

    def accept(pods: dict[str, dict[str, Any]]) -> bool:
        phases = [p["status"].get("phase") for p in pods.values()]
        return len(phases) == replicas and set(phases) == {"Running"}

    ok, pods = eventually(probe, accept, SCHEDULE_TIMEOUT_S)
    return ok, pods, {name: str(p["spec"].get("nodeName")) for name, p in pods.items()}


def test_node_selector_places_pods_on_labelled_node(cluster: Cluster, workload: Workload) -> None:
    labelled = workload.layout.b.name
    ok, pods, on = running(cluster, workload, "ssd", 2)
    expect(
        ok and set(on.values()) == {labelled},
        f"Pods with nodeSelector {'='.join(SSD_LABEL)} run on {sorted(set(on.values()))}; "
        f"only {labelled} carries the label",
        describe_pods(pods),
    )


def test_taint_keeps_untolerating_pods_off(cluster: Cluster, workload: Workload) -> None:
    tainted = workload.layout.a.name
    ok, pods, on = running(cluster, workload, "untolerated", 3)
    on_tainted = sorted(name for name, node in on.items() if node == tainted)
    expect(
        ok and not on_tainted,
        f"Pods without a toleration for {TAINT_KEY} on tainted {tainted}: {on_tainted}"
        if on_tainted
        else "Pods without a toleration were not all scheduled and Running",
        describe_pods(pods),
    )


def test_toleration_admits_pod_on_tainted_node(cluster: Cluster, workload: Workload) -> None:
    tainted = workload.layout.a.name
    ok, pods, on = running(cluster, workload, "tolerating", 1)
    expect(
        ok and set(on.values()) == {tainted},
        f"a Pod tolerating {TAINT_KEY} and selecting {tainted} was not scheduled there",
        describe_pods(pods),
    )
