"""Fixtures of the verify suites: the lab handed over by run_verify, its hosts as
parameters (one test per host), and the test workload."""

from __future__ import annotations

from typing import Any

import pytest

from toolkit.lab.spec import Lab, Node
from toolkit.verify.cluster import Cluster
from toolkit.verify.run import CONTEXT_KEY, VerifyContext
from toolkit.verify.workload import Workload


def context(config: pytest.Config) -> VerifyContext:
    try:
        return config.stash[CONTEXT_KEY]
    except KeyError:
        raise pytest.UsageError(
            "the verify suites run through toolkit.verify.run_verify (k8slab verify LAB)"
        ) from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    ctx = context(metafunc.config)
    lab = ctx.lab
    hosts: dict[str, list[Node]] = {
        "control_plane": lab.control_planes,
        "kube_node": ctx.cluster.kube_nodes,
        "etcd_member": lab.etcd_members,
        # Hosts on which only the API server (and etcd itself) may talk to etcd's client port.
        "etcd_side": lab.control_planes + lab.etcd_hosts,
    }
    for fixture, nodes in hosts.items():
        if fixture in metafunc.fixturenames:
            metafunc.parametrize(fixture, nodes, ids=[n.name for n in nodes])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Disruptive checks (they stop a component for a while) run after everything else."""
    items.sort(key=lambda item: item.get_closest_marker("disruptive") is not None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "disruptive: stops a component for a while; runs last")


@pytest.fixture(scope="session")
def verify_context(request: pytest.FixtureRequest) -> VerifyContext:
    return context(request.config)


@pytest.fixture(scope="session")
def cluster(verify_context: VerifyContext) -> Cluster:
    return verify_context.cluster


@pytest.fixture(scope="session", autouse=True)
def prefetched(request: pytest.FixtureRequest, verify_context: VerifyContext) -> None:
    """Run the read-only commands of every collected suite ahead: one SSH session per
    node, all nodes in parallel (a suite declares them in its ``prefetch(lab, node)``)."""
    lab = verify_context.lab
    modules = {item.module for item in request.session.items if isinstance(item, pytest.Function)}
    declarations = [m.prefetch for m in modules if hasattr(m, "prefetch")]
    verify_context.cluster.prefetch(
        {
            node.name: [c for declare in declarations for c in declare(lab, node)]
            for node in lab.nodes
        }
    )


@pytest.fixture(scope="session")
def lab(verify_context: VerifyContext) -> Lab:
    return verify_context.lab


@pytest.fixture(scope="session")
def workload(verify_context: VerifyContext) -> Workload:
    if verify_context.workload is None:
        pytest.skip("no test workload in this run")
    return verify_context.workload


@pytest.fixture(scope="session")
def cluster_ips(cluster: Cluster) -> dict[str, str]:
    """Every Service's ClusterIP by namespace/name, read once per run (for the system
    Services) or once the test workload is applied (see the network suite)."""
    services = cluster.kubectl_json("get", "services", "-A")["items"]
    return {
        f"{s['metadata']['namespace']}/{s['metadata']['name']}": s["spec"].get("clusterIP", "")
        for s in services
    }


@pytest.fixture(scope="session")
def nodes_json(cluster: Cluster) -> dict[str, Any]:
    """The cluster's Node objects by name, read once per run."""
    return {n["metadata"]["name"]: n for n in cluster.kubectl_json("get", "nodes")["items"]}
