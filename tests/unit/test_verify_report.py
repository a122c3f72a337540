"""The verify report: JUnit XML written by a real pytest run, parsed back into results,
rendered as a table and as Markdown. No lab needed."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from toolkit.lab.spec import load_lab
from toolkit.verify.checks import static_pod_flags
from toolkit.verify.cluster import Run, VerifyError, read_inventory
from toolkit.verify.report import (
    CheckResult,
    VerifyReport,
    group_name,
    parse_junit,
    render_markdown,
    render_table,
)
from toolkit.verify.run import GROUPS, SUITES_DIR, groups_of, pytest_args, select_groups

DEMO_SUITE = """
import pytest

from toolkit.verify.checks import expect


@pytest.mark.parametrize("host", ["cp1", "w1"])
def test_kubelet_active(host):
    evidence = "w1$ systemctl is-active kubelet\\n(exit 3)\\ninactive"
    expect(host != "w1", f"kubelet is inactive on {host}", evidence)


def test_sctp():
    pytest.skip("the kernel offers no SCTP")


@pytest.fixture
def broken():
    raise RuntimeError("fixture exploded")


def test_uses_broken(broken):
    pass


def test_livez(record_property):
    record_property("k8slab_note", "ok on attempt 2 of 3; before that:\\n[-]etcd failed")
"""


@pytest.fixture(scope="module")
def junit_xml(tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp_path = tmp_path_factory.mktemp("suite")
    suite = tmp_path / "check_nodes.py"
    suite.write_text(textwrap.dedent(DEMO_SUITE), encoding="utf-8")
    xml = tmp_path / "report.xml"
    pytest.main(pytest_args(["nodes"], xml, "demo", suites_dir=tmp_path))
    return xml.read_text(encoding="utf-8")


def test_parse_junit_gives_one_result_per_check_and_host(junit_xml: str) -> None:
    results = parse_junit(junit_xml)
    assert [(r.group, r.check, r.host, r.outcome) for r in results] == [
        ("nodes", "kubelet_active", "cp1", "passed"),
        ("nodes", "kubelet_active", "w1", "failed"),
        ("nodes", "sctp", "-", "skipped"),
        ("nodes", "uses_broken", "-", "error"),
        ("nodes", "livez", "-", "passed"),
    ]
    failed, skipped, error, retried = results[1], results[2], results[3], results[4]
    assert results[0].evidence == ""
    assert retried.evidence.endswith("[-]etcd failed"), "a pass after a retry keeps its note"
    assert failed.evidence.startswith("kubelet is inactive on w1")
    assert "systemctl is-active kubelet" in failed.evidence
    assert "Failed:" not in failed.evidence
    assert skipped.evidence.endswith("the kernel offers no SCTP")
    assert "fixture exploded" in error.evidence
    assert all(r.seconds >= 0 for r in results)


def report_of(results: list[CheckResult], tmp_path: Path) -> VerifyReport:
    return VerifyReport(
        lab="demo",
        groups=("nodes",),
        started="2026-11-25T23:00:00+00:00",
        seconds=12.5,
        results=tuple(results),
        junit_xml=tmp_path / "verify.xml",
        markdown=tmp_path / "verify.md",
    )


def test_report_passes_only_when_no_check_failed(junit_xml: str, tmp_path: Path) -> None:
    results = parse_junit(junit_xml)
    assert not report_of(results, tmp_path).passed
    assert report_of([r for r in results if r.outcome in ("passed", "skipped")], tmp_path).passed
    assert not report_of([], tmp_path).passed, "a run without checks proves nothing"
    counts = report_of(results, tmp_path).counts()
    assert counts == {"passed": 2, "failed": 1, "error": 1, "skipped": 1}


def test_table_lists_every_check_and_the_evidence_of_failures(junit_xml: str) -> None:
    table = render_table(parse_junit(junit_xml))
    lines = table.splitlines()
    assert lines[0].split() == ["group", "check", "host", "result", "time"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].split()[:4] == ["nodes", "kubelet_active", "cp1", "PASSED"]
    assert lines[3].split()[:4] == ["nodes", "kubelet_active", "w1", "FAILED"]
    assert "FAILED nodes/kubelet_active [w1]" in table
    assert "    w1$ systemctl is-active kubelet" in table
    assert "SKIPPED nodes/sctp [-]" in table
    assert "PASSED after a retry nodes/livez [-]\n    ok on attempt 2 of 3" in table


def test_markdown_report_has_a_row_per_check_and_evidence(junit_xml: str, tmp_path: Path) -> None:
    markdown = render_markdown(report_of(parse_junit(junit_xml), tmp_path))
    assert markdown.startswith("# k8slab verify demo\n")
    assert "**FAILED** (2 passed, 1 failed, 1 error, 1 skipped)" in markdown
    assert "| nodes | kubelet_active | w1 | **failed** |" in markdown
    assert "| nodes | kubelet_active | cp1 | passed |" in markdown
    assert "### failed: nodes/kubelet_active [w1]" in markdown
    assert "### passed after a retry: nodes/livez [-]" in markdown
    assert markdown.count("```") % 2 == 0


def test_group_names_come_from_suite_modules() -> None:
    assert group_name("check_control_plane") == "control-plane"
    assert group_name("check_control_plane_ha") == "control-plane-ha"
    assert group_name("toolkit.verify.suites.check_etcd") == "etcd"
    assert group_name("something_else") == "something_else"


def test_every_group_is_one_suite_module_and_every_suite_module_a_group() -> None:
    """`--only GROUP` runs check_<group>.py; a suite module no group names never runs."""
    modules = {path.stem for path in SUITES_DIR.glob("check_*.py")}
    assert {f"check_{g.replace('-', '_')}" for g in GROUPS} == modules
    assert [group_name(f"check_{g.replace('-', '_')}") for g in GROUPS] == list(GROUPS)


def test_groups_keep_their_order_and_unknown_ones_are_refused() -> None:
    lab = load_lab("ha-stacked")
    assert select_groups(lab, None)[:2] == ("control-plane", "control-plane-ha")
    assert select_groups(lab, ["network", "etcd"]) == ("etcd", "network")
    with pytest.raises(VerifyError, match=r"unknown verify group.*netwrok.*choose from"):
        select_groups(lab, ["netwrok"])


def test_the_cloud_provider_group_checks_only_a_lab_with_a_cloud() -> None:
    plain, cloudy = load_lab("ha-stacked"), load_lab("single")
    assert "cloud-provider" not in select_groups(plain, None)
    assert groups_of(cloudy) == GROUPS
    assert select_groups(cloudy, None) == GROUPS
    assert select_groups(cloudy, ["cloud-provider"]) == ("cloud-provider",)
    with pytest.raises(VerifyError, match=r"ha-stacked has no cloud-controller-manager"):
        select_groups(plain, ["nodes", "cloud-provider"])


def test_run_evidence_shows_command_exit_and_the_tail_of_output() -> None:
    run = Run("w1", "journalctl -u kubelet", 1, "\n".join(f"line {i}" for i in range(40)))
    evidence = run.evidence
    assert evidence.startswith("w1$ journalctl -u kubelet\n(exit 1)\n... (15 lines before)")
    assert evidence.endswith("line 39")
    assert not run.ok


def test_static_pod_flags() -> None:
    manifest = """
spec:
  containers:
    - command: [kube-apiserver, --etcd-servers=https://127.0.0.1:2379, --allow-privileged=true]
"""
    assert static_pod_flags(manifest) == {
        "etcd-servers": "https://127.0.0.1:2379",
        "allow-privileged": "true",
    }
    assert static_pod_flags("not: [a manifest") == {}


def test_inventory_hosts_with_their_groups(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        textwrap.dedent(
            """
            all:
              children:
                k8s_cluster:
                  children:
                    kube_control_plane:
                      hosts:
                        cp1: {ansible_host: 172.30.2.11, k8slab_node_address: 172.30.2.11}
                    kube_node:
                      hosts:
                        w1: {k8slab_node_address: 172.30.2.21}
                etcd:
                  hosts:
                    cp1: {k8slab_node_address: 172.30.2.11}
            """
        ),
        encoding="utf-8",
    )
    hosts = read_inventory(inventory)
    assert hosts["cp1"].address == "172.30.2.11"
    assert {"kube_control_plane", "k8s_cluster", "etcd", "all"} <= hosts["cp1"].groups
    assert "etcd" not in hosts["w1"].groups
    (tmp_path / "bad.yml").write_text("all: [unclosed", encoding="utf-8")
    with pytest.raises(VerifyError, match=r"bad\.yml: cannot read"):
        read_inventory(tmp_path / "bad.yml")
