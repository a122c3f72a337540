"""Scheduling: a nodeSelector places Pods on the labelled node; a taint keeps Pods off a node
unless they tolerate it. Node b carries ``disk=ssd``, node a the verify taint."""

from __future__ import annotations

import json
from typing import Any

from toolkit.verify.checks import expect
from toolkit.verify.cluster import Cluster, eventually
from toolkit.verify.workload import NAMESPACE, SSD_LABEL, TAINT_KEY, Workload, describe_pods

SCHEDULE_TIMEOUT_S = 45


def running(cluster: Cluster, app: str, replicas: int) -> tuple[bool, dict[str, dict[str, Any]]]:
    """Wait (bounded) until ``replicas`` Pods of ``app`` are Running; return them by name."""

    def probe() -> dict[str, dict[str, Any]]:
        run = cluster.kubectl("get", "pods", "-n", NAMESPACE, "-l", f"app={app}", "-o", "json")
        if not run.ok:
            return {}
        return {p["metadata"]["name"]: p for p in json.loads(run.stdout)["items"]}

    def accept(pods: dict[str, dict[str, Any]]) -> bool:
        phases = [p["status"].get("phase") for p in pods.values()]
        return len(phases) == replicas and set(phases) == {"Running"}

    return eventually(probe, accept, SCHEDULE_TIMEOUT_S)


def test_node_selector_places_pods_on_labelled_node(cluster: Cluster, workload: Workload) -> None:
    workload.wait_applied()
    labelled = workload.layout.b.name
    ok, pods = running(cluster, "ssd", 2)
    nodes = {p["spec"].get("nodeName") for p in pods.values()}
    expect(
        ok and nodes == {labelled},
        f"Pods with nodeSelector {'='.join(SSD_LABEL)} run on {sorted(map(str, nodes))}; "
        f"only {labelled} carries the label",
        describe_pods(pods),
    )


def test_taint_keeps_untolerating_pods_off(cluster: Cluster, workload: Workload) -> None:
    workload.wait_applied()
    tainted = workload.layout.a.name
    ok, pods = running(cluster, "untolerated", 3)
    on_tainted = [name for name, p in pods.items() if p["spec"].get("nodeName") == tainted]
    expect(
        ok and not on_tainted,
        f"Pods without a toleration for {TAINT_KEY} on tainted {tainted}: {on_tainted}"
        if on_tainted
        else "Pods without a toleration were not all scheduled and Running",
        describe_pods(pods),
    )


def test_toleration_admits_pod_on_tainted_node(cluster: Cluster, workload: Workload) -> None:
    workload.wait_applied()
    tainted = workload.layout.a.name
    ok, pods = running(cluster, "tolerating", 1)
    nodes = {p["spec"].get("nodeName") for p in pods.values()}
    expect(
        ok and nodes == {tainted},
        f"a Pod tolerating {TAINT_KEY} and selecting {tainted} was not scheduled there",
        describe_pods(pods),
    )
