"""Where etcd runs in a lab and how to reach, stop and start it, for both topologies.

Stacked (kubeadm's default): an etcd static Pod on every control plane, PKI under
/etc/kubernetes/pki/etcd. External: ``etcd.service`` on the etcd hosts, PKI under
/etc/etcd/pki. In both, the API servers are static Pods on the control planes; the kubelet
stops a static Pod when its manifest leaves /etc/kubernetes/manifests.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from importlib import resources

from toolkit.constants import CONTAINERD, ETCD_DATA_DIR, MANIFESTS_DIR, PARKED_MANIFESTS_DIR
from toolkit.lab.spec import Lab, Node

CLIENT_PORT = 2379
PEER_PORT = 2380
# Control planes run containerd (toolkit/lab/rules.py): the restore drives it.
RUNTIME_ENDPOINT = CONTAINERD.endpoint
CRICTL = f"crictl --runtime-endpoint {RUNTIME_ENDPOINT}"

# The shell programs of backup and restore, run on the members with quoted arguments.
SCRIPTS = resources.files("toolkit.etcd") / "scripts"

STACKED_PKI = "/etc/kubernetes/pki/etcd"
EXTERNAL_PKI = "/etc/etcd/pki"


@dataclass(frozen=True)
class RestoreDirs:
    """A restore's data directories on every member, named by its UTC stamp."""

    restored: str  # where the snapshot is restored, beside the live one
    old: str  # the live one, put aside at the swap; a rollback brings it back
    failed: str  # the restored one, put aside by a rollback


def restore_dirs(stamp: str) -> RestoreDirs:
    return RestoreDirs(
        restored=f"{ETCD_DATA_DIR}.restored-{stamp}",
        old=f"{ETCD_DATA_DIR}.before-restore-{stamp}",
        failed=f"{ETCD_DATA_DIR}.failed-{stamp}",
    )


@dataclass(frozen=True)
class Member:
    """One etcd member: the node it runs on and the URLs it uses."""

    node: Node

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def peer_url(self) -> str:
        return f"https://{self.node.address}:{PEER_PORT}"

    @property
    def client_url(self) -> str:
        return f"https://{self.node.address}:{CLIENT_PORT}"


@dataclass(frozen=True)
class Topology:
    """The etcd facts of one lab that the backup, restore and drills need."""

    lab: Lab

    @property
    def kind(self) -> str:
        return self.lab.etcd_topology

    @property
    def stacked(self) -> bool:
        return self.kind == "stacked"

    @property
    def members(self) -> list[Member]:
        return [Member(node) for node in self.lab.etcd_members]

    def member(self, name: str) -> Member:
        for member in self.members:
            if member.name == name:
                return member
        raise KeyError(name)

    @property
    def pki_dir(self) -> str:
        return STACKED_PKI if self.stacked else EXTERNAL_PKI

    def etcdctl(self, endpoints: str = f"https://127.0.0.1:{CLIENT_PORT}") -> str:
        """The etcdctl command line (run with sudo on a member) for ``endpoints``."""
        pki = self.pki_dir
        return (
            f"ETCDCTL_API=3 etcdctl --endpoints {shlex.quote(endpoints)} --cacert {pki}/ca.crt "
            f"--cert {pki}/healthcheck-client.crt --key {pki}/healthcheck-client.key "
            "--command-timeout 5s --dial-timeout 3s"
        )

    def local_metrics_command(self, metric: str) -> str:
        """The samples of ``metric`` in the local member's /metrics (run on a member)."""
        pki = self.pki_dir
        return (
            f"curl -sS --max-time 15 --cacert {pki}/ca.crt --cert {pki}/healthcheck-client.crt "
            f"--key {pki}/healthcheck-client.key https://127.0.0.1:{CLIENT_PORT}/metrics "
            f"| grep -E '^{metric}[{{ ]'"
        )

    def all_endpoints(self) -> str:
        return ",".join(member.client_url for member in self.members)

    def initial_cluster(self, members: list[Member] | None = None) -> str:
        return ",".join(f"{m.name}={m.peer_url}" for m in (members or self.members))


def park_manifests_command(pods: list[str]) -> str:
    """Shell that moves these static Pods' manifests out of the kubelet's sight (idempotent)."""
    moves = " ; ".join(
        f"if [ -f {manifest} ]; then mv {manifest} {PARKED_MANIFESTS_DIR}/; fi"
        for manifest in (shlex.quote(f"{MANIFESTS_DIR}/{pod}.yaml") for pod in pods)
    )
    return f"set -e; mkdir -p {PARKED_MANIFESTS_DIR}; {moves}"


def unpark_manifests_command(pods: list[str]) -> str:
    """Shell that puts parked manifests back, where the kubelet starts them (idempotent)."""
    moves = " ; ".join(
        f"if [ -f {parked} ]; then mv {parked} {MANIFESTS_DIR}/; fi"
        for parked in (shlex.quote(f"{PARKED_MANIFESTS_DIR}/{pod}.yaml") for pod in pods)
    )
    return f"set -e; {moves}"


def running_containers_command(pods: list[str]) -> str:
    """Shell printing one line per running container of these static Pods."""
    return " ; ".join(
        f"{CRICTL} ps -q --state running --name {shlex.quote(f'^{pod}$')}" for pod in pods
    )
