"""End to end: a lab from nothing to a Ready cluster, checked part by part, then a second
provision that changes nothing. Labs: $K8SLAB_E2E_LABS (default: ha-stacked)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from toolkit import kube
from toolkit.bundle import store as bundle_store
from toolkit.hosts.lifecycle import ssh_target
from toolkit.hosts.ssh import run_command
from toolkit.lab.spec import Lab, Node
from toolkit.lab.state import LabState
from toolkit.poll import poll
from toolkit.provision.run import provision

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NAMESPACE = "k8slab-e2e"
# etcdctl where each topology keeps a client certificate: kubeadm's health-check client on
# the control planes (stacked), the etcd role's on the etcd hosts (external).
ETCDCTL = {
    "stacked": "sudo etcdctl --cacert /etc/kubernetes/pki/etcd/ca.crt "
    "--cert /etc/kubernetes/pki/etcd/healthcheck-client.crt "
    "--key /etc/kubernetes/pki/etcd/healthcheck-client.key",
    "external": "sudo etcdctl --cacert /etc/etcd/pki/ca.crt "
    "--cert /etc/etcd/pki/healthcheck-client.crt --key /etc/etcd/pki/healthcheck-client.key",
}


@pytest.fixture
def lab(provisioned_lab: Lab) -> Lab:
    return provisioned_lab


def on(lab: Lab, node: Node, command: str, timeout: float = 60) -> tuple[int, str]:
    return run_command(ssh_target(LabState.of(lab.name), node), command, timeout=timeout)


def eventually(check: Any, timeout_s: float = 180, interval_s: float = 3) -> Any:
    """Poll ``check`` until it returns a truthy value (bounded in time); its last value."""
    return poll(check, bool, timeout_s, interval_s).value


def test_every_node_is_ready(lab: Lab) -> None:
    nodes = kube.kubectl_json(lab, ["get", "nodes"])["items"]
    ready = {
        n["metadata"]["name"]
        for n in nodes
        for c in n["status"]["conditions"]
        if c["type"] == "Ready" and c["status"] == "True"
    }
    assert ready == {n.name for n in lab.control_planes + lab.workers}


def test_kube_system_pods_run(lab: Lab) -> None:
    def not_running() -> list[str]:
        pods = kube.kubectl_json(lab, ["get", "pods", "-n", "kube-system"])["items"]
        return [
            p["metadata"]["name"]
            for p in pods
            if p["status"]["phase"] != "Running"
            or not all(c.get("ready") for c in p["status"].get("containerStatuses", []))
        ]

    assert eventually(lambda: not not_running()), f"not running: {not_running()}"


def test_every_api_server_answers_directly_and_through_the_vip(lab: Lab) -> None:
    first = lab.control_planes[0]
    for cp in lab.control_planes:
        status, output = on(lab, first, f"curl -sk https://{cp.address}:6443/readyz")
        assert (status, output) == (0, "ok"), f"{cp.name}: {output}"
    status, output = on(lab, first, f"curl -sk https://{lab.api_vip}:{lab.api_port}/readyz")
    assert (status, output) == (0, "ok")


def test_every_load_balancer_sees_every_api_server_up(lab: Lab) -> None:
    for cp in lab.control_planes:

        def backends_up(cp: Node = cp) -> dict[str, str]:
            _, stats = on(lab, cp, "echo 'show stat' | sudo socat stdio /run/haproxy/admin.sock")
            rows = [line.split(",") for line in stats.splitlines() if line.startswith("apiserver,")]
            return {row[1]: row[17] for row in rows if row[1] not in ("FRONTEND", "BACKEND")}

        assert eventually(lambda b=backends_up: set(b().values()) == {"UP"}, timeout_s=60), (
            f"{cp.name}: {backends_up()}"
        )
        assert set(backends_up()) == {n.name for n in lab.control_planes}


def test_vip_is_held_by_exactly_one_control_plane(lab: Lab) -> None:
    holders = [
        cp.name for cp in lab.control_planes if on(lab, cp, kube.holds_vip_command(lab))[0] == 0
    ]
    assert len(holders) == 1, holders


@pytest.mark.parametrize("component", ["kube-scheduler", "kube-controller-manager"])
def test_one_leader_per_component(lab: Lab, component: str) -> None:
    lease = kube.kubectl_json(lab, ["get", "lease", "-n", "kube-system", component])
    holder = lease["spec"]["holderIdentity"]
    assert holder.split("_")[0] in {cp.name for cp in lab.control_planes}


def test_etcd_members_are_healthy_where_the_topology_puts_them(lab: Lab) -> None:
    client = lab.etcd_members[0]
    etcdctl = ETCDCTL[lab.etcd_topology]
    endpoints = ",".join(f"https://{n.address}:2379" for n in lab.etcd_members)
    status, output = on(lab, client, f"{etcdctl} --endpoints {endpoints} member list -w json")
    assert status == 0, output
    members = json.loads(output)["members"]
    assert sorted(m["name"] for m in members) == sorted(n.name for n in lab.etcd_members)
    status, output = on(lab, client, f"{etcdctl} --endpoints {endpoints} endpoint health -w json")
    assert status == 0, output
    assert all(e["health"] for e in json.loads(output))
    status, output = on(lab, client, f"{etcdctl} --endpoints {endpoints} endpoint status -w json")
    assert status == 0, output
    leaders = {e["Status"]["leader"] for e in json.loads(output)}
    assert len(leaders) == 1, output


def test_api_servers_use_the_etcd_of_the_topology(lab: Lab) -> None:
    expected = (
        {"https://127.0.0.1:2379"}
        if lab.etcd_topology == "stacked"
        else {f"https://{n.address}:2379" for n in lab.etcd_members}
    )
    for cp in lab.control_planes:
        status, manifest = on(lab, cp, "sudo cat /etc/kubernetes/manifests/kube-apiserver.yaml")
        assert status == 0, manifest
        flag = next(w for w in manifest.split() if w.startswith("--etcd-servers="))
        assert set(flag.removeprefix("--etcd-servers=").split(",")) == expected, cp.name
        runs_etcd = on(lab, cp, "sudo test -e /etc/kubernetes/manifests/etcd.yaml")[0] == 0
        assert runs_etcd == (lab.etcd_topology == "stacked"), cp.name


WORKLOAD = """
apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: echo, namespace: {ns}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: echo}}}}
  template:
    metadata: {{labels: {{app: echo}}}}
    spec:
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: DoNotSchedule
          nodeTaintsPolicy: Honor
          labelSelector: {{matchLabels: {{app: echo}}}}
      containers:
        - name: echo
          image: {image}
          imagePullPolicy: Never
          # Answers each connection with the address it came from: no NAT between Pods.
          command: [perl, -MIO::Socket::INET, -e,
            '$s = IO::Socket::INET->new(LocalPort => 8080, Listen => 16, ReuseAddr => 1)
             or die $!; while ($c = $s->accept) {{ print $c $c->peerhost, "\\n"; close $c }}']
"""


def test_pods_across_workers_reach_each_other_without_nat(lab: Lab) -> None:
    # Any bundle image with perl and bash will do; flannel's is on every node whatever the CNI.
    image = next(
        a.name
        for a in bundle_store.load(lab.kubernetes_version).artifacts
        if a.kind == "image" and "/flannel:" in a.name
    )
    replicas = 2 * len(lab.workers)
    manifest = WORKLOAD.format(ns=NAMESPACE, replicas=replicas, image=image)
    kube.kubectl(
        lab, ["delete", "namespace", NAMESPACE, "--ignore-not-found", "--timeout=120s"], timeout=150
    )
    kube.apply(lab, manifest)
    try:
        status, output = kube.kubectl(
            lab,
            ["-n", NAMESPACE, "rollout", "status", "deploy/echo", "--timeout=180s"],
            timeout=200,
        )
        assert status == 0, output
        pods = kube.kubectl_json(lab, ["get", "pods", "-n", NAMESPACE])["items"]
        assert {p["spec"]["nodeName"] for p in pods} == {w.name for w in lab.workers}
        for client in pods:
            for server in pods:
                if client is server:
                    continue
                status, seen = kube.kubectl(
                    lab,
                    [
                        "-n",
                        NAMESPACE,
                        "exec",
                        client["metadata"]["name"],
                        "--",
                        "bash",
                        "-c",
                        f"exec 3<>/dev/tcp/{server['status']['podIP']}/8080; cat <&3",
                    ],
                )
                assert status == 0, seen
                assert seen.strip() == client["status"]["podIP"]
    finally:
        kube.kubectl(lab, ["delete", "namespace", NAMESPACE, "--wait=false"])


def test_second_provision_changes_nothing(lab: Lab) -> None:
    report = provision(lab)
    assert report.idempotent, f"changed per host: {report.changed}"
    assert report.hosts == {n.name for n in lab.nodes}
