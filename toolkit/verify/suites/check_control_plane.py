"""Control plane: the API servers, schedulers and controller-managers, and the VIP."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509

from toolkit.constants import APISERVER_PORT, MANIFESTS_DIR
from toolkit.kube import (
    APISERVER_CLIENT_CERT,
    COMPONENT_PORTS,
    PKI_DIR,
    healthz_command,
)
from toolkit.lab.spec import Lab, Node, Role
from toolkit.verify.checks import expect, fail, static_pod_flags
from toolkit.verify.cluster import Cluster, Run, eventually
from toolkit.verify.redundancy import (
    COMPONENT_KUBECONFIGS,
    ESTABLISHED_WITH_PROCESSES,
    HAPROXY_BACKEND,
    HAPROXY_CFG,
    HAPROXY_STAT,
    KEEPALIVED_CONF,
    TRACK_SCRIPT,
    backend_problems,
    connected_to,
    established,
    haproxy_servers,
    haproxy_status,
    interface_addresses,
    keepalived_problems,
    kubeconfig_server,
    parse_keepalived,
    server_endpoint,
)
from toolkit.verify.report import NOTE_PROPERTY
from toolkit.verify.vip import (
    api_answered,
    haproxy_state,
    read_through_vip,
    vip_holders,
    vip_read_url,
)

CERT_MIN_VALIDITY = timedelta(days=30)
LEASE_SLACK_S = 10
VIP_REQUESTS = 10
HEALTH_ATTEMPTS = 3
HEALTH_RETRY_S = 5
# pytest's record_property fixture
RecordProperty = Callable[[str, object], None]


def running_command(name: str) -> str:
    return f"crictl ps --name '^{name}$' --state running -q"


def apiserver_command(node: Node, endpoint: str) -> str:
    # A client certificate signed by the cluster CA, and the server's certificate checked
    # against that CA: not an anonymous request, not --insecure.
    url = f"https://{node.address}:{APISERVER_PORT}/{endpoint}?verbose"
    return f"curl -sS --max-time 20 --fail-with-body {APISERVER_CLIENT_CERT} {url}"


BACKENDS_UP_TIMEOUT_S = 20
TRACK_SCRIPT_COMMAND = f"sh {TRACK_SCRIPT}"
CONNECTED_TIMEOUT_S = 15
MANIFESTS_COMMAND = f'for f in {MANIFESTS_DIR}/*.yaml; do echo "=== $f"; cat "$f"; done'
ETCD_OUTGOING = "ss -Htnp state established '( dport = :2379 )'"
ETCD_INCOMING = "ss -Htn state established '( sport = :2379 )'"


def prefetch(lab: Lab, node: Node) -> list[str]:
    """The read-only commands this suite runs on a node (run ahead, all nodes at once)."""
    commands = []
    if node in lab.control_planes:
        commands += [running_command(c) for c in ("kube-apiserver", *COMPONENT_PORTS)]
        commands += [apiserver_command(node, e) for e in ("readyz", "livez")]
        commands += [healthz_command(c) for c in COMPONENT_PORTS]
        commands += [f"cat {PKI_DIR}/apiserver.crt", MANIFESTS_COMMAND]
        commands += [
            "systemctl is-active keepalived",
            f"cat {KEEPALIVED_CONF}",
            "ip -o -4 addr show",
            "systemctl is-active haproxy",
            f"cat {HAPROXY_CFG}",
            HAPROXY_STAT,
            TRACK_SCRIPT_COMMAND,
            ESTABLISHED_WITH_PROCESSES,
            *(f"cat {conf}" for conf in COMPONENT_KUBECONFIGS.values()),
        ]
    # Not the sockets to etcd: they are read on their own, after the batch, whose etcd
    # probes would otherwise be among the connections they list.
    return commands


def running_container(cluster: Cluster, node: Node, name: str) -> Run:
    return cluster.run(node, running_command(name))


def expect_running(cluster: Cluster, node: Node, name: str) -> None:
    run = running_container(cluster, node, name)
    if not (run.ok and run.stdout.strip()):
        listing = cluster.run(node, f"crictl ps -a --name '^{name}$'")
        fail(
            f"{name} is not running on {node.name}",
            run.evidence,
            listing.evidence,
            cluster.journal(node, "kubelet", 10),
        )


def test_apiserver_running(cluster: Cluster, control_plane: Node) -> None:
    expect_running(cluster, control_plane, "kube-apiserver")


def expect_apiserver_endpoint_ok(
    cluster: Cluster, control_plane: Node, endpoint: str, record_property: RecordProperty
) -> None:
    """Asked again after a failed answer, a bounded number of times, as kubeadm waits for
    health: on a loaded machine one slow etcd round trip fails a single answer ("[-]etcd
    failed"), where a broken API server or etcd fails every one. A pass after a retry
    keeps the failed answers as the check's note."""
    command = apiserver_command(control_plane, endpoint)

    def ok(run: Run) -> bool:
        return run.ok and f"{endpoint} check passed" in run.stdout

    def failing_lines(run: Run) -> str:
        # The failed health checks (evidence keeps only the tail, where they may not be).
        lines = [line for line in run.stdout.splitlines() if line.startswith("[-]")]
        return ", ".join(lines) or f"no answer (exit {run.exit_status})"

    runs = [cluster.run(control_plane, command)]
    while not ok(runs[-1]) and len(runs) < HEALTH_ATTEMPTS:
        time.sleep(HEALTH_RETRY_S)
        runs.append(cluster.run(control_plane, command, fresh=True))
    if ok(runs[-1]):
        if len(runs) > 1:
            record_property(
                NOTE_PROPERTY,
                f"ok on attempt {len(runs)} of {HEALTH_ATTEMPTS}; before that: "
                + "; ".join(failing_lines(r) for r in runs[:-1])
                + "\n\n"
                + "\n\n".join(r.evidence for r in runs[:-1]),
            )
        return
    failing = sorted({failing_lines(r) for r in runs})
    fail(
        f"{endpoint} of the API server on {control_plane.name} is not ok in {len(runs)} "
        f"answers {HEALTH_RETRY_S}s apart: " + "; ".join(failing),
        *(r.evidence for r in runs),
    )


def test_apiserver_readyz(
    cluster: Cluster, control_plane: Node, record_property: RecordProperty
) -> None:
    expect_apiserver_endpoint_ok(cluster, control_plane, "readyz", record_property)


def test_apiserver_livez(
    cluster: Cluster, control_plane: Node, record_property: RecordProperty
) -> None:
    expect_apiserver_endpoint_ok(cluster, control_plane, "livez", record_property)


def test_apiserver_serving_certificate(lab: Lab, cluster: Cluster, control_plane: Node) -> None:
    run = cluster.run(control_plane, f"cat {PKI_DIR}/apiserver.crt")
    expect(run.ok, "cannot read the API server's certificate", run.evidence)
    cert = x509.load_pem_x509_certificate(run.output.encode())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = set(sans.get_values_for_type(x509.DNSName))
    addresses = {str(a) for a in sans.get_values_for_type(x509.IPAddress)}
    missing = [
        wanted
        for wanted, present in (
            (str(lab.api_vip), str(lab.api_vip) in addresses),
            (control_plane.name, control_plane.name in names),
            (str(control_plane.address), str(control_plane.address) in addresses),
        )
        if not present
    ]
    remaining = cert.not_valid_after_utc - datetime.now(UTC)
    expect(
        not missing and remaining > CERT_MIN_VALIDITY,
        f"{control_plane.name}: the API server's certificate "
        + (f"lacks SANs {missing}" if missing else f"expires in {remaining.days} days"),
        f"DNS SANs {sorted(names)}\nIP SANs {sorted(addresses)}\n"
        f"not after {cert.not_valid_after_utc.isoformat()}",
    )


def test_only_apiserver_has_etcd_client_certificate(cluster: Cluster, control_plane: Node) -> None:
    run = cluster.run(control_plane, MANIFESTS_COMMAND)
    expect(run.ok, "cannot read the static Pod manifests", run.evidence)
    holders = []
    apiserver_flags: dict[str, str] = {}
    for chunk in run.stdout.split("=== ")[1:]:
        path, _, text = chunk.partition("\n")
        flags = static_pod_flags(text)
        if any(k.startswith("etcd-") and k.endswith(("certfile", "keyfile")) for k in flags):
            holders.append(path.rsplit("/", 1)[-1])
        if path.endswith("/kube-apiserver.yaml"):
            apiserver_flags = flags
    expect(
        holders == ["kube-apiserver.yaml"] and apiserver_flags.get("etcd-certfile"),
        f"{control_plane.name}: etcd client certificates configured in {holders or 'no manifest'}; "
        "only kube-apiserver should have one",
        run.evidence,
    )


def test_only_apiserver_connects_to_etcd(lab: Lab, cluster: Cluster, etcd_side: Node) -> None:
    """Outgoing: no process but the API server (and etcd itself) connects to a client port.
    Incoming, where a member runs: clients come only from where API servers run."""
    outgoing = cluster.run(etcd_side, ETCD_OUTGOING)
    expect(outgoing.ok, "ss failed", outgoing.evidence)
    processes = {
        part.split('"')[1] for line in outgoing.stdout.splitlines() for part in line.split("((")[1:]
    }
    # etcd talks to its own client port (its gRPC gateway); anything else is a stranger.
    strangers = processes - {"kube-apiserver", "etcd"}
    wanted = "kube-apiserver" if etcd_side.role == Role.CONTROL_PLANE else None
    expect(
        not strangers and (wanted is None or wanted in processes),
        f"{etcd_side.name}: processes connected to etcd's client port: {sorted(processes)}"
        + (" (the API server is not among them)" if wanted and wanted not in processes else ""),
        outgoing.evidence,
    )
    if etcd_side not in lab.etcd_members:
        return
    incoming = cluster.run(etcd_side, ETCD_INCOMING)
    allowed = {"127.0.0.1", str(etcd_side.address)}
    if lab.etcd_topology == "external":
        allowed |= {str(cp.address) for cp in lab.control_planes}
    peers = {line.split()[-1].rsplit(":", 1)[0] for line in incoming.stdout.splitlines()}
    expect(
        incoming.ok and peers <= allowed,
        f"{etcd_side.name}: etcd clients from {sorted(peers - allowed)}, where no API server runs",
        incoming.evidence,
    )


def expect_component_healthy(cluster: Cluster, control_plane: Node, component: str) -> None:
    expect_running(cluster, control_plane, component)
    run = cluster.run(control_plane, healthz_command(component))
    expect(run.ok and run.stdout.strip() == "ok", f"{component} healthz is not ok", run.evidence)


def test_scheduler_running_and_healthy(cluster: Cluster, control_plane: Node) -> None:
    expect_component_healthy(cluster, control_plane, "kube-scheduler")


def test_controller_manager_running_and_healthy(cluster: Cluster, control_plane: Node) -> None:
    expect_component_healthy(cluster, control_plane, "kube-controller-manager")


@pytest.mark.parametrize("component", sorted(COMPONENT_PORTS))
def test_one_leader(lab: Lab, cluster: Cluster, component: str) -> None:
    lease = cluster.kubectl_json("get", "lease", "-n", "kube-system", component)
    spec = lease["spec"]
    holder = spec.get("holderIdentity", "")
    renewed = datetime.fromisoformat(
        spec.get("renewTime", "1970-01-01T00:00:00Z").replace("Z", "+00:00")
    )
    age = (datetime.now(UTC) - renewed).total_seconds()
    duration = int(spec.get("leaseDurationSeconds", 15))
    expect(
        holder.split("_")[0] in {cp.name for cp in lab.control_planes}
        and age <= duration + LEASE_SLACK_S,
        f"{component}: no live leader (holder {holder or 'none'}, lease renewed {age:.0f}s ago, "
        f"duration {duration}s)",
        str(spec),
    )


def test_vip_held_by_one_control_plane_and_answering(lab: Lab, cluster: Cluster) -> None:
    # keepalived may be moving the VIP right now: give VRRP a bounded moment to settle.
    settled, holders = eventually(lambda: vip_holders(lab, cluster), lambda h: len(h) == 1, 15)
    expect(settled, f"the VIP {lab.api_vip} is held by {holders or 'no control plane'}")
    run = read_through_vip(lab, cluster)
    expect(api_answered(run), f"the API does not answer through {vip_read_url(lab)}", run.evidence)


# --- the standby parts of HA: every control plane able to take over, not only the one
# serving now. Each check reads state (configuration, sockets, haproxy's own view).


def test_keepalived_ready_to_take_vip(lab: Lab, cluster: Cluster, control_plane: Node) -> None:
    """keepalived on this control plane runs, in the same VRRP group as every other control
    plane's (router id, authentication), with the lab's VIP, a priority of its own, on the
    interface that carries the node's lab address: if the VIP's holder fails, it can take
    the VIP."""
    active = cluster.run(control_plane, "systemctl is-active keepalived")
    conf = cluster.run(control_plane, f"cat {KEEPALIVED_CONF}")
    mine = parse_keepalived(conf.stdout)
    peers = {
        cp.name: parse_keepalived(cluster.run(cp, f"cat {KEEPALIVED_CONF}").stdout)
        for cp in lab.control_planes
        if cp != control_plane
    }
    addresses = cluster.run(control_plane, "ip -o -4 addr show")
    problems = []
    if active.stdout.strip() != "active":
        problems.append(f"keepalived is {active.stdout.strip() or 'unknown'}")
    problems += keepalived_problems(
        control_plane.name,
        str(control_plane.address),
        str(lab.api_vip),
        mine,
        peers,
        interface_addresses(addresses.stdout),
    )
    expect(
        not problems,
        f"keepalived on {control_plane.name} could not take the VIP {lab.api_vip} over from "
        f"{', '.join(sorted(peers)) or 'no peer'}: " + "; ".join(problems),
        active.evidence,
        conf.evidence,
        "peers: "
        + "; ".join(f"{n}: {p.describe() if p else 'no vrrp_instance'}" for n, p in peers.items()),
        addresses.evidence,
        cluster.journal(control_plane, "keepalived", 10),
    )


def test_keepalived_track_script_passes(
    cluster: Cluster, control_plane: Node, record_property: RecordProperty
) -> None:
    """keepalived's health check on this control plane (its haproxy -> a ready API server)
    passes: a control plane whose check fails drops its priority and, holding the VIP,
    would serve nothing. Asked again after a failed answer, as the API server checks are."""
    runs = [cluster.run(control_plane, TRACK_SCRIPT_COMMAND)]
    while not runs[-1].ok and len(runs) < HEALTH_ATTEMPTS:
        time.sleep(HEALTH_RETRY_S)
        runs.append(cluster.run(control_plane, TRACK_SCRIPT_COMMAND, fresh=True))
    if runs[-1].ok and len(runs) > 1:
        record_property(
            NOTE_PROPERTY,
            f"ok on attempt {len(runs)} of {HEALTH_ATTEMPTS}\n\n"
            + "\n\n".join(r.evidence for r in runs[:-1]),
        )
    expect(
        runs[-1].ok,
        f"{control_plane.name}: keepalived's check {TRACK_SCRIPT} (local haproxy -> a ready "
        f"API server) failed {len(runs)} times {HEALTH_RETRY_S}s apart",
        *(r.evidence for r in runs),
        cluster.run(control_plane, "systemctl is-active haproxy").evidence,
    )


def test_haproxy_backends_every_apiserver_up(
    lab: Lab, cluster: Cluster, control_plane: Node
) -> None:
    """haproxy on this control plane runs, has every API server of the lab as a server of
    its backend, and sees each one UP from here (its own health checks reach it): whichever
    control plane holds the VIP next balances to all of them."""
    wanted = {cp.name: f"{cp.address}:{APISERVER_PORT}" for cp in lab.control_planes}
    active = cluster.run(control_plane, "systemctl is-active haproxy")
    config = cluster.run(control_plane, f"cat {HAPROXY_CFG}")
    configured = haproxy_servers(config.stdout, HAPROXY_BACKEND)

    def problems(stat: Run) -> list[str]:
        found = [] if active.stdout.strip() == "active" else [f"haproxy is {active.stdout.strip()}"]
        return found + backend_problems(
            wanted, configured, haproxy_status(stat.stdout, HAPROXY_BACKEND)
        )

    # A server a moment ago slow to answer /readyz comes back after `rise` checks.
    stat = cluster.run_until(
        control_plane, HAPROXY_STAT, lambda s: not problems(s), BACKENDS_UP_TIMEOUT_S
    )
    found = problems(stat)
    expect(
        not found,
        f"haproxy on {control_plane.name} -> API servers "
        f"{', '.join(f'{n} {a}' for n, a in wanted.items())}: expected every one configured "
        "and UP; " + "; ".join(found),
        active.evidence,
        config.evidence,
        stat.evidence,
        cluster.journal(control_plane, "haproxy", 10),
    )


def expect_connected_to_apiserver(cluster: Cluster, control_plane: Node, component: str) -> None:
    """The component (leader or standby) holds a connection to the API server its kubeconfig
    names: a standby polls the Lease through it, and takes over through it."""
    kubeconfig = COMPONENT_KUBECONFIGS[component]
    conf = cluster.run(control_plane, f"cat {kubeconfig}")
    server = kubeconfig_server(conf.stdout)
    expect(server, f"{control_plane.name}: no server in {kubeconfig}", conf.evidence)
    host, port = server_endpoint(server)

    def connected(run: Run) -> bool:
        return run.ok and connected_to(established(run.stdout), component, host, port)

    sockets = cluster.run_until(
        control_plane, ESTABLISHED_WITH_PROCESSES, connected, CONNECTED_TIMEOUT_S
    )
    expect(
        connected(sockets),
        f"{component} on {control_plane.name} -> API server {host}:{port} (from {kubeconfig}): "
        "expected an established connection, found none",
        conf.evidence,
        sockets.evidence,
        running_container(cluster, control_plane, component).evidence,
    )


def test_scheduler_connected_to_apiserver(cluster: Cluster, control_plane: Node) -> None:
    expect_connected_to_apiserver(cluster, control_plane, "kube-scheduler")


def test_controller_manager_connected_to_apiserver(cluster: Cluster, control_plane: Node) -> None:
    expect_connected_to_apiserver(cluster, control_plane, "kube-controller-manager")


@pytest.mark.disruptive
def test_api_through_vip_survives_one_apiserver_stopped(lab: Lab, cluster: Cluster) -> None:
    """Freeze one API server (SIGSTOP: it stops answering, like a dead one), check that
    haproxy takes it out and the VIP keeps answering, then thaw it (SIGCONT), which
    brings it back at once, without the cold start of a restarted server."""
    if len(lab.control_planes) < 2:
        pytest.skip("one control plane: nothing to fail over to")
    victim = lab.control_planes[-1]
    holders = vip_holders(lab, cluster)
    expect(len(holders) == 1, f"the VIP is held by {holders}; cannot test fail-over")
    balancer = lab.node(holders[0])
    direct = f"https://{victim.address}:{APISERVER_PORT}/readyz"
    pids = "$(pgrep -x kube-apiserver)"
    stop = cluster.run(victim, f"kill -STOP {pids}", fresh=True)
    try:
        expect(stop.ok, f"could not stop the API server on {victim.name}", stop.evidence)
        down, state = eventually(
            lambda: haproxy_state(cluster, balancer, victim.name), lambda s: s == "DOWN", 40, 1
        )
        expect(down, f"haproxy on {balancer.name} still sees {victim.name} as {state}")
        stopped = cluster.run(
            cluster.first, f"curl -sS --max-time 3 {APISERVER_CLIENT_CERT} {direct}", fresh=True
        )
        answers = [read_through_vip(lab, cluster) for _ in range(VIP_REQUESTS)]
        failed = [a for a in answers if not api_answered(a)]
        expect(not stopped.ok, f"{victim.name}'s API server still answers", stopped.evidence)
        expect(
            not failed,
            f"with {victim.name}'s API server stopped, {len(failed)} of {len(answers)} "
            "requests through the VIP failed",
            *(a.evidence for a in failed[:2]),
        )
    finally:
        cluster.run(victim, f"kill -CONT {pids}", fresh=True)
        up, state = eventually(
            lambda: haproxy_state(cluster, balancer, victim.name), lambda s: s == "UP", 60, 1
        )
    expect(up, f"{victim.name}'s API server is {state} in haproxy after it was thawed")


def test_service_cidr_holds_kubernetes_service(lab: Lab, cluster_ips: dict[str, str]) -> None:
    address = ipaddress.ip_address(cluster_ips["default/kubernetes"])
    expect(
        address in lab.network.service_cidr,
        f"the kubernetes Service's address {address} is outside {lab.network.service_cidr}",
    )
