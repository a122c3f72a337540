"""The lab's API VIP as the verify suites see it: which control plane holds it, a read
through it, and haproxy's view of each API server behind it."""

from __future__ import annotations

import json

from toolkit.kube import APISERVER_CLIENT_CERT, holds_vip_command
from toolkit.lab.spec import Lab, Node
from toolkit.verify.cluster import Cluster, Run
from toolkit.verify.redundancy import HAPROXY_BACKEND, HAPROXY_STAT, haproxy_status


def vip_holders(lab: Lab, cluster: Cluster) -> list[str]:
    return [
        cp.name
        for cp in lab.control_planes
        if cluster.run(cp, holds_vip_command(lab), fresh=True).ok
    ]


def vip_read_url(lab: Lab) -> str:
    # A read a client makes (the default Namespace), not /readyz: whether the server that
    # took the request has every health check green this instant is the per-server
    # checks' question; under load /readyz says "[-]etcd failed" now and then, while
    # requests are served.
    return f"https://{lab.api_vip}:{lab.api_port}/api/v1/namespaces/default"


def read_through_vip(lab: Lab, cluster: Cluster) -> Run:
    url = vip_read_url(lab)
    return cluster.run(
        cluster.first, f"curl -sS --max-time 10 {APISERVER_CLIENT_CERT} {url}", fresh=True
    )


def api_answered(run: Run) -> bool:
    try:
        return run.ok and json.loads(run.stdout).get("kind") == "Namespace"
    except json.JSONDecodeError:
        return False


def haproxy_state(cluster: Cluster, balancer: Node, server: str) -> str:
    run = cluster.run(balancer, HAPROXY_STAT, fresh=True)
    return haproxy_status(run.stdout, HAPROXY_BACKEND).get(server, "unknown")
