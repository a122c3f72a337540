"""Control plane: the API servers, schedulers and controller-managers, each on every
control plane, and their leaders. The VIP and what takes over when a control plane fails
are the control-plane-ha group's (check_control_plane_ha.py)."""

from __future__ import annotations

import ipaddress
import time
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509

from toolkit import leases
from toolkit.certs.expiry import CertError, expiring, parse_kubeadm
from toolkit.constants import APISERVER_PORT, MANIFESTS_DIR
from toolkit.kube import APISERVER_CLIENT_CERT, COMPONENT_PORTS, PKI_DIR, healthz_command
from toolkit.lab.spec import Lab, Node, Role
from toolkit.verify.checks import (
    HEALTH_ATTEMPTS,
    HEALTH_RETRY_S,
    RecordProperty,
    asked_again,
    expect,
    fail,
    running_command,
    static_pod_flags,
)
from toolkit.verify.cluster import Cluster, Run
from toolkit.verify.report import NOTE_PROPERTY

CERT_MIN_VALIDITY = timedelta(days=30)


def apiserver_command(node: Node, endpoint: str) -> str:
    # A client certificate signed by the cluster CA, and the server's certificate checked
    # against that CA: not an anonymous request, not --insecure.
    url = f"https://{node.address}:{APISERVER_PORT}/{endpoint}?verbose"
    return f"curl -sS --max-time 20 --fail-with-body {APISERVER_CLIENT_CERT} {url}"


CHECK_EXPIRATION_COMMAND = "kubeadm certs check-expiration -o json"
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

    runs = asked_again(cluster, control_plane, command, ok)
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


def test_certificates_valid_for_30_days(cluster: Cluster, control_plane: Node) -> None:
    """Every certificate kubeadm keeps on the control plane, CAs included (kubeadm's own
    account); `k8slab certs LAB --renew` renews them."""
    run = cluster.run(control_plane, CHECK_EXPIRATION_COMMAND, timeout=60)
    expect(run.ok, f"{control_plane.name}: kubeadm certs check-expiration failed", run.evidence)
    now = datetime.now(UTC)
    try:
        found = parse_kubeadm(control_plane.name, run.stdout)
    except CertError as exc:
        fail(str(exc), run.evidence)
    soon = expiring(found, now, CERT_MIN_VALIDITY.days)
    expect(
        bool(found) and not soon,
        f"{control_plane.name}: "
        + (
            ", ".join(f"{c.name} expires in {c.left(now).days} days" for c in soon)
            or "kubeadm lists no certificate"
        )
        + "; renew them with `k8slab certs LAB --renew`",
        run.evidence,
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
    planes = {cp.name for cp in lab.control_planes}
    found = leases.problems(lease, planes, time.time())
    expect(not found, f"{component}: no live leader ({'; '.join(found)})", str(lease["spec"]))


def test_service_cidr_holds_kubernetes_service(lab: Lab, cluster_ips: dict[str, str]) -> None:
    address = ipaddress.ip_address(cluster_ips["default/kubernetes"])
    expect(
        address in lab.network.service_cidr,
        f"the kubernetes Service's address {address} is outside {lab.network.service_cidr}",
    )
