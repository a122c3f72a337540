"""Nodes: kubelet, container runtime (both CRI services), kube-proxy, CNI, DNS add-on.

What each check asserts and shows; how a node's files and listings are read is
toolkit.verify.node_runtime's (pure, unit-tested)."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from toolkit.constants import CRI_RUNTIMES
from toolkit.kube import ready_pod_nodes
from toolkit.lab.spec import Lab, Node
from toolkit.verify import node_runtime
from toolkit.verify.checks import RecordProperty, asked_again, expect, fail, registered
from toolkit.verify.cluster import Cluster, eventually
from toolkit.verify.ranges import contained_commands
from toolkit.verify.report import NOTE_PROPERTY
from toolkit.verify.workload import (
    LIFECYCLE_GREETING,
    NAMESPACE,
    Workload,
    describe_pods,
    lifecycle_pod,
)


def prefetch(lab: Lab, node: Node) -> list[str]:
    """The read-only commands this suite runs on a node (run ahead, all nodes at once)."""
    if node not in lab.control_planes + lab.workers:
        return []
    cri = node_runtime.crictl(CRI_RUNTIMES[node.container_runtime].endpoint)
    return [
        "systemctl is-active kubelet",
        node_runtime.KUBELET_HEALTHZ,
        f"cat {node_runtime.KUBELET_CONFIG}",
        f"cat {node_runtime.KUBEADM_FLAGS}",
        node_runtime.KUBELET_ANONYMOUS,
        node_runtime.UNIX_SOCKETS,
        f"{cri} images -q",
        f"{cri} version",
        f"{cri} pods -q",
        f"{cri} ps -q",
        f"{cri} pods --state ready -q",
        f"{cri} ps --state running -o json",
        node_runtime.SANDBOX_CONTAINERS[node.container_runtime],
        node_runtime.KUBE_PROXY_RUNNING,
        node_runtime.KUBE_PROXY_MODE,
        node_runtime.KUBE_SERVICES_RULES,
        f"ls {node_runtime.CNI_CONF_DIR}",
        *contained_commands(lab),
    ]


def kubelet_config(cluster: Cluster, node: Node) -> tuple[dict[str, Any], str]:
    run = cluster.run(node, f"cat {node_runtime.KUBELET_CONFIG}")
    return (node_runtime.read_kubelet_config(run.output) if run.ok else {}), run.evidence


def cri_endpoint(cluster: Cluster, node: Node) -> tuple[str, str]:
    """The CRI socket the kubelet is configured for (its config, or kubeadm's flags)."""
    config, evidence = kubelet_config(cluster, node)
    endpoint = str(config.get("containerRuntimeEndpoint") or "")
    if not endpoint:
        flags = cluster.run(node, f"cat {node_runtime.KUBEADM_FLAGS}")
        evidence += "\n" + flags.evidence
        endpoint = node_runtime.endpoint_flag(flags.output)
    return endpoint, evidence


def test_kubelet_active(cluster: Cluster, kube_node: Node) -> None:
    run = cluster.run(kube_node, "systemctl is-active kubelet")
    expect(
        run.stdout.strip() == "active",
        f"kubelet is {run.stdout.strip() or 'unknown'} on {kube_node.name}",
        run.evidence,
        cluster.journal(kube_node, "kubelet"),
    )


def test_kubelet_healthz(cluster: Cluster, kube_node: Node) -> None:
    run = cluster.run(kube_node, node_runtime.KUBELET_HEALTHZ)
    expect(
        run.stdout.strip() == "ok", f"kubelet healthz on {kube_node.name} is not ok", run.evidence
    )


def test_node_ready(nodes_json: dict[str, Any], kube_node: Node) -> None:
    node = registered(nodes_json, kube_node)
    conditions = {c["type"]: c for c in node["status"]["conditions"]}
    ready = conditions.get("Ready", {})
    expect(
        ready.get("status") == "True",
        f"{kube_node.name} is not Ready: {ready.get('reason')}: {ready.get('message')}",
        json.dumps(list(conditions.values()), indent=1),
    )


def test_kubelet_anonymous_auth_off(
    cluster: Cluster, kube_node: Node, record_property: RecordProperty
) -> None:
    config, evidence = kubelet_config(cluster, kube_node)
    anonymous = config.get("authentication", {}).get("anonymous", {}).get("enabled")
    expect(anonymous is False, f"kubelet anonymous auth is {anonymous!r}", evidence)
    # And in fact: an anonymous request to the kubelet's API is refused. No HTTP answer
    # at all (000: refused, or timed out on a loaded machine) says nothing either way:
    # asked again, bounded; any HTTP answer but 401 fails at once.
    runs = asked_again(
        cluster, kube_node, node_runtime.KUBELET_ANONYMOUS, lambda run: run.stdout.strip() != "000"
    )
    code = runs[-1].stdout.strip()
    if code == "401" and len(runs) > 1:
        record_property(
            NOTE_PROPERTY,
            f"401 on attempt {len(runs)}; no answer before\n\n"
            + "\n\n".join(r.evidence for r in runs[:-1]),
        )
    expect(
        code == "401",
        f"anonymous GET /pods got {code}, not 401 ({len(runs)} attempts)",
        *(r.evidence for r in runs),
    )


def test_kubelet_talks_to_configured_cri_socket(cluster: Cluster, kube_node: Node) -> None:
    endpoint, evidence = cri_endpoint(cluster, kube_node)
    expect(endpoint.startswith("unix://"), f"no CRI endpoint configured ({endpoint!r})", evidence)
    path = endpoint.removeprefix("unix://")
    # The runtime's listening socket and the kubelet's connections, matched by inode.
    run = cluster.run(kube_node, node_runtime.UNIX_SOCKETS)
    expect(
        node_runtime.kubelet_connected_to(run.stdout, path),
        f"the kubelet on {kube_node.name} has no connection to {path}",
        evidence,
        run.evidence,
    )


def test_cri_image_service(cluster: Cluster, kube_node: Node) -> None:
    endpoint, _ = cri_endpoint(cluster, kube_node)
    run = cluster.run(kube_node, f"{node_runtime.crictl(endpoint)} images -q")
    expect(run.ok and run.stdout.strip(), "the CRI ImageService gave no images", run.evidence)


def test_cri_runtime_service(cluster: Cluster, kube_node: Node) -> None:
    endpoint, _ = cri_endpoint(cluster, kube_node)
    version = cluster.run(kube_node, f"{node_runtime.crictl(endpoint)} version")
    name, runtime_version = node_runtime.runtime_identity(version.stdout)
    # Each runtime names itself as the spec does: containerd, and docker (cri-dockerd).
    expect(
        version.ok and name == kube_node.container_runtime and runtime_version,
        f"the CRI on {kube_node.name} says it is {name or 'nothing'!r}, "
        f"not the spec's {kube_node.container_runtime!r} with a version",
        version.evidence,
    )
    pods = cluster.run(kube_node, f"{node_runtime.crictl(endpoint)} pods -q")
    containers = cluster.run(kube_node, f"{node_runtime.crictl(endpoint)} ps -q")
    expect(
        pods.ok and containers.ok and pods.stdout.strip() and containers.stdout.strip(),
        "the CRI RuntimeService listed no Pod sandboxes or no containers",
        pods.evidence,
        containers.evidence,
    )


def test_every_pod_has_a_pause_sandbox(cluster: Cluster, kube_node: Node) -> None:
    endpoint, _ = cri_endpoint(cluster, kube_node)
    ready = cluster.run(kube_node, f"{node_runtime.crictl(endpoint)} pods --state ready -q")
    running = cluster.run(kube_node, f"{node_runtime.crictl(endpoint)} ps --state running -o json")
    sandboxes_listing = cluster.run(
        kube_node, node_runtime.SANDBOX_CONTAINERS[kube_node.container_runtime]
    )
    expect(
        ready.ok and running.ok and sandboxes_listing.ok,
        "cannot list sandboxes",
        ready.evidence,
        sandboxes_listing.evidence,
    )
    found = node_runtime.sandboxes(ready.stdout, sandboxes_listing.stdout, running.stdout)
    expect(
        found.ready and not found.without_pause and not found.orphans,
        f"{kube_node.name}: sandboxes without a pause container {sorted(found.without_pause)}; "
        f"running containers without a ready sandbox {sorted(found.orphans)}",
        ready.evidence,
        sandboxes_listing.evidence,
    )


def test_kube_proxy_running_and_mode(cluster: Cluster, kube_node: Node) -> None:
    run = cluster.run(kube_node, node_runtime.KUBE_PROXY_RUNNING)
    expect(run.stdout.strip(), f"kube-proxy is not running on {kube_node.name}", run.evidence)
    mode = cluster.run(kube_node, node_runtime.KUBE_PROXY_MODE)
    expect(
        mode.ok and mode.stdout.strip() in ("iptables", "ipvs", "nftables"),
        f"kube-proxy on {kube_node.name} reports no mode",
        mode.evidence,
    )


def test_kube_proxy_service_rules(
    cluster: Cluster, cluster_ips: dict[str, str], kube_node: Node
) -> None:
    address = cluster_ips["default/kubernetes"]
    mode = cluster.run(kube_node, node_runtime.KUBE_PROXY_MODE)
    if mode.stdout.strip() == "ipvs":
        run = cluster.run(kube_node, "ipvsadm -Ln")
    else:
        run = cluster.run(kube_node, node_runtime.KUBE_SERVICES_RULES)
    expect(
        run.ok and f"{address}" in run.stdout,
        f"no rules for the kubernetes Service ({address}) on {kube_node.name}",
        run.evidence,
    )


def test_cni_configuration_and_plugins(cluster: Cluster, kube_node: Node) -> None:
    listing = cluster.run(kube_node, f"ls {node_runtime.CNI_CONF_DIR}")
    files = node_runtime.cni_configurations(listing.stdout)
    expect(
        files,
        f"no CNI configuration in {node_runtime.CNI_CONF_DIR} on {kube_node.name}",
        listing.evidence,
    )
    # The runtime uses the first configuration in lexical order.
    run = cluster.run(kube_node, f"cat {node_runtime.CNI_CONF_DIR}/{files[0]}")
    try:
        conf = json.loads(run.stdout)
    except json.JSONDecodeError:
        fail(f"{files[0]} is not JSON", run.evidence)
    types = node_runtime.cni_plugin_types(conf)
    present = cluster.run(kube_node, node_runtime.missing_plugins_command(types))
    missing = present.stdout.split()
    expect(
        types and not missing,
        f"{files[0]} names plugins {types}; missing from {node_runtime.CNI_BIN_DIR}: {missing}",
        run.evidence,
    )


def test_cluster_ranges_stay_on_the_node(cluster: Cluster, lab: Lab, kube_node: Node) -> None:
    route_command, drop_command = contained_commands(lab)
    route = cluster.run(kube_node, route_command)
    drop = cluster.run(kube_node, drop_command)
    expect(
        not route.ok and ("unreachable" in route.output or "No route" in route.output),
        f"{kube_node.name} routes Pod addresses no node claims off the node (by its default "
        "route) instead of refusing them",
        route.evidence,
    )
    expect(
        drop.ok,
        f"{kube_node.name} lets packets still addressed into the Service range "
        f"{lab.network.service_cidr} leave by its default route",
        drop.evidence,
    )


def test_pod_range_assigned_and_disjoint(
    lab: Lab, nodes_json: dict[str, Any], kube_node: Node
) -> None:
    node = registered(nodes_json, kube_node)
    cidr = node["spec"].get("podCIDR")
    expect(cidr, f"{kube_node.name} has no Pod range")
    mine = ipaddress.IPv4Network(cidr)
    overlapping = [
        name
        for name, other in nodes_json.items()
        if name != kube_node.name
        and other["spec"].get("podCIDR")
        and ipaddress.ip_network(other["spec"]["podCIDR"]).overlaps(mine)
    ]
    expect(
        mine.subnet_of(lab.network.pod_cidr) and not overlapping,
        f"{kube_node.name}'s Pod range {mine} "
        + (f"overlaps {overlapping}" if overlapping else f"is outside {lab.network.pod_cidr}"),
    )


def test_coredns_ready(cluster: Cluster) -> None:
    deployment = cluster.kubectl_json("get", "deployment", "-n", "kube-system", "coredns")
    wanted = deployment["spec"].get("replicas", 0)
    ready = deployment["status"].get("readyReplicas", 0)
    expect(
        wanted > 0 and ready == wanted,
        f"CoreDNS: {ready} of {wanted} replicas ready",
        json.dumps(deployment["status"], indent=1),
    )


def test_coredns_replicas_on_different_nodes(lab: Lab, cluster: Cluster) -> None:
    """CoreDNS's ready replicas run on at least two nodes: one node lost leaves the cluster
    a resolver (a single-node lab has nowhere else to put one)."""
    if len(cluster.kube_nodes) < 2:
        pytest.skip("one node: CoreDNS has nowhere else to run")
    pods = cluster.kubectl_json("get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns")
    on = ready_pod_nodes(pods)
    expect(
        len(set(on.values())) >= 2,
        f"CoreDNS's ready replicas run on {sorted(set(on.values())) or 'no node'}; expected "
        "two nodes at least, so that losing one leaves a resolver",
        "\n".join(f"{name} on {node}" for name, node in sorted(on.items())) or "(no ready replica)",
    )


# After its deletion, how long the runtime may take to stop the Pod's sandbox and containers.
SANDBOX_GONE_TIMEOUT_S = 45


def test_pod_runs_logs_execs_and_is_deleted(
    cluster: Cluster, workload: Workload, kube_node: Node
) -> None:
    """A Pod on this node, through whichever runtime the node has: it runs, its log and an
    exec answer, and once deleted the runtime keeps nothing of it running."""
    name = lifecycle_pod(kube_node.name)
    ready, pods = workload.wait_pods_ready([name])
    expect(ready, f"{name} is not Ready on {kube_node.name}", describe_pods(pods))
    logs = cluster.kubectl("logs", "-n", NAMESPACE, name)
    expect(
        logs.ok and f"{LIFECYCLE_GREETING} {kube_node.name}" in logs.stdout,
        f"the log of {name} lacks its greeting",
        logs.evidence,
    )
    exec_run = cluster.kubectl("exec", "-n", NAMESPACE, name, "--", "sh", "-c", 'echo "$NODE"')
    expect(
        exec_run.ok and exec_run.stdout.strip() == kube_node.name,
        f"exec in {name} did not answer with its node's name",
        exec_run.evidence,
    )
    deleted = cluster.kubectl("delete", "pod", "-n", NAMESPACE, name, "--wait", "--timeout=60s")
    expect(deleted.ok, f"{name} was not deleted", deleted.evidence)
    endpoint, _ = cri_endpoint(cluster, kube_node)
    left = node_runtime.pod_left_command(endpoint, name)
    gone, run = eventually(
        lambda: cluster.run(kube_node, left, fresh=True),
        lambda run: run.ok and not run.stdout.strip(),
        SANDBOX_GONE_TIMEOUT_S,
    )
    expect(
        gone,
        f"{kube_node.name}'s runtime still runs {name}'s containers or sandbox "
        f"{SANDBOX_GONE_TIMEOUT_S}s after its deletion",
        run.evidence,
    )
