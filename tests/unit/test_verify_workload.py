"""The verify workload's manifests: what each node's runtime is asked to run."""

from __future__ import annotations

import ipaddress

import yaml

from toolkit.lab.model import Node, Role
from toolkit.verify.workload import LIFECYCLE_GREETING, NAMESPACE, Layout, lifecycle_pod, manifests


def test_every_kube_node_gets_a_lifecycle_pod_pinned_to_it_whatever_its_taints() -> None:
    a, b = (
        Node(name, Role.WORKER, ipaddress.IPv4Address(address), 1, 1024, "containerd")
        for name, address in (("w1", "172.30.9.21"), ("w2", "172.30.9.22"))
    )
    layout = Layout(a, b, "registry.k8s.io/kube-proxy:v1.34.4", kube_nodes=("cp1", "w1", "w2"))
    documents = [d for d in yaml.safe_load_all(manifests(layout)) if d]
    pods = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Pod"}
    for node in ("cp1", "w1", "w2"):
        pod = pods[lifecycle_pod(node)]
        assert pod["metadata"]["namespace"] == NAMESPACE
        assert pod["spec"]["nodeName"] == node
        assert pod["spec"]["tolerations"] == [{"operator": "Exists"}]
        container = pod["spec"]["containers"][0]
        assert container["imagePullPolicy"] == "Never"
        assert LIFECYCLE_GREETING in container["command"][-1]
