"""End to end, on a lab whose cloud_provider is k8slab (`single`): the lab's
cloud-controller-manager initialised every Node as the spec says (the verify group), taints
a host that is powered off and lets it go when it is back, and deletes the Node of a host
the spec no longer has; with the host back in the spec, its kubelet registers it again and
the manager initialises it. A lab without a cloud skips them.

    K8SLAB_E2E_LABS=single pytest tests/e2e/test_cloud_provider.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from toolkit import kube
from toolkit.drills.lab_ops import start_host, stop_host
from toolkit.hosts import remote
from toolkit.lab.spec import Lab, Node, load_lab
from toolkit.poll import wait_until
from toolkit.provision.run import provision
from toolkit.verify import cloud, run_verify
from toolkit.verify.report import render_table

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# The node controller marks a silent node NotReady after its grace period (50 s); the
# lifecycle controller looks every 5 s.
NOT_READY_S = 180
BACK_S = 420


@pytest.fixture(scope="module")
def cloud_lab(provisioned_lab: Lab) -> Lab:
    if provisioned_lab.cloud_provider == "none":
        pytest.skip(f"{provisioned_lab.name} has no cloud-controller-manager")
    return provisioned_lab


def node_object(lab: Lab, node: Node) -> dict[str, Any] | None:
    status, output = kube.kubectl(lab, ["get", "node", node.name, "-o", "json"])
    return dict(json.loads(output)) if status == 0 else None


def taints(lab: Lab, node: Node) -> set[str]:
    obj = node_object(lab, node) or {}
    return {t["key"] for t in obj.get("spec", {}).get("taints") or []}


def back_and_initialised(lab: Lab, node: Node) -> bool:
    obj = node_object(lab, node)
    return (
        obj is not None
        and kube.is_ready(obj)
        and not cloud.initialised_problems(lab, node, obj)
        and not cloud.topology_problems(lab, node, obj)
    )


def test_every_node_is_the_spec_s_in_the_cloud(cloud_lab: Lab) -> None:
    report = run_verify(cloud_lab, only=["cloud-provider"])
    assert report.passed, render_table(report.results)
    kube_nodes = len(cloud_lab.control_planes + cloud_lab.workers)
    # Four checks per node; the manager running and its lease; /healthz per control plane.
    assert len(report.results) == 4 * kube_nodes + 2 + len(cloud_lab.control_planes)


@pytest.mark.destructive
def test_a_host_powered_off_is_tainted_shutdown_and_untainted_once_back(cloud_lab: Lab) -> None:
    worker = cloud_lab.workers[-1]
    stop_host(cloud_lab, worker)
    try:
        wait_until(
            lambda: cloud.SHUTDOWN_TAINT in taints(cloud_lab, worker),
            timeout_s=NOT_READY_S,
            what=f"{worker.name} tainted {cloud.SHUTDOWN_TAINT}",
        )
    finally:
        start_host(cloud_lab, worker)
    wait_until(
        lambda: back_and_initialised(cloud_lab, worker),
        timeout_s=BACK_S,
        what=f"{worker.name} Ready, without the shutdown taint",
    )


def without(lab: Lab, node: Node, folder: Path) -> Lab:
    """The lab's spec without ``node``, as a file of the same lab (its folder's name). It
    drives the control-plane phase only (the cloud's config): a lab left without workers
    drops its add-ons too, which a spec refuses without a worker to run them."""
    data = yaml.safe_load(lab.source.read_text(encoding="utf-8"))
    for group in data["nodes"].values():
        group[:] = [entry for entry in group if entry["name"] != node.name]
    if not data["nodes"].get("workers"):
        data.pop("addons", None)
    path = folder / lab.name / "lab.yml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_lab(path)


@pytest.mark.destructive
def test_a_host_the_spec_drops_loses_its_node_and_gets_it_back(
    cloud_lab: Lab, tmp_path: Path
) -> None:
    worker = cloud_lab.workers[-1]
    smaller = without(cloud_lab, worker, tmp_path)
    stop_host(cloud_lab, worker)
    try:
        # The control-plane phase applies the cloud config of the spec it is given.
        provision(smaller, ["control-plane"])
        wait_until(
            lambda: node_object(cloud_lab, worker) is None,
            timeout_s=NOT_READY_S,
            what=f"the Node {worker.name} deleted by the cloud's lifecycle controller",
        )
    finally:
        start_host(cloud_lab, worker)
        provision(cloud_lab, ["control-plane"])
    # A kubelet registers its Node when it starts; the manager then initialises it.
    remote.root(cloud_lab, worker, "systemctl restart kubelet")
    wait_until(
        lambda: back_and_initialised(cloud_lab, worker),
        timeout_s=BACK_S,
        what=f"{worker.name} registered again, Ready and initialised by the cloud",
    )
    report = run_verify(cloud_lab, only=["cloud-provider"])
    assert report.passed, render_table(report.results)
