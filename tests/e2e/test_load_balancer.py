"""End to end: LoadBalancer Services on a lab whose spec declares load_balancer.pool
(shipped: bridge; every test skips on the others). MetalLB runs upstream's manifest from
the bundle's part with only its images changed, its pool is the spec's, the verify group
passes with nothing skipped, and its phase converges. Labs: $K8SLAB_E2E_LABS."""

from __future__ import annotations

import pytest

from toolkit import kube
from toolkit.bundle import metallb, parts
from toolkit.hosts import remote
from toolkit.lab.spec import Lab
from toolkit.progress import Progress
from toolkit.provision.run import provision
from toolkit.verify import run_verify
from toolkit.verify.load_balancer import METALLB_NAMESPACE
from toolkit.verify.report import render_table

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

APPLIED = "/etc/kubernetes/k8slab/metallb/metallb-native.yaml"  # the role's metallb_dir


@pytest.fixture
def lab(provisioned_lab: Lab) -> Lab:
    if provisioned_lab.load_balancer is None:
        pytest.skip(f"lab {provisioned_lab.name} declares no load_balancer.pool")
    return provisioned_lab


def test_metallb_runs_upstream_s_manifest_with_the_bundle_s_images(lab: Lab) -> None:
    folder = parts.part_dir(lab.kubernetes_version, metallb.NAME)
    upstream = (folder / "manifests" / metallb.MANIFEST).read_text(encoding="utf-8")
    expected = upstream
    for theirs, ours in metallb.REDIRECTS.items():
        assert f"image: {theirs}" in upstream
        expected = expected.replace(f"image: {theirs}", f"image: {ours}")
    status, applied = remote.try_root(lab, lab.control_planes[0], f"cat {APPLIED}", 60)
    assert status == 0, applied
    assert applied == expected
    pods = kube.kubectl_json(lab, ["get", "pods", "-n", METALLB_NAMESPACE])["items"]
    images = {c["image"] for p in pods for c in p["spec"]["containers"]}
    assert images == set(metallb.REDIRECTS.values())


def test_metallb_s_pool_is_the_spec_s(lab: Lab) -> None:
    assert lab.load_balancer is not None
    pool = kube.kubectl_json(lab, ["get", "ipaddresspool", "k8slab", "-n", METALLB_NAMESPACE])
    assert pool["spec"]["addresses"] == [str(entry) for entry in lab.load_balancer.pool]
    advertisement = kube.kubectl_json(
        lab, ["get", "l2advertisement", "k8slab", "-n", METALLB_NAMESPACE]
    )
    assert advertisement["spec"]["ipAddressPools"] == ["k8slab"]


def test_the_load_balancer_group_passes_with_nothing_skipped(lab: Lab) -> None:
    report = run_verify(lab, ["load-balancer"], progress=Progress())
    table = render_table(report.results)
    assert report.passed, table
    assert {r.outcome for r in report.results} == {"passed"}, table
    speakers = {r.host for r in report.results if r.check == "speaker_ready"}
    assert speakers == {n.name for n in lab.control_planes + lab.workers}, table


def test_the_metallb_phase_again_changes_nothing(lab: Lab) -> None:
    report = provision(lab, ["metallb"])
    assert report.idempotent, f"changed per host: {report.changed}"
