"""``k8slab upgrade`` without hosts: its plan, kubeadm's skew policy, the journal and a run
cut short going on from where it was, the spec edited in place, the disruption figures.
The cluster and hosts are fakes that record what would run; the real lab run is
tests/e2e/test_upgrade.py."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from toolkit import kube, versions
from toolkit.bundle import store
from toolkit.cli import main
from toolkit.drills import probes
from toolkit.errors import BundleError, SpecError
from toolkit.lab.edit import record_kubernetes_version, with_kubernetes_version
from toolkit.lab.spec import Lab, Node, load_lab
from toolkit.progress import SILENT
from toolkit.upgrade import actions, disruption, journal, run
from toolkit.upgrade.disruption import Figures
from toolkit.upgrade.journal import Journal
from toolkit.upgrade.plan import PlannedStep, UpgradeError, check_versions, plan_steps
from toolkit.upgrade.steps import run_steps

OLD, NEW = versions.release("v1.34.4"), versions.release("v1.35.4")
STAMP = "20261128T220000Z"


def names(steps: list[PlannedStep]) -> list[str]:
    return [step.name for step in steps]


# --- the plan -------------------------------------------------------------------------------


def test_stacked_plan_is_kubeadms_order_one_node_at_a_time() -> None:
    steps = plan_steps(load_lab("ha-stacked"), OLD, NEW)
    node = ["kubeadm", "{upgrade}", "drain", "kubelet", "uncordon"]

    def of(name: str, upgrade: str) -> list[str]:
        return [f"{name}:{action.format(upgrade=upgrade)}" for action in node]

    assert names(steps) == [
        "plan",
        "prepare",
        *of("cp1", "apply"),
        *of("cp2", "upgrade-node"),
        *of("cp3", "upgrade-node"),
        *of("w1", "upgrade-node"),
        *of("w2", "upgrade-node"),
        "spec",
        "converged",
    ]
    assert {step.stage for step in steps if step.node and step.node.name == "cp2"} == {
        "control-plane cp2"
    }


def test_external_etcd_members_go_first_one_at_a_time_when_etcd_changes() -> None:
    steps = names(plan_steps(load_lab("ha-external"), OLD, NEW))
    assert steps[2:5] == ["etcd1:etcd", "etcd2:etcd", "etcd3:etcd"]
    assert steps[5] == "cp1:kubeadm"


def test_external_etcd_is_left_alone_when_the_target_bundle_has_the_same_etcd() -> None:
    same = dataclasses.replace(NEW, etcd=OLD.etcd)
    assert not [s for s in names(plan_steps(load_lab("ha-external"), OLD, same)) if ":etcd" in s]


# --- kubeadm's skew policy -----------------------------------------------------------------------


def test_one_minor_up_and_patches_are_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_versions("v1.34.4", "v1.35.4") is NEW
    monkeypatch.setitem(versions.RELEASES, "v1.34.9", dataclasses.replace(OLD, version="v1.34.9"))
    assert check_versions("v1.34.4", "v1.34.9").version == "v1.34.9"


def test_a_skipped_minor_is_refused_naming_the_step_between(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(versions.RELEASES, "v1.36.1", dataclasses.replace(NEW, version="v1.36.1"))
    with pytest.raises(UpgradeError, match=r"skips a minor version.*upgrade to the newest v1\.35"):
        check_versions("v1.34.4", "v1.36.1")


def test_a_downgrade_is_refused() -> None:
    with pytest.raises(UpgradeError, match=r"v1.34.4 would be a downgrade"):
        check_versions("v1.35.4", "v1.34.4")


def test_a_version_the_toolkit_cannot_supply_is_refused_with_the_ones_it_can() -> None:
    with pytest.raises(UpgradeError, match=r"use one of: v1.34.4, v1.35.4"):
        check_versions("v1.34.4", "v1.35.9")


# --- the journal ---------------------------------------------------------------------------------


@pytest.fixture
def lab(isolated_state: Path) -> Lab:
    return load_lab("ha-stacked")


def new_journal(lab: Lab) -> Journal:
    record = Journal(lab.name, "v1.34.4", "v1.35.4", STAMP, names(plan_steps(lab, OLD, NEW)))
    record.save()
    return record


def test_the_journal_is_private_and_reads_back(lab: Lab) -> None:
    record = new_journal(lab)
    record.begin("cp1:kubeadm")
    record.finish("cp1:kubeadm", 3.25)
    assert stat.S_IMODE(os.stat(record.path).st_mode) == 0o600
    again = journal.load(lab.name)
    assert (
        again is not None
        and again.done == ["cp1:kubeadm"]
        and again.seconds == {"cp1:kubeadm": 3.2}
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("lab", "other", "lab 'other' is not 'ha-stacked'"),
        ("to_version", "latest", "to_version 'latest' is not a version"),
        ("done", ["cp9:kubeadm"], "done must list steps of the plan"),
        ("step", "rm -rf /", "steps must be a list of step names"),
        ("state", "half", "state 'half' is not one of"),
    ],
)
def test_a_tampered_journal_is_refused(lab: Lab, field: str, value: Any, message: str) -> None:
    record = new_journal(lab)
    data = json.loads(record.path.read_text())
    data[field] = value
    if field == "step":
        data["steps"].append(value)
    record.path.write_text(json.dumps(data))
    with pytest.raises(UpgradeError, match=message):
        journal.load(lab.name)


# --- a run cut short goes on from where it was ---------------------------------------------------


class FakeProbes:
    """Each stage's probes see 10 requests, one of them failed, with a 1.5 s gap."""

    def __init__(self, leftover: dict[str, Figures] | None = None) -> None:
        self.leftover = leftover or {}
        self.started: list[str] = []

    def start(self, node: Node | None) -> tuple[str, dict[str, Figures]]:
        self.started.append(node.name if node else "-")
        return "w2", self.leftover

    def stop(self) -> dict[str, Figures]:
        return {"api": Figures(10, 1, 1.5), "service": Figures(10, 0, 0.5)}


def test_a_failed_step_is_journaled_and_the_next_run_starts_there(lab: Lab) -> None:
    steps = plan_steps(lab, OLD, NEW)
    record = new_journal(lab)
    ran: list[str] = []

    def failing(step: PlannedStep) -> None:
        ran.append(step.name)
        if step.name == "cp2:upgrade-node":
            raise kube.ClusterError("kubeadm upgrade node exited 1")

    with pytest.raises(UpgradeError, match=r"(?s)failed in step cp2:upgrade-node.*`again`"):
        run_steps(record, steps, failing, FakeProbes(), SILENT, "again")
    stored = journal.load(lab.name)
    assert stored is not None and stored.state == "failed" and stored.step == "cp2:upgrade-node"
    assert "cp2:kubeadm" in stored.done and "cp2:upgrade-node" not in stored.done

    # The next run: the step that failed runs again, nothing before it does.
    again: list[str] = []
    leftover = {"api": Figures(4, 2, 3.0)}
    probes_again = FakeProbes(leftover)
    run_steps(stored, steps, lambda step: again.append(step.name), probes_again, SILENT, "again")
    assert again[0] == "cp2:upgrade-node" and again == names(steps)[names(steps).index(again[0]) :]
    assert not set(again) & set(ran[:-1])
    # What the cut-short stage measured before and after the resume adds up.
    cp2 = stored.stages["control-plane cp2"]
    assert cp2["api"] == {"requests": 24, "failed": 4, "longest_gap_s": 3.0}
    assert stored.stages["control-plane cp3"]["api"]["requests"] == 10
    assert probes_again.started[0] == "cp2"


def test_an_interrupt_leaves_the_journal_interrupted(lab: Lab) -> None:
    record = new_journal(lab)

    def interrupted(step: PlannedStep) -> None:
        if step.name == "prepare":
            raise KeyboardInterrupt("SIGTERM")

    with pytest.raises(UpgradeError, match=r"interrupted \(SIGTERM\) in step prepare"):
        run_steps(record, plan_steps(lab, OLD, NEW), interrupted, FakeProbes(), SILENT, "again")
    stored = journal.load(lab.name)
    assert stored is not None and stored.state == "interrupted" and stored.done == ["plan"]


def test_an_unfinished_upgrade_to_another_version_is_refused(lab: Lab) -> None:
    record = new_journal(lab)
    record.close("failed", "boom")
    with pytest.raises(UpgradeError, match=r"an upgrade to v1.35.4 is unfinished"):
        run.upgrade(lab, "v1.34.4")


def test_a_resume_refuses_a_spec_whose_nodes_changed(lab: Lab, tmp_path: Path) -> None:
    record = new_journal(lab)
    record.steps = [s for s in record.steps if not s.startswith("w2:")]
    record.close("interrupted")
    with pytest.raises(UpgradeError, match=r"the spec's nodes changed"):
        run.upgrade(lab, "v1.35.4")


# --- refused before anything changes -------------------------------------------------------------


@pytest.fixture
def cluster_at(monkeypatch: pytest.MonkeyPatch) -> Any:
    def set_versions(control_plane: str, kubelets: str) -> None:
        monkeypatch.setattr(actions, "cluster_version", lambda lab: control_plane)
        monkeypatch.setattr(actions, "kubelet_versions", lambda lab: {"cp1": kubelets})

    return set_versions


def test_an_upgraded_lab_is_left_alone(lab: Lab, tmp_path: Path, cluster_at: Any) -> None:
    cluster_at("v1.35.4", "v1.35.4")
    upgraded = dataclasses.replace(lab, kubernetes_version="v1.35.4")
    assert run.upgrade(upgraded, "v1.35.4").nothing_to_do
    assert journal.load(lab.name) is None


def test_a_spec_that_is_not_what_runs_is_refused(lab: Lab, cluster_at: Any) -> None:
    cluster_at("v1.33.1", "v1.33.1")
    with pytest.raises(UpgradeError, match=r"kubernetes_version is v1.34.4, but the cluster runs"):
        run.upgrade(lab, "v1.35.4")


def test_an_unhealthy_lab_is_refused_with_nothing_changed(
    lab: Lab, cluster_at: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster_at("v1.34.4", "v1.34.4")
    monkeypatch.setattr(run, "check_bundle", lambda lab: None)

    def unhealthy(lab: Lab, timeout_s: float) -> float:
        raise run.DrillError("lab ha-stacked is not healthy (for 60s): node w2 is not Ready")

    monkeypatch.setattr(run, "wait_healthy", unhealthy)
    with pytest.raises(UpgradeError, match=r"nothing was changed: .*node w2 is not Ready"):
        run.upgrade(lab, "v1.35.4")
    assert journal.load(lab.name) is None


def test_a_missing_target_bundle_is_refused_with_its_build_command(
    lab: Lab, cluster_at: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster_at("v1.34.4", "v1.34.4")
    monkeypatch.setattr(store, "is_complete", lambda version: False)
    with pytest.raises(BundleError, match=r"k8slab bundle build --kubernetes v1.35.4"):
        run.upgrade(lab, "v1.35.4")


# --- the spec, edited in place -------------------------------------------------------------------


def test_the_version_is_replaced_and_every_comment_kept() -> None:
    text = "# a lab\nname: x\nkubernetes_version: v1.34.4   # the default\nnodes: {}\n"
    assert with_kubernetes_version(text, "v1.35.4", "x") == text.replace("v1.34.4", "v1.35.4")
    quoted = "kubernetes_version: 'v1.34.4'\n"
    assert with_kubernetes_version(quoted, "v1.35.4", "x") == "kubernetes_version: v1.35.4\n"


def test_a_spec_without_one_version_line_is_refused() -> None:
    with pytest.raises(SpecError, match=r"0 top-level `kubernetes_version:` lines"):
        with_kubernetes_version("name: x\n  kubernetes_version: v1\n", "v1.35.4", "lab.yml")


def test_recording_the_version_rewrites_only_that_line(tmp_path: Path) -> None:
    spec = tmp_path / "ha-stacked" / "lab.yml"
    spec.parent.mkdir()
    original = Path("inventories/ha-stacked/lab.yml").read_text()
    spec.write_text(original)
    upgraded = record_kubernetes_version(load_lab(spec), "v1.35.4")
    assert upgraded.kubernetes_version == "v1.35.4"
    assert spec.read_text() == original.replace(
        "kubernetes_version: v1.34.4", "kubernetes_version: v1.35.4"
    )
    assert [p.name for p in spec.parent.iterdir()] == ["lab.yml"]


def test_a_version_the_spec_cannot_take_leaves_the_file_alone(tmp_path: Path) -> None:
    spec = tmp_path / "ha-stacked" / "lab.yml"
    spec.parent.mkdir()
    spec.write_text(Path("inventories/ha-stacked/lab.yml").read_text())
    before = spec.read_text()
    with pytest.raises(SpecError, match=r"kubernetes_version: 'v9.9.9' is not a version"):
        record_kubernetes_version(load_lab(spec), "v9.9.9")
    assert spec.read_text() == before and [p.name for p in spec.parent.iterdir()] == ["lab.yml"]


# --- what it measures, and the workload ----------------------------------------------------------


def test_figures_count_failures_and_the_longest_gap() -> None:
    samples = probes.parse_samples("100.0 1 200\n100.5 2 000\n101.0 3 000\n103.0 4 200\n")
    assert Figures.of(samples) == Figures(4, 2, 3.0)
    assert Figures(4, 2, 3.0).plus(Figures(10, 0, 1.0)) == Figures(14, 2, 3.0)


def test_the_workload_has_three_replicas_and_a_budget_behind_a_service(lab: Lab) -> None:
    documents = [json.loads(d) for d in disruption.manifest(lab, "img").split("\n---\n")]
    kinds = {d["kind"]: d for d in documents}
    assert kinds["Deployment"]["spec"]["replicas"] == 3
    assert kinds["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    assert kinds["Service"]["spec"]["selector"] == {"app": disruption.APP}
    assert "tolerations" not in kinds["Deployment"]["spec"]["template"]["spec"]
    single = disruption.manifest(load_lab("single"), "img").split("\n---\n")
    single_pod = json.loads(single[1])["spec"]["template"]["spec"]
    assert single_pod["tolerations"]


def test_probes_run_on_a_node_the_stage_leaves_alone(lab: Lab) -> None:
    w1 = lab.node("w1")
    assert disruption.probe_node(lab, w1).name == "w2"
    assert disruption.probe_node(lab, lab.node("cp1")).name == "w1"


def test_the_kubelet_configuration_gets_fail_cgroup_v1_false_once(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {"data": {"kubelet": "kind: KubeletConfiguration\ncgroupDriver: cgroupfs\n"}}
    patched: list[list[str]] = []
    monkeypatch.setattr(kube, "kubectl_json", lambda lab, args, **kw: config)
    monkeypatch.setattr(kube, "kubectl_ok", lambda lab, args, **kw: patched.append(list(args)))
    ctx = actions.Context(lab, OLD, NEW, SILENT)
    assert actions.allow_cgroup_v1(ctx)
    sent = json.loads(patched[0][-1])["data"]["kubelet"]
    assert yaml.safe_load(sent) == {
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
    }
    config["data"]["kubelet"] = sent
    assert not actions.allow_cgroup_v1(ctx)
    config["data"]["kubelet"] = "failCgroupV1: true\n"
    with pytest.raises(UpgradeError, match=r"sets failCgroupV1: True"):
        actions.allow_cgroup_v1(ctx)
    assert not actions.allow_cgroup_v1(actions.Context(lab, OLD, OLD, SILENT))


def test_upgrade_needs_a_target_version() -> None:
    result = CliRunner().invoke(main, ["upgrade", "ha-stacked"])
    assert result.exit_code == 2 and "--to" in result.output


def test_what_a_step_records_about_its_stage_survives_the_stage_figures(lab: Lab) -> None:
    record = new_journal(lab)

    def converged(step: PlannedStep) -> None:
        if step.name == "converged":
            record.stages.setdefault("converged", {})["changed"] = {"cp1": 1}

    run_steps(record, plan_steps(lab, OLD, NEW), converged, FakeProbes(), SILENT, "again")
    assert record.stages["converged"]["changed"] == {"cp1": 1}
    assert record.stages["converged"]["api"]["requests"] == 10


# --- the whole upgrade, every host and cluster call faked -------------------------------------


def test_a_whole_upgrade_in_order_then_a_second_run_does_nothing(
    isolated_state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tmp_path / "ha-stacked" / "lab.yml"
    spec.parent.mkdir()
    spec.write_text(Path("inventories/ha-stacked/lab.yml").read_text())
    lab = load_lab(spec)
    calls: list[str] = []
    versions_now = {"cluster": "v1.34.4"}

    def record(name: str) -> Any:
        return lambda *args, **kwargs: calls.append(
            " ".join([name, *(a.name for a in args if isinstance(a, Node))])
        )

    for name in ("deliver_kubeadm", "stage_images", "kubeadm_node", "drain", "uncordon"):
        monkeypatch.setattr(actions, name, record(name))
    monkeypatch.setattr(actions, "kubeadm_plan", lambda ctx: "COMPONENT  NODE  CURRENT  TARGET")
    monkeypatch.setattr(actions, "allow_cgroup_v1", lambda ctx: True)
    monkeypatch.setattr(actions, "deliver_node", record("deliver_node"))
    monkeypatch.setattr(actions, "restart_kubelet", record("restart_kubelet"))
    monkeypatch.setattr(actions, "wait_node_back", lambda lab, node, version: 0.0)

    def apply(ctx: actions.Context, node: Node) -> None:
        calls.append(f"kubeadm_apply {node.name}")
        versions_now["cluster"] = "v1.35.4"

    monkeypatch.setattr(actions, "kubeadm_apply", apply)
    monkeypatch.setattr(actions, "cluster_version", lambda lab: versions_now["cluster"])
    nodes = ["cp1", "cp2", "cp3", "w1", "w2"]
    monkeypatch.setattr(
        actions,
        "kubelet_versions",
        lambda lab: dict.fromkeys(nodes, versions_now["cluster"]),
    )
    monkeypatch.setattr(
        actions, "apiserver_versions", lambda lab: {"cp1 API server": versions_now["cluster"]}
    )
    monkeypatch.setattr(run, "check_bundle", lambda lab: None)
    monkeypatch.setattr(run, "wait_healthy", lambda lab, timeout_s: 0.0)
    monkeypatch.setattr(disruption, "deploy", lambda lab: "10.96.0.50:80")
    monkeypatch.setattr(disruption, "remove", record("remove workload"))
    monkeypatch.setattr(disruption, "start", lambda lab, node, service: {})
    monkeypatch.setattr(
        disruption,
        "stop",
        lambda lab, node: {"api": Figures(20, 0, 0.5), "service": Figures(20, 0, 0.3)},
    )
    monkeypatch.setattr(run, "remove_probe_files", lambda lab: [])
    provisioned: list[str] = []

    def provision(lab: Lab, progress: Any) -> Any:
        provisioned.append(lab.kubernetes_version)
        return type("Report", (), {"changed": {"cp1": 1}})()

    monkeypatch.setattr(run, "provision", provision)
    for wait in ("wait_for_ready_nodes", "wait_for_system_workloads", "spread_coredns"):
        monkeypatch.setattr(kube, wait, lambda lab: 0.0)
    verified = type("Verified", (), {"passed": True, "failures": [], "markdown": "v.md"})()
    plans: list[str] = []

    result = run.upgrade(lab, "v1.35.4", on_plan=plans.append, verify=lambda lab: verified)

    assert result.passed, result.checks
    assert plans == ["COMPONENT  NODE  CURRENT  TARGET"]
    assert calls[:3] == ["deliver_kubeadm cp1", "stage_images", "deliver_kubeadm cp1"]
    assert calls[3:8] == [
        "kubeadm_apply cp1",
        "drain cp1",
        "deliver_node cp1",
        "restart_kubelet cp1",
        "uncordon cp1",
    ]
    assert calls.index("kubeadm_node cp2") < calls.index("kubeadm_node w1")
    assert calls[-1] == "remove workload"
    assert provisioned == ["v1.35.4"]
    assert "kubernetes_version: v1.35.4" in spec.read_text()
    stored = journal.load(lab.name)
    assert stored is not None and stored.state == "finished" and not stored.pending()
    report = json.loads(
        (isolated_state / "ha-stacked" / "reports" / f"upgrade-{stored.stamp}.json").read_text()
    )
    assert report["passed"] and report["converged_changed"] == {"cp1": 1}
    assert report["stages"]["worker w2"]["service"] == {
        "requests": 20,
        "failed": 0,
        "longest_gap_s": 0.3,
    }

    # Run again: the cluster and the spec say v1.35.4, so nothing happens.
    calls.clear()
    again = run.upgrade(load_lab(spec), "v1.35.4", verify=lambda lab: verified)
    assert again.nothing_to_do and calls == []


def test_a_resumed_run_keeps_the_workloads_image(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    deployed = {"spec": {"template": {"spec": {"containers": [{"image": "kube-proxy:v1.34.4"}]}}}}
    answers = {"deployment": json.dumps(deployed)}
    monkeypatch.setattr(kube, "kubectl_ok", lambda lab, args, **kw: answers.get(args[1], ""))
    monkeypatch.setattr(disruption, "kube_proxy_image", lambda lab: "kube-proxy:v1.35.4")
    assert disruption.workload_image(lab) == "kube-proxy:v1.34.4"
    answers.clear()
    assert disruption.workload_image(lab) == "kube-proxy:v1.35.4"
