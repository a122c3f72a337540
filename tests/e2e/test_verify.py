"""End to end: every verification check passes on a freshly provisioned lab, through the
library and through `k8slab verify`; its reports land in the lab's state directory."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from toolkit import kube
from toolkit.cli import main
from toolkit.lab.addons import NAMES as ADDON_NAMES
from toolkit.lab.spec import Lab
from toolkit.progress import Progress
from toolkit.verify import policy, run_verify
from toolkit.verify.addons import LOG_NAMESPACE
from toolkit.verify.report import render_table
from toolkit.verify.run import groups_of
from toolkit.verify.workload import NAMESPACE, PEER_NAMESPACE, SSD_LABEL, TAINT_KEY

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_every_check_passes_on_a_fresh_lab(provisioned_lab: Lab) -> None:
    report = run_verify(provisioned_lab, progress=Progress())
    table = render_table(report.results)
    assert report.passed, table
    assert {r.group for r in report.results} == set(groups_of(provisioned_lab))
    skipped = {
        f"{r.group}/{r.check}[{r.host}]": r.evidence
        for r in report.results
        if r.outcome == "skipped"
    }
    # Only what the lab cannot have may be skipped, each with its reason: SCTP where the
    # kernel lacks it, the VIP's failover where there is one control plane, etcd's peer
    # links where there is one member, and every LoadBalancer check where the spec
    # declares no pool.
    allowed = {"network/service_forwarding[sctp]": "SCTP"}
    if len(provisioned_lab.control_planes) < 2:
        allowed["control-plane-ha/api_through_vip_survives_one_apiserver_stopped[-]"] = (
            "one control plane"
        )
    if len(provisioned_lab.etcd_members) < 2:
        for member in provisioned_lab.etcd_members:
            allowed[f"etcd/peers_connected[{member.name}]"] = "one etcd member"
    if provisioned_lab.load_balancer is None:
        allowed |= {
            f"{r.group}/{r.check}[{r.host}]": "declares no load_balancer.pool"
            for r in report.results
            if r.group == "load-balancer"
        }
    # The add-ons' checks of an add-on the lab does not ask for.
    missing = [a for a in ADDON_NAMES if a not in provisioned_lab.addons]
    for check, evidence in skipped.items():
        if check.startswith("addons/") and any(
            f"does not ask for {a}" in evidence for a in missing
        ):
            allowed[check] = "does not ask for"
    # Where nothing enforces NetworkPolicy (no network_policy in the spec), its group is.
    if provisioned_lab.policy_agent is None:
        allowed |= {c: "enforces NetworkPolicy" for c in skipped if c.startswith("network-policy/")}
    else:
        assert any(r.group == "network-policy" and r.outcome == "passed" for r in report.results)
    assert set(skipped) <= set(allowed), table
    assert all(allowed[check] in evidence for check, evidence in skipped.items()), table
    xml = ET.parse(report.junit_xml).getroot()
    assert sum(int(s.get("tests", 0)) for s in xml.iter("testsuite")) == len(report.results)
    assert report.markdown.read_text(encoding="utf-8").startswith(
        f"# k8slab verify {provisioned_lab.name}"
    )


def test_nothing_verify_created_is_left(provisioned_lab: Lab) -> None:
    status, output = kube.kubectl(provisioned_lab, ["get", "namespaces", "-o", "name"])
    assert status == 0, output
    made = {NAMESPACE, PEER_NAMESPACE, LOG_NAMESPACE, *policy.NAMESPACES}
    left = {f"namespace/{n}" for n in made} & set(output.split())
    # Deleting a namespace takes a moment; it must at least be terminating.
    for namespace in left:
        status, phase = kube.kubectl(
            provisioned_lab, ["get", namespace, "-o", "jsonpath={.status.phase}"]
        )
        assert phase == "Terminating", f"{namespace} is {phase}"
    status, output = kube.kubectl(provisioned_lab, ["get", "nodes", "-o", "json"])
    assert status == 0, output
    for node in json.loads(output)["items"]:
        name = node["metadata"]["name"]
        assert SSD_LABEL[0] not in node["metadata"].get("labels", {}), f"label left on {name}"
        taints = [t["key"] for t in node["spec"].get("taints", [])]
        assert TAINT_KEY not in taints, f"the verify taint was left on {name}"


def test_cli_runs_one_group_and_prints_the_table(provisioned_lab: Lab) -> None:
    result = CliRunner().invoke(
        main, ["verify", str(provisioned_lab.source), "--only", "etcd", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    header = result.output.splitlines()[0].split()
    assert header == ["group", "check", "host", "result", "time"]
    assert "member_healthy" in result.output
    assert "kubelet_active" not in result.output
    assert f"lab {provisioned_lab.name}: PASSED" in result.output


def test_cli_refuses_an_unknown_group(provisioned_lab: Lab) -> None:
    result = CliRunner().invoke(main, ["verify", str(provisioned_lab.source), "--only", "dns"])
    assert result.exit_code == 2
    assert "control-plane" in result.output
