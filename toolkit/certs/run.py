"""``k8slab certs``: every certificate's expiry, and their renewal by the documented
procedures.

kubeadm's ("Certificate Management with kubeadm", manual renewal): ``kubeadm certs renew
all`` on each control plane, one at a time, then its static Pods restarted (their
manifests leave the kubelet's folder and come back, as the etcd restore does), the node's
API server ready and etcd healthy before the next; the admin kubeconfig copied again. An
external etcd's member certificates are issued again one member at a time by the etcd
role (its old ones removed on the CA member first), which installs them and restarts the
member; the cluster is healthy with one leader before the next.
"""

from __future__ import annotations

import shlex
import time

from toolkit import kube
from toolkit.certs.expiry import (
    CertError,
    Certificate,
    enddates_command,
    parse_enddates,
    parse_kubeadm,
)
from toolkit.errors import HostError
from toolkit.etcd import cluster, steps
from toolkit.etcd.topology import EXTERNAL_PKI, Topology
from toolkit.hosts import remote
from toolkit.lab.spec import Lab, Node
from toolkit.lab.state import LabState
from toolkit.poll import problems_gone, wait_until
from toolkit.progress import SILENT, Progress
from toolkit.provision.run import Phase, run_playbook

# What kubeadm renews and each restarted static Pod reads.
CONTROL_PLANE_PODS = ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]
READY_TIMEOUT_S = 300
ETCD = Phase("etcd", "etcd.yml")


def certificates(lab: Lab) -> list[Certificate]:
    """Every certificate of the lab with its expiry: kubeadm's on each control plane, and
    each external etcd member's CA, server, peer and health-check client certificates."""
    found: list[Certificate] = []
    for node in lab.control_planes:
        output = remote.root(lab, node, "kubeadm certs check-expiration -o json", timeout=60)
        found += parse_kubeadm(node.name, output)
    if lab.etcd_topology == "external":
        for node in lab.etcd_hosts:
            output = remote.root(lab, node, enddates_command(EXTERNAL_PKI))
            found += parse_enddates(node.name, output)
    return found


def _api_server_not_ready(lab: Lab, node: Node) -> list[str]:
    return [p for p in kube.apiservers_not_ready(lab) if f" on {node.name} is not " in p]


def renew_control_plane(lab: Lab, node: Node, progress: Progress = SILENT) -> None:
    """kubeadm's certificates of one control plane renewed and its static Pods restarted."""
    pods = CONTROL_PLANE_PODS + (["etcd"] if lab.etcd_topology == "stacked" else [])
    with progress.phase("renew", "kubeadm certs renew all"):
        remote.root(lab, node, "kubeadm certs renew all", timeout=120)
    with progress.phase("restart", ", ".join(pods)):
        restarted = time.time()
        steps.stop_static_pods(lab, node, pods)
        steps.start_static_pods(lab, node, pods)
        wait_until(
            lambda: _api_server_not_ready(lab, node),
            lambda problems: not problems,
            timeout_s=READY_TIMEOUT_S,
            interval_s=3,
            what=f"the API server on {node.name} ready",
            retry_on=(HostError, kube.ClusterError),
        )
        cluster.wait_healthy(Topology(lab), READY_TIMEOUT_S)
        # Restarted, the scheduler and controller-manager lead again only once the lease of
        # the instances they replace has run out (seen: verify right after a renewal on a
        # lab of one control plane found neither leading).
        wait_until(
            lambda: kube.leaderless_components(lab, since=restarted),
            problems_gone,
            timeout_s=READY_TIMEOUT_S,
            interval_s=3,
            what="a leading scheduler and controller-manager",
            retry_on=(HostError, kube.ClusterError),
        )


def reissue_etcd_member(lab: Lab, member: Node, progress: Progress = SILENT) -> None:
    """An external member's certificates issued again (the etcd role), then the cluster
    healthy with one leader."""
    ca_host = lab.etcd_hosts[0]
    issued = f"{EXTERNAL_PKI}/issued"
    names = " ".join(
        shlex.quote(f"{issued}/{member.name}-{kind}.{ext}")
        for kind in ("server", "peer", "healthcheck-client")
        for ext in ("crt", "key")
    )
    with progress.phase("reissue", f"etcd certificates of {member.name}"):
        remote.root(lab, ca_host, f"rm -f {names}")
        run_playbook(lab, ETCD, {}, limit=member.name, progress=progress)
        cluster.wait_healthy(Topology(lab), READY_TIMEOUT_S)


def refresh_admin_kubeconfig(lab: Lab) -> None:
    """The renewed admin.conf of the first control plane into the lab's state (0600)."""
    state = LabState.of(lab.name)
    partial = state.kubeconfig.with_name(".kubeconfig.partial")
    try:
        remote.fetch(lab, lab.control_planes[0], kube.ADMIN_KUBECONFIG, partial)
        state.write_text(state.kubeconfig, partial.read_text(encoding="utf-8"), 0o600)
    finally:
        partial.unlink(missing_ok=True)


def renew(lab: Lab, progress: Progress = SILENT) -> list[Certificate]:
    """Renew every certificate (see the module's docstring); the expiries afterwards."""
    problems = kube.apiservers_not_ready(lab) + cluster.health(Topology(lab)).problems
    if problems:
        raise CertError(
            f"lab {lab.name} is not healthy, nothing was renewed: {'; '.join(problems)}"
        )
    for node in lab.control_planes:
        progress.say("certs", "one control plane at a time", node.name)
        renew_control_plane(lab, node, progress)
    if lab.etcd_topology == "external":
        for member in lab.etcd_hosts:
            reissue_etcd_member(lab, member, progress)
    refresh_admin_kubeconfig(lab)
    return certificates(lab)
