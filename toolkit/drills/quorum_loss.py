"""The quorum-loss drill: stop two of three etcd members; writes fail rather than hang;
recover from the latest snapshot."""

from __future__ import annotations

import time

from toolkit import kube
from toolkit.constants import APISERVER_PORT
from toolkit.drills import probes
from toolkit.drills.lab_ops import configmaps, delete_namespace, install_admin_credentials
from toolkit.drills.report import DrillResult
from toolkit.etcd.backup import backup
from toolkit.etcd.restore import restore
from toolkit.etcd.steps import stop_etcd
from toolkit.etcd.topology import Topology
from toolkit.hosts import remote
from toolkit.lab.spec import Lab, Node
from toolkit.progress import Progress

NAMESPACE = "k8slab-drill-quorum"
# An API server's write without etcd quorum, as measured on a stacked lab (etcd 3.6.5,
# Kubernetes v1.34.4): etcd fails each proposal after its request timeout, 5 s + 2 x the
# election timeout (1 s, kubeadm's and etcd's default) = 7 s, but the API server's etcd
# client retries it; the write ends at the API server's own deadline for the request, its
# ?timeout= capped at 34 s for writes (requestTimeoutUpperBound in
# k8s.io/apiserver/pkg/endpoints/handlers/rest.go; --request-timeout, 60 s, is the outer
# bound), with a 504. Through the VIP haproxy has by then withdrawn every API server (their
# /readyz fails without etcd) and closes new connections at once.
QUORUM_SERVER_TIMEOUT_S = 10
# A loaded node writes the 504 late (2.9 s late at load average 100 on 2 cores); the bound
# stays under the 34 s cap, so a server ignoring ?timeout= fails the check. The client
# waits longer still, so a write that hangs shows as curl's own timeout, not a stall.
QUORUM_ANSWER_BOUND_S = QUORUM_SERVER_TIMEOUT_S + 10
QUORUM_CLIENT_BOUND_S = QUORUM_ANSWER_BOUND_S + 10
# Few writes, so that the direct ones end before the API server's liveness probe (8 x 10 s
# failing /livez) restarts it.
QUORUM_WRITES_PER_ROUTE = 3


def _writes_without_quorum(lab: Lab, writer: Node) -> list[probes.Answer]:
    """Timed writes from ``writer``: first to its own API server, then through the VIP."""
    install_admin_credentials(lab, writer)
    endpoints = {"direct": f"{writer.address}:{APISERVER_PORT}", "vip": ""}
    requests = {
        route: probes.write_request(
            lab,
            NAMESPACE,
            f"quorum-loss-{route}",
            QUORUM_CLIENT_BOUND_S,
            endpoint=endpoint,
            server_timeout_s=QUORUM_SERVER_TIMEOUT_S,
            write_out="%{http_code} %{time_total}",
        )
        for route, endpoint in endpoints.items()
    }
    count, interval = QUORUM_WRITES_PER_ROUTE, 1
    script = probes.timed_writes_script(requests, count, interval)
    bound = len(requests) * count * (QUORUM_CLIENT_BOUND_S + interval) + 30
    return probes.parse_answers(remote.root(lab, writer, script, timeout=bound))


def _check_writes(result: DrillResult, writer: Node, answers: list[probes.Answer]) -> None:
    result.data["writes_without_quorum"] = [str(a) for a in answers]
    direct = [a for a in answers if a.route == "direct"]
    through_vip = [a for a in answers if a.route == "vip"]
    result.check(
        "no write succeeds without quorum",
        len(answers) == 2 * QUORUM_WRITES_PER_ROUTE and not any(a.ok for a in answers),
        ", ".join(map(str, answers)),
    )
    result.check(
        f"{writer.name}'s API server answers each write with an HTTP error within "
        f"{QUORUM_ANSWER_BOUND_S}s (its ?timeout={QUORUM_SERVER_TIMEOUT_S}s deadline)",
        bool(direct) and all(a.http_error and a.seconds <= QUORUM_ANSWER_BOUND_S for a in direct),
        ", ".join(map(str, direct)),
    )
    result.check(
        f"through the VIP each write fails within {QUORUM_ANSWER_BOUND_S}s rather than hangs "
        "(an HTTP error, or the load balancer closing the connection)",
        bool(through_vip)
        and all(
            not a.ok and not a.hung and a.seconds <= QUORUM_ANSWER_BOUND_S for a in through_vip
        ),
        ", ".join(map(str, through_vip)),
    )


def run(lab: Lab, result: DrillResult, progress: Progress) -> None:
    """Stop two of three members: writes fail (not hang); recover from the latest snapshot."""
    topo = Topology(lab)
    delete_namespace(lab, NAMESPACE)
    kube.kubectl_ok(lab, ["create", "namespace", NAMESPACE])
    kube.kubectl_ok(
        lab, ["create", "configmap", "before-snapshot", "-n", NAMESPACE, "--from-literal=v=kept"]
    )
    taken = backup(lab, progress=progress)
    result.data["snapshot"] = {"file": taken.path.name, "revision": taken.manifest.revision}
    # The first member survives, without a leader: the first control plane's API server
    # reaches it alone (stacked: its local member; external: the only one that answers).
    stopped = topo.members[1:]
    writer = lab.control_planes[0]
    progress.say("drill", "stopping " + ", ".join(m.name for m in stopped))
    lost_at = time.time()
    stop_etcd(topo, [m.node for m in stopped])
    result.timings["members_stopped_s"] = time.time() - lost_at
    _check_writes(result, writer, _writes_without_quorum(lab, writer))
    restore_started = time.monotonic()
    restored = restore(lab, taken.path, progress)
    result.timings["recovery_s"] = time.monotonic() - restore_started
    result.timings["outage_s"] = time.time() - lost_at
    result.timings.update({f"restore_{k}_s": v for k, v in restored.phases.items()})
    maps = configmaps(lab, NAMESPACE)
    result.check(
        "data up to the snapshot is present",
        maps.get("before-snapshot") == {"v": "kept"},
        str(maps.get("before-snapshot")),
    )
    delete_namespace(lab, NAMESPACE)
