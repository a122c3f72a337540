"""Talking to a lab's cluster: kubectl on the first control plane, over SSH.

kubectl runs inside the lab (not from this machine against the VIP), so that every
request to cluster addresses starts on a lab node.
"""

from __future__ import annotations

import json
import shlex
import time
from typing import Any

from toolkit.errors import HostError
from toolkit.hosts.lifecycle import ssh_target
from toolkit.hosts.ssh import run_command
from toolkit.lab.spec import Lab
from toolkit.lab.state import LabState

ADMIN_KUBECONFIG = "/etc/kubernetes/admin.conf"


def is_ready(obj: dict[str, Any]) -> bool:
    """A Node or Pod (as kubectl's JSON gives it) whose Ready condition is True."""
    conditions = obj.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


READY_JSONPATH = (
    "jsonpath={range .items[*]}{.metadata.name}="
    "{.status.conditions[?(@.type=='Ready')].status}{'\\n'}{end}"
)


def kubectl(lab: Lab, args: list[str], timeout: float = 120) -> tuple[int, str]:
    """Run kubectl with the admin kubeconfig on the first control plane."""
    first = lab.control_planes[0]
    command = " ".join(
        ["sudo", "kubectl", "--kubeconfig", ADMIN_KUBECONFIG, *map(shlex.quote, args)]
    )
    return run_command(ssh_target(LabState.of(lab.name), first), command, timeout=timeout)


def wait_for_ready_nodes(lab: Lab, deadline_s: float = 300) -> float:
    """Wait (bounded) until every node of the lab is Ready; return the seconds waited."""
    started = time.monotonic()
    expected = {node.name for node in lab.control_planes + lab.workers}
    last = ""
    while time.monotonic() - started < deadline_s:
        status, output = kubectl(lab, ["get", "nodes", "-o", READY_JSONPATH], timeout=30)
        if status == 0:
            ready = {line.split("=")[0] for line in output.split() if line.endswith("=True")}
            if expected <= ready:
                return time.monotonic() - started
            last = f"not Ready yet: {', '.join(sorted(expected - ready))}"
        else:
            last = output.strip().splitlines()[-1] if output.strip() else f"kubectl exited {status}"
        time.sleep(3)
    raise HostError(f"lab {lab.name}: nodes not Ready within {deadline_s:.0f}s ({last})")


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


def wait_for_system_workloads(lab: Lab, deadline_s: float = 300) -> float:
    """Wait (bounded) until the cluster's own workloads (CoreDNS, kube-proxy, the CNI's
    DaemonSet) have every replica ready: Ready nodes alone left CoreDNS at 1 of 2 replicas
    when `up` returned. Return the seconds waited."""
    started = time.monotonic()
    last = ""
    while time.monotonic() - started < deadline_s:
        status, output = kubectl(
            lab, ["get", "deployments,daemonsets", "--all-namespaces", "-o", "json"], timeout=30
        )
        if status == 0:
            pending = not_rolled_out(json.loads(output))
            if not pending:
                return time.monotonic() - started
            last = "; ".join(pending)
        else:
            last = output.strip().splitlines()[-1] if output.strip() else f"kubectl exited {status}"
        time.sleep(3)
    raise HostError(
        f"lab {lab.name}: the cluster's own workloads not ready within {deadline_s:.0f}s ({last})"
    )
