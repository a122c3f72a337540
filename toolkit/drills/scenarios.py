"""The drills: break something on purpose, recover, and check what came back.

Each drill fills a :class:`DrillResult` with timings, checks and data; the runner in
``toolkit.drills`` gates it on a healthy lab and judges the lab afterwards.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable

from toolkit.drills import probes
from toolkit.drills.lab_ops import (
    DrillError,
    apply,
    kubectl,
    kubectl_json,
    kubectl_ok,
    pods_not_ready_on,
    services_active,
    start_host,
    stop_host,
    vip_holder,
    wait_healthy,
)
from toolkit.drills.report import DrillResult
from toolkit.errors import K8slabError
from toolkit.etcd import cluster, remote
from toolkit.etcd.backup import backup
from toolkit.etcd.restore import restore, start_etcd, stop_etcd
from toolkit.etcd.status import ClusterHealth, EtcdError
from toolkit.etcd.topology import DATA_DIR, PARKED_DIR, Member, Topology
from toolkit.lab.spec import APISERVER_PORT, Lab, Node
from toolkit.progress import Progress

PAUSE_IMAGE = "registry.k8s.io/pause:3.10.1"
# The longest gap a client polling the VIP may see when a whole control plane goes away:
# keepalived moves the VIP in a few seconds, haproxy drops a dead backend after 3 x 2 s.
API_GAP_BUDGET_S = 20.0
PODS_BACK_DEADLINE_S = 180
KUBE_PROXY_HEALTHZ = "http://127.0.0.1:10256/healthz"
EXTERNAL_CONFIG = "/etc/etcd/etcd.conf.yml"


def _now() -> float:
    return time.time()


def _delete_namespace(lab: Lab, namespace: str) -> None:
    kubectl(
        lab, f"delete namespace {namespace} --ignore-not-found --wait --timeout=120s", timeout=150
    )


def _configmaps(lab: Lab, namespace: str) -> dict[str, dict[str, str]]:
    items = kubectl_json(lab, f"get configmaps -n {namespace}")["items"]
    return {item["metadata"]["name"]: item.get("data") or {} for item in items}


def _secrets(lab: Lab, namespace: str) -> dict[str, dict[str, str]]:
    items = kubectl_json(lab, f"get secrets -n {namespace}")["items"]
    return {
        item["metadata"]["name"]: {
            k: base64.b64decode(v).decode() for k, v in (item.get("data") or {}).items()
        }
        for item in items
    }


def _exists(lab: Lab, kind_name: str, namespace: str = "") -> bool:
    where = f"-n {namespace}" if namespace else ""
    status, _ = kubectl(lab, f"get {kind_name} {where} -o name")
    return status == 0


def _sentinel_manifest(namespace: str, token: str) -> str:
    docs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}]
    docs += [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"sentinel-{n}", "namespace": namespace},
            "data": {"value": f"sentinel-{n}-{token}", "n": str(n)},
        }
        for n in (1, 2, 3)
    ]
    docs += [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"sentinel-secret-{n}", "namespace": namespace},
            "stringData": {"password": f"secret-{n}-{token}"},
        }
        for n in (1, 2)
    ]
    labels = {"app": "sentinel"}
    docs.append(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "sentinel", "namespace": namespace},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "pause",
                                "image": PAUSE_IMAGE,
                                "imagePullPolicy": "IfNotPresent",
                            }
                        ]
                    },
                },
            },
        }
    )
    return "\n---\n".join(json.dumps(doc) for doc in docs)


def _deployment_ready(lab: Lab, namespace: str, name: str, deadline_s: float = 180) -> float:
    """Wait (bounded) until the Deployment's Pods all run and are ready; return seconds."""
    started = time.monotonic()
    status, output = kubectl(
        lab,
        f"rollout status deployment/{name} -n {namespace} --timeout={int(deadline_s)}s",
        timeout=deadline_s + 30,
    )
    if status != 0:
        raise DrillError(f"deployment {namespace}/{name} not ready: {output.strip()[-300:]}")
    return time.monotonic() - started


def _revision(topo: Topology) -> int:
    found = cluster.health(topo)
    return max((s.revision for s in found.answered.values()), default=0)


# --- backup-restore ------------------------------------------------------------------------


def backup_restore(lab: Lab, result: DrillResult, progress: Progress) -> None:
    """Sentinels, backup, later changes, restore: sentinels back, later changes gone."""
    namespace, later_namespace = "k8slab-drill-sentinel", "k8slab-drill-later"
    token = secrets.token_hex(4)
    topo = Topology(lab)
    for ns in (namespace, later_namespace):
        _delete_namespace(lab, ns)
    progress.say("drill", f"sentinels in {namespace} (token {token})")
    apply(lab, _sentinel_manifest(namespace, token))
    try:
        _deployment_ready(lab, namespace, "sentinel", deadline_s=120)
        result.check("the sentinel Deployment's Pods ran before the backup", True)
    except DrillError as exc:
        # Go on: the restore and its data checks still tell something; the drill fails.
        result.check("the sentinel Deployment's Pods ran before the backup", False, str(exc))
    expected_maps = {
        k: v for k, v in _configmaps(lab, namespace).items() if k.startswith("sentinel")
    }
    expected_secrets = {
        k: v for k, v in _secrets(lab, namespace).items() if k.startswith("sentinel")
    }
    taken = backup(lab, progress=progress)
    backed_up_at = _now()
    result.timings["backup_s"] = taken.seconds
    result.data["snapshot"] = {
        "file": taken.path.name,
        "revision": taken.manifest.revision,
        "keys": taken.manifest.total_keys,
        "member": taken.manifest.member,
    }
    progress.say("drill", "changes after the backup: 2 new objects, 2 sentinels deleted")
    kubectl_ok(lab, f"create configmap later-1 -n {namespace} --from-literal=v=later")
    kubectl_ok(lab, f"create namespace {later_namespace}")
    kubectl_ok(lab, f"create configmap later-2 -n {later_namespace} --from-literal=v=later")
    kubectl_ok(lab, f"delete configmap sentinel-2 -n {namespace}")
    kubectl_ok(lab, f"delete secret sentinel-secret-1 -n {namespace}")
    revision_before = _revision(topo)
    restore_started = time.monotonic()
    rpo_s = _now() - backed_up_at
    progress.say("drill", f"restore of {taken.path.name}")
    restored = restore(lab, taken.path, progress)
    result.timings["rto_s"] = time.monotonic() - restore_started
    result.timings.update({f"restore_{k}_s": v for k, v in restored.phases.items()})
    result.data["rpo"] = {
        "revisions_missed": revision_before - taken.manifest.revision,
        "seconds_since_backup": round(rpo_s, 1),
        "objects_lost": [f"{namespace}/configmap/later-1", later_namespace],
    }
    maps, found_secrets = _configmaps(lab, namespace), _secrets(lab, namespace)
    for name, data in expected_maps.items():
        result.check(
            f"configmap {name} is back with its content",
            maps.get(name) == data,
            str(maps.get(name)),
        )
    for name, data in expected_secrets.items():
        result.check(
            f"secret {name} is back with its content",
            found_secrets.get(name) == data,
            "content differs" if name in found_secrets else "missing",
        )
    result.check("configmap later-1 (made after the backup) is gone", "later-1" not in maps)
    result.check(
        f"namespace {later_namespace} (made after the backup) is gone",
        not _exists(lab, f"namespace/{later_namespace}"),
    )
    try:
        result.timings["deployment_ready_s"] = _deployment_ready(lab, namespace, "sentinel")
        result.check("the sentinel Deployment's Pods run", True)
    except DrillError as exc:
        result.check("the sentinel Deployment's Pods run", False, str(exc))
    _delete_namespace(lab, namespace)


# --- member-loss ------------------------------------------------------------------------------


def _new_leader_among(topo: Topology, lost: Member, deadline_s: float = 60) -> float:
    started = time.monotonic()
    others = [m.client_url for m in topo.members if m != lost]
    while time.monotonic() - started < deadline_s:
        try:
            found = cluster.health(topo)
        except (EtcdError, K8slabError):
            time.sleep(0.5)
            continue
        rest = ClusterHealth(
            {u: s for u, s in found.answered.items() if u in others}, tuple(others)
        )
        if rest.healthy:
            return time.monotonic() - started
        time.sleep(0.5)
    raise DrillError(f"no new etcd leader among the other members within {deadline_s:.0f}s")


def _start_probe(lab: Lab, node: Node, name: str, script: str) -> None:
    remote.root(lab, node, probes.start_command(name, script))


def _stop_probe(
    lab: Lab, node: Node, name: str, wait_s: int = 60, ask: bool = True
) -> list[probes.Sample]:
    output = remote.root(lab, node, probes.stop_command(name, wait_s, ask), timeout=wait_s + 30)
    return probes.parse_samples(output)


def _start_writer(
    lab: Lab,
    node: Node,
    namespace: str,
    prefix: str,
    count: int,
    seconds: int,
    interval: float,
    timeout_s: float,
) -> None:
    remote.root(
        lab, node, f"umask 077; mkdir -p {probes.PROBE_DIR}; {probes.admin_credentials_command()}"
    )
    request = probes.write_request(lab, namespace, prefix, timeout_s)
    _start_probe(lab, node, prefix, probes.loop_script(prefix, request, count, seconds, interval))


def _check_acknowledged(
    lab: Lab, result: DrillResult, namespace: str, prefix: str, samples: list[probes.Sample]
) -> None:
    acked = [s for s in samples if s.code == "201"]
    maps = _configmaps(lab, namespace)
    lost = [s.seq for s in acked if maps.get(f"{prefix}-{s.seq}", {}).get("seq") != str(s.seq)]
    result.data["writes"] = {
        "attempted": len(samples),
        "acknowledged": len(acked),
        "failed": sum(1 for s in samples if not s.ok),
        "lost": lost,
    }
    result.check(
        f"every acknowledged write is there ({len(acked)} of {len(samples)} acknowledged)",
        bool(acked) and not lost,
        f"lost: {lost}" if lost else "",
    )


def _rejoin_config_command(topo: Topology, initial_cluster: str) -> str:
    """Shell making a member's configuration join the existing cluster as a new member."""
    if topo.stacked:
        manifest = f"{PARKED_DIR}/etcd.yaml"
        return (
            f"sed -i -E -e '/--initial-cluster-state=/d' "
            f"-e 's#^( *- )--initial-cluster=.*#\\1--initial-cluster={initial_cluster}"
            f"\\n\\1--initial-cluster-state=existing#' {manifest}"
        )
    return (
        f"sed -i -E -e 's#^initial-cluster:.*#initial-cluster: {initial_cluster}#' "
        f"-e 's#^initial-cluster-state:.*#initial-cluster-state: existing#' {EXTERNAL_CONFIG}"
    )


def replace_member(topo: Topology, lost: Member, progress: Progress) -> None:
    """Remove the member, wipe its data, add it back as a new member and start it."""
    lab = topo.lab
    info = next((m for m in cluster.members(topo, avoid={lost.name}) if m.name == lost.name), None)
    if info is not None:
        progress.say("drill", f"etcdctl member remove {info.hex_id}", lost.name)
        _, status, output = cluster.etcdctl_on_any(
            topo, f"member remove {info.hex_id}", avoid={lost.name}
        )
        if status != 0:
            raise DrillError(f"member remove {lost.name} failed: {output.strip()}")
    remote.root(lab, lost.node, f"rm -rf {DATA_DIR}")
    _, status, output = cluster.etcdctl_on_any(
        topo, f"member add {lost.name} --peer-urls={lost.peer_url}", avoid={lost.name}
    )
    initial = next(
        (
            line.split("=", 1)[1].strip().strip('"')
            for line in output.splitlines()
            if line.startswith("ETCD_INITIAL_CLUSTER=")
        ),
        None,
    )
    if status != 0 or not initial:
        raise DrillError(f"member add {lost.name} failed: {output.strip()[-300:]}")
    progress.say("drill", f"added back as a new member; initial cluster {initial}", lost.name)
    remote.root(lab, lost.node, _rejoin_config_command(topo, initial))
    start_etcd(topo, [lost.node])


def member_loss(lab: Lab, result: DrillResult, progress: Progress) -> None:
    """Stop the leader's member; writes resume after the election; none acknowledged is lost;
    the member is replaced (removed, wiped, added back); three healthy members at the end."""
    topo = Topology(lab)
    namespace, prefix = "k8slab-drill-writes", "member-loss"
    _delete_namespace(lab, namespace)
    kubectl_ok(lab, f"create namespace {namespace}")
    lost = cluster.leader(topo)
    writer = next((cp for cp in lab.control_planes if cp != lost.node), lab.control_planes[0])
    result.data.update({"stopped_member": lost.name, "writer_on": writer.name})
    _start_writer(lab, writer, namespace, prefix, count=900, seconds=300, interval=0.2, timeout_s=5)
    time.sleep(5)
    progress.say("drill", "stopping the etcd leader", lost.name)
    stopped_at = _now()
    stop_etcd(topo, [lost.node])
    result.timings["election_s"] = _new_leader_among(topo, lost)
    time.sleep(10)
    samples = _stop_probe(lab, writer, prefix)
    result.timings["write_gap_s"] = probes.gap_around(samples, stopped_at)
    resumed = [s for s in samples if s.ok and s.at > stopped_at]
    result.check(
        "writes through the API resumed after the election",
        bool(resumed),
        f"{len(resumed)} acknowledged after the stop; longest gap "
        f"{probes.longest_gap(samples):.1f}s",
    )
    _check_acknowledged(lab, result, namespace, prefix, samples)
    replace_started = time.monotonic()
    replace_member(topo, lost, progress)
    cluster.wait_healthy(topo, 180)
    result.timings["replace_s"] = time.monotonic() - replace_started
    names = sorted(m.name for m in cluster.members(topo))
    result.check(
        "three healthy members, the replaced one among them",
        names == sorted(m.name for m in topo.members) and cluster.health(topo).healthy,
        f"members: {names}",
    )
    _delete_namespace(lab, namespace)


# --- quorum-loss ------------------------------------------------------------------------------


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


def _writes_without_quorum(lab: Lab, writer: Node, namespace: str) -> list[probes.Answer]:
    """Timed writes from ``writer``: first to its own API server, then through the VIP."""
    remote.root(
        lab, writer, f"umask 077; mkdir -p {probes.PROBE_DIR}; {probes.admin_credentials_command()}"
    )
    endpoints = {"direct": f"{writer.address}:{APISERVER_PORT}", "vip": ""}
    requests = {
        route: probes.write_request(
            lab,
            namespace,
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


def quorum_loss(lab: Lab, result: DrillResult, progress: Progress) -> None:
    """Stop two of three members: writes fail (not hang); recover from the latest snapshot."""
    topo = Topology(lab)
    namespace = "k8slab-drill-quorum"
    _delete_namespace(lab, namespace)
    kubectl_ok(lab, f"create namespace {namespace}")
    kubectl_ok(lab, f"create configmap before-snapshot -n {namespace} --from-literal=v=kept")
    taken = backup(lab, progress=progress)
    result.data["snapshot"] = {"file": taken.path.name, "revision": taken.manifest.revision}
    # The first member survives, without a leader: the first control plane's API server
    # reaches it alone (stacked: its local member; external: the only one that answers).
    stopped = topo.members[1:]
    writer = lab.control_planes[0]
    progress.say("drill", "stopping " + ", ".join(m.name for m in stopped))
    lost_at = _now()
    stop_etcd(topo, [m.node for m in stopped])
    result.timings["members_stopped_s"] = _now() - lost_at
    answers = _writes_without_quorum(lab, writer, namespace)
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
    restore_started = time.monotonic()
    restored = restore(lab, taken.path, progress)
    result.timings["recovery_s"] = time.monotonic() - restore_started
    result.timings["outage_s"] = _now() - lost_at
    result.timings.update({f"restore_{k}_s": v for k, v in restored.phases.items()})
    maps = _configmaps(lab, namespace)
    result.check(
        "data up to the snapshot is present",
        maps.get("before-snapshot") == {"v": "kept"},
        str(maps.get("before-snapshot")),
    )
    _delete_namespace(lab, namespace)


# --- control-plane-loss ----------------------------------------------------------------------


def control_plane_loss(lab: Lab, result: DrillResult, progress: Progress) -> None:
    """Stop a whole control-plane host (the VIP holder); the API through the VIP stays
    available; the host comes back and every node is Ready again."""
    if len(lab.control_planes) < 2:
        raise DrillError(f"lab {lab.name} has one control plane; losing it loses the API")
    victim = vip_holder(lab) or lab.control_planes[-1]
    poller = (
        lab.workers[0] if lab.workers else next(cp for cp in lab.control_planes if cp != victim)
    )
    name = "api-gap"
    request = probes.readyz_request(lab, timeout_s=2)
    _start_probe(lab, poller, name, probes.loop_script(name, request, 9000, 900, 0.1))
    time.sleep(3)
    result.data.update({"stopped_host": victim.name, "poller_on": poller.name})
    progress.say("drill", "stopping the whole host (it holds the VIP)", victim.name)
    stopped_at = _now()
    stop_host(lab, victim)
    result.timings["host_stop_s"] = _now() - stopped_at
    moved = _wait_for(lambda: (holder := vip_holder(lab)) is not None and holder != victim, 60)
    result.timings["vip_moved_s"] = _now() - stopped_at
    result.check("the VIP moved to another control plane", moved)
    time.sleep(15)
    back_started = time.monotonic()
    result.timings["host_boot_s"] = start_host(lab, victim, progress)
    units = ["containerd", "kubelet", "haproxy", "keepalived"]
    active = _wait_for(lambda: set(services_active(lab, victim, units).values()) == {"active"}, 120)
    result.check(
        f"{', '.join(units)} active again on {victim.name}",
        active,
        str(services_active(lab, victim, units)),
    )
    wait_healthy(lab, 300)
    result.timings["back_to_healthy_s"] = time.monotonic() - back_started
    # The node is Ready as soon as its kubelet is back, before the kubelet has restarted
    # its Pods (kube-proxy, the CNI's, the static Pods), and kube-proxy's Pod is Ready
    # before it has written the Services' rules (its healthz says when): verify would
    # catch either missing.
    not_ready = ["not checked yet"]

    def pods_back() -> bool:
        not_ready[:] = pods_not_ready_on(lab, victim)
        status, _ = remote.try_root(
            lab, victim, f"curl -sf --max-time 5 {KUBE_PROXY_HEALTHZ}", timeout=20
        )
        if status != 0:
            not_ready.append("kube-proxy's healthz (rules not synced yet)")
        return not not_ready

    back = _wait_for(pods_back, PODS_BACK_DEADLINE_S, 2)
    result.timings["pods_back_s"] = time.monotonic() - back_started
    result.check(
        f"every Pod on {victim.name} Running and Ready again, kube-proxy's rules synced",
        back,
        "" if back else f"not ready: {', '.join(not_ready)}",
    )
    samples = _stop_probe(lab, poller, name)
    gap = probes.longest_gap(samples)
    result.timings["longest_api_gap_s"] = gap
    result.data["api_probes"] = {
        "requests": len(samples),
        "failed": sum(1 for s in samples if not s.ok),
        "interval_s": 0.1,
        "per_request_timeout_s": 2,
    }
    result.check(
        f"the API through the VIP stayed available (longest gap {gap:.1f}s <= "
        f"{API_GAP_BUDGET_S:.0f}s)",
        bool(samples) and gap <= API_GAP_BUDGET_S,
    )


def _wait_for(condition: Callable[[], bool], deadline_s: float, interval_s: float = 1) -> bool:
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        try:
            if condition():
                return True
        except K8slabError:
            pass
        time.sleep(interval_s)
    return False


DRILLS: dict[str, Callable[[Lab, DrillResult, Progress], None]] = {
    "backup-restore": backup_restore,
    "member-loss": member_loss,
    "quorum-loss": quorum_loss,
    "control-plane-loss": control_plane_loss,
}
