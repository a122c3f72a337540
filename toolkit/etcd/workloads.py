"""After a restore: a CoreDNS whose cache does not predate it."""

from __future__ import annotations

from toolkit import kube
from toolkit.errors import HostError
from toolkit.lab.spec import Lab
from toolkit.poll import wait_until

COREDNS_DEADLINE_S = 120
COREDNS = ["-n", "kube-system", "-l", "k8s-app=kube-dns"]


def restart_coredns(lab: Lab, deadline_s: int = COREDNS_DEADLINE_S) -> float:
    """Kubernetes' "Operating etcd clusters" asks to restart what caches the API's state
    after a restore; CoreDNS, whose watch missed the jump in revision, answered no new
    Service's name until restarted (seen on a real lab).

    Its Pods are deleted all at once rather than rolled one by one (which took 55 s on
    ha-stacked): the cluster is only just back, and the new Pods start together.
    """
    old = set(coredns_pods(lab))
    kube.kubectl_ok(lab, ["delete", "pods", *COREDNS, "--wait=false"])

    def not_yet_ready() -> list[str]:
        new = {name: ready for name, ready in coredns_pods(lab).items() if name not in old}
        problems = [f"{name} not Ready" for name, ready in new.items() if not ready]
        if len(new) < max(len(old), 1):
            problems.append(f"{len(new)} of {max(len(old), 1)} new Pods created")
        return problems

    return wait_until(
        not_yet_ready,
        lambda problems: not problems,
        timeout_s=deadline_s,
        interval_s=2,
        what="CoreDNS Ready again after its restart",
        retry_on=(HostError, kube.ClusterError),
    )


def coredns_pods(lab: Lab) -> dict[str, bool]:
    """Name -> Ready of CoreDNS's Pods, terminating ones left out."""
    pods = kube.kubectl_json(lab, ["get", "pods", *COREDNS], timeout=30)
    return {
        pod["metadata"]["name"]: kube.is_ready(pod)
        for pod in pods["items"]
        if not pod["metadata"].get("deletionTimestamp")
    }
