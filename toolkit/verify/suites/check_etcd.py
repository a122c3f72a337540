"""etcd: members, health, one leader, TLS on both sides, the API server's endpoints, size
and compaction. Stacked (a static Pod on each control plane) or external (etcd hosts)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from toolkit.certs.expiry import CertError, enddates_command, expiring, parse_enddates
from toolkit.etcd.status import ACTIVE_PEERS_METRIC, EtcdError, inactive_peers, parse_member_list
from toolkit.etcd.topology import PEER_PORT, Topology
from toolkit.lab.spec import Lab, Node
from toolkit.verify.checks import expect, fail, static_pod_flags
from toolkit.verify.cluster import Cluster, Run

STACKED_PKI = "/etc/kubernetes/pki/etcd"
EXTERNAL_PKI = "/etc/etcd/pki"
# What control-plane/certificates_valid_for_30_days asks of kubeadm's certificates too.
MIN_VALIDITY_DAYS = 30
EXTERNAL_CONFIG = "/etc/etcd/etcd.conf.yml"
ETCD_MANIFEST = "/etc/kubernetes/manifests/etcd.yaml"
APISERVER_MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"
DEFAULT_QUOTA_BYTES = 2 * 1024**3
MAX_QUOTA_USE = 0.8


def pki(lab: Lab) -> str:
    return STACKED_PKI if lab.etcd_topology == "stacked" else EXTERNAL_PKI


def etcdctl(lab: Lab, endpoints: str) -> str:
    base = pki(lab)
    return (
        f"etcdctl --endpoints {endpoints} --cacert {base}/ca.crt "
        f"--cert {base}/healthcheck-client.crt --key {base}/healthcheck-client.key "
        "--command-timeout=15s --dial-timeout=5s"
    )


def all_endpoints(lab: Lab) -> str:
    return ",".join(f"https://{n.address}:2379" for n in lab.etcd_members)


def member_list_command(lab: Lab) -> str:
    return f"{etcdctl(lab, all_endpoints(lab))} member list -w json"


LOCAL_ENDPOINT = "https://127.0.0.1:2379"
# The sockets of the peer port, either way and in every state (evidence only).
PEER_SOCKETS = f"ss -Htn '( sport = :{PEER_PORT} or dport = :{PEER_PORT} )'"
PEERS_TIMEOUT_S = 15


def curl_health(lab: Lab, member: Node, with_certificate: bool) -> str:
    base = pki(lab)
    certificate = (
        f" --cert {base}/healthcheck-client.crt --key {base}/healthcheck-client.key"
        if with_certificate
        else ""
    )
    return (
        f"curl -sS --max-time 15 --cacert {base}/ca.crt{certificate} "
        f"https://{member.address}:2379/health"
    )


def peer_links_command(lab: Lab) -> str:
    """The local member's own view of its link to each peer."""
    return Topology(lab).local_metrics_command(ACTIVE_PEERS_METRIC)


def settings_command(lab: Lab) -> str:
    return f"cat {ETCD_MANIFEST}" if lab.etcd_topology == "stacked" else f"cat {EXTERNAL_CONFIG}"


def prefetch(lab: Lab, node: Node) -> list[str]:
    """The read-only commands this suite runs on a node (run ahead, all nodes at once)."""
    commands = []
    if node in lab.etcd_members:
        commands += [
            f"{etcdctl(lab, LOCAL_ENDPOINT)} endpoint health -w json",
            f"{etcdctl(lab, LOCAL_ENDPOINT)} endpoint status -w json",
            settings_command(lab),
            curl_health(lab, node, False),
            curl_health(lab, node, True),
            peer_links_command(lab),
        ]
    if node == lab.etcd_members[0]:
        commands += [
            member_list_command(lab),
            f"{etcdctl(lab, all_endpoints(lab))} endpoint status -w json",
        ]
    if node in lab.control_planes:
        commands.append(f"cat {APISERVER_MANIFEST}")
    return commands


def member_settings(cluster: Cluster, member: Node) -> tuple[dict[str, Any], str]:
    """etcd's settings on a member, as flat keys (flag names), and the evidence text."""
    lab = cluster.lab
    run = cluster.run(member, settings_command(lab))
    if lab.etcd_topology == "stacked":
        return dict(static_pod_flags(run.output)), run.evidence
    try:
        config = yaml.safe_load(run.output) or {}
    except yaml.YAMLError:
        config = {}
    settings: dict[str, Any] = dict(config) if isinstance(config, dict) else {}
    for side, prefix in (("client-transport-security", ""), ("peer-transport-security", "peer-")):
        for key, value in (settings.get(side) or {}).items():
            settings[f"{prefix}{key}"] = value
    return settings, run.evidence


def truthy(value: Any) -> bool:
    return str(value).lower() == "true"


def test_every_member_listed(lab: Lab, cluster: Cluster) -> None:
    first = lab.etcd_members[0]
    run = cluster.run(first, member_list_command(lab))
    expect(run.ok, "etcdctl member list failed", run.evidence)
    members = json.loads(run.stdout).get("members", [])
    names = sorted(m.get("name", "") for m in members)
    expect(
        names == sorted(n.name for n in lab.etcd_members),
        f"etcd members {names}; expected {sorted(n.name for n in lab.etcd_members)} "
        "(an empty name is a member that never started)",
        run.evidence,
    )


def test_member_healthy(lab: Lab, cluster: Cluster, etcd_member: Node) -> None:
    run = cluster.run(etcd_member, f"{etcdctl(lab, LOCAL_ENDPOINT)} endpoint health -w json")
    healthy = run.ok and all(e.get("health") for e in json.loads(run.stdout or "[]"))
    journal = "" if healthy else _etcd_journal(cluster, etcd_member)
    expect(healthy, f"etcd on {etcd_member.name} is not healthy", run.evidence, journal)


def test_member_certificates_valid_for_30_days(
    lab: Lab, cluster: Cluster, etcd_member: Node
) -> None:
    """The member's CA, server, peer and health-check client certificates (the same four
    files in kubeadm's stacked PKI and the etcd role's); `k8slab certs LAB --renew`."""
    run = cluster.run(etcd_member, enddates_command(pki(lab)))
    now = datetime.now(UTC)
    try:
        found = parse_enddates(etcd_member.name, run.stdout)
    except CertError as exc:
        fail(str(exc), run.evidence)
    soon = expiring(found, now, MIN_VALIDITY_DAYS)
    expect(
        not soon,
        f"{etcd_member.name}: "
        + ", ".join(f"{c.name} expires in {c.left(now).days} days" for c in soon)
        + "; renew them with `k8slab certs LAB --renew`",
        run.evidence,
    )


def _etcd_journal(cluster: Cluster, member: Node) -> str:
    if cluster.lab.etcd_topology == "external":
        return cluster.journal(member, "etcd")
    return cluster.run(member, "crictl ps -a --name '^etcd$'").evidence


def test_exactly_one_leader(lab: Lab, cluster: Cluster) -> None:
    first = lab.etcd_members[0]
    run = cluster.run(first, f"{etcdctl(lab, all_endpoints(lab))} endpoint status -w json")
    statuses = []
    for line in run.stdout.splitlines():
        if line.startswith("["):
            statuses = json.loads(line)
    # etcdctl's JSON leaves out zero fields: a member that knows no leader has no "leader".
    leaders = {s["Status"].get("leader", 0) for s in statuses}
    is_leader = [
        s["Endpoint"]
        for s in statuses
        if s["Status"].get("leader", 0)
        and s["Status"]["leader"] == s["Status"].get("header", {}).get("member_id")
    ]
    expect(
        len(statuses) == len(lab.etcd_members)
        and len(leaders) == 1
        and 0 not in leaders
        and len(is_leader) == 1,
        f"{len(statuses)} of {len(lab.etcd_members)} members answered; leaders they name: "
        f"{len(leaders)}; members that say they lead: {is_leader}",
        run.evidence,
    )


def test_peer_and_client_tls(cluster: Cluster, etcd_member: Node) -> None:
    settings, evidence = member_settings(cluster, etcd_member)
    problems = [
        f"{key} is {settings.get(key)!r}"
        for key in ("listen-client-urls", "listen-peer-urls", "advertise-client-urls")
        if not settings.get(key)
        or any(
            not url.startswith("https://")
            for url in str(settings[key]).split(",")
            if url and "2381" not in url
        )
    ]
    problems += [
        f"{key} is {settings.get(key)!r}"
        for key in ("client-cert-auth", "peer-client-cert-auth")
        if not truthy(settings.get(key))
    ]
    expect(not problems, f"{etcd_member.name}: " + "; ".join(problems), evidence)


def test_client_certificate_required(lab: Lab, cluster: Cluster, etcd_member: Node) -> None:
    without = cluster.run(etcd_member, curl_health(lab, etcd_member, False))
    with_cert = cluster.run(etcd_member, curl_health(lab, etcd_member, True))
    expect(
        with_cert.ok and '"health"' in with_cert.stdout,
        f"etcd on {etcd_member.name} does not answer even with a client certificate",
        with_cert.evidence,
    )
    expect(
        not without.ok and '"health"' not in without.stdout,
        f"etcd on {etcd_member.name} answered a client without a certificate",
        without.evidence,
    )


def test_apiserver_etcd_endpoints_match_topology(
    lab: Lab, cluster: Cluster, control_plane: Node
) -> None:
    run = cluster.run(control_plane, f"cat {APISERVER_MANIFEST}")
    servers = sorted(filter(None, static_pod_flags(run.output).get("etcd-servers", "").split(",")))
    if lab.etcd_topology == "stacked":
        wanted = ["https://127.0.0.1:2379"]
    else:
        wanted = sorted(f"https://{n.address}:2379" for n in lab.etcd_hosts)
    expect(
        servers == wanted,
        f"{control_plane.name}: kube-apiserver --etcd-servers={','.join(servers)}; "
        f"the {lab.etcd_topology} topology wants {','.join(wanted)}",
        run.evidence,
    )


def test_db_size_and_compaction(lab: Lab, cluster: Cluster, etcd_member: Node) -> None:
    run = cluster.run(etcd_member, f"{etcdctl(lab, LOCAL_ENDPOINT)} endpoint status -w json")
    expect(run.ok, f"etcd on {etcd_member.name} gave no status", run.evidence)
    status = json.loads(run.stdout)[0]["Status"]
    settings, evidence = member_settings(cluster, etcd_member)
    quota = int(settings.get("quota-backend-bytes") or DEFAULT_QUOTA_BYTES) or DEFAULT_QUOTA_BYTES
    size = int(status["dbSize"])
    expect(
        size < MAX_QUOTA_USE * quota,
        f"{etcd_member.name}: DB size {size} bytes is over {MAX_QUOTA_USE:.0%} of its "
        f"quota {quota}",
        run.evidence,
    )
    retention = str(settings.get("auto-compaction-retention") or "")
    if retention in ("", "0"):
        # Without etcd's own, the API server compacts (every 5 minutes unless set to 0).
        apiserver = cluster.run(lab.control_planes[0], f"cat {APISERVER_MANIFEST}")
        interval = static_pod_flags(apiserver.output).get("etcd-compaction-interval", "5m")
        expect(
            apiserver.ok and interval not in ("0", "0s"),
            f"{etcd_member.name}: no compaction: etcd's auto-compaction-retention is "
            f"{retention or 'unset'} and the API server's etcd-compaction-interval {interval}",
            evidence,
            apiserver.evidence,
        )


def peer_dial_command(addresses: list[str]) -> str:
    """One line per address: whether a TCP connection to its peer port opens (3 s)."""
    return "; ".join(
        f"if timeout 3 bash -c ': </dev/tcp/{address}/{PEER_PORT}'; then echo '{address} open'; "
        f"else echo '{address} closed'; fi"
        for address in addresses
    )


def test_peers_connected(lab: Lab, cluster: Cluster, etcd_member: Node) -> None:
    """etcd on this member reports an active link to every other member (its
    etcd_network_active_peers), and it can open a connection to every other member's peer
    port. A member cut off from one peer still looks healthy while the others carry it,
    until the next failure needs that link. Both, since neither shows every cut: a stream
    that the peer still writes into stays up for minutes after the member's own packets to
    that peer are dropped (measured: the metric stayed 1 for 90 s while every new
    connection timed out), and sockets stay ESTABLISHED until TCP gives up."""
    if len(lab.etcd_members) < 2:
        pytest.skip("one etcd member: no peers")
    listed = cluster.run(lab.etcd_members[0], member_list_command(lab))
    try:
        members = parse_member_list(listed.output)
    except EtcdError as exc:
        fail(f"etcd's members are unknown, so are its peers: {exc}", listed.evidence)
    others = [m.name or m.hex_id for m in members if m.name != etcd_member.name]

    def inactive(run: Run) -> list[str]:
        return inactive_peers(run.stdout, members, etcd_member.name)

    command = peer_links_command(lab)
    run = cluster.run_until(etcd_member, command, lambda r: not inactive(r), PEERS_TIMEOUT_S)
    down = inactive(run)
    peers = [n for n in lab.etcd_members if n.name != etcd_member.name]
    dialled = cluster.run(etcd_member, peer_dial_command([str(n.address) for n in peers]))
    closed = [n.name for n in peers if f"{n.address} open" not in dialled.stdout.splitlines()]
    expect(
        not down and not closed,
        f"etcd {etcd_member.name} -> peers {', '.join(others)}: expected an active link to "
        f"each ({ACTIVE_PEERS_METRIC} 1) and each peer port to accept a connection; "
        f"inactive: {', '.join(down) or 'none'}; port {PEER_PORT} not reached on: "
        f"{', '.join(closed) or 'none'}",
        run.evidence,
        dialled.evidence,
        cluster.run(etcd_member, PEER_SOCKETS).evidence,
        "" if run.ok else _etcd_journal(cluster, etcd_member),
    )
