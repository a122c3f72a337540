"""``k8slab upgrade LAB --to VERSION``: kubeadm's upgrade of a lab by one minor version (or
a patch), journaled, with what it cost measured, judged by verify at the end.

Before anything changes: the target is one kubeadm's skew policy allows
(:mod:`toolkit.upgrade.plan`), its bundle is complete, the spec says what the cluster
runs, and the lab passes the drills' health gate. A run cut short goes on from its
journal (:mod:`toolkit.upgrade.journal`) when run again; an upgrade already done is a
no-op.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from toolkit import kube
from toolkit.drills.lab_ops import DrillError, remove_probe_files, wait_healthy
from toolkit.errors import HostError, K8slabError
from toolkit.lab.edit import record_kubernetes_version
from toolkit.lab.spec import Lab, Node, load_lab
from toolkit.progress import SILENT, Progress
from toolkit.provision.run import check_bundle, provision
from toolkit.upgrade import actions, disruption, journal
from toolkit.upgrade.actions import Context
from toolkit.upgrade.disruption import Figures
from toolkit.upgrade.journal import Journal
from toolkit.upgrade.plan import PlannedStep, UpgradeError, check_versions, plan_steps
from toolkit.upgrade.report import (
    API_GAP_BUDGET_S,
    SERVICE_FAILURES_BUDGET,
    UpgradeResult,
    write_reports,
)
from toolkit.upgrade.steps import run_steps
from toolkit.verify import VerifyReport, run_verify
from toolkit.versions import release

# A loaded machine makes single probes fail now and then; unhealthy means for this long.
GATE_S = 60
BETWEEN_NODES_HEALTHY_S = 300


class LabProbes:
    """The disruption probes of :mod:`toolkit.upgrade.disruption`, on the lab's nodes."""

    def __init__(self, lab: Lab, service: str) -> None:
        self.lab, self.service = lab, service
        self.node: Node | None = None

    def start(self, busy: Node | None) -> tuple[str, dict[str, Figures]]:
        self.node = disruption.probe_node(self.lab, busy)
        return self.node.name, disruption.start(self.lab, self.node, self.service)

    def stop(self) -> dict[str, Figures]:
        return disruption.stop(self.lab, self.node) if self.node else {}


def _action(
    ctx: Context, record: Journal, on_plan: Callable[[str], None]
) -> Callable[[PlannedStep], object]:
    lab, version = ctx.lab, ctx.target.version

    def plan(_: PlannedStep) -> None:
        actions.deliver_kubeadm(ctx, lab.control_planes[0])
        record.plan_output = actions.kubeadm_plan(ctx)
        on_plan(record.plan_output)

    def prepare(_: PlannedStep) -> None:
        actions.stage_images(ctx)
        if actions.allow_cgroup_v1(ctx):
            ctx.progress.say("prepare", "kubelet-config: failCgroupV1: false")

    def kubelet(node: Node) -> None:
        actions.deliver_node(ctx, node)
        actions.restart_kubelet(lab, node)
        actions.wait_node_back(lab, node, version)

    def uncordon(node: Node) -> None:
        actions.uncordon(lab, node)
        wait_healthy(lab, BETWEEN_NODES_HEALTHY_S)

    def converged(_: PlannedStep) -> None:
        upgraded = load_lab(lab.source)
        report = provision(upgraded, progress=ctx.progress)
        record.stages.setdefault("converged", {})["changed"] = report.changed
        kube.wait_for_ready_nodes(upgraded)
        kube.wait_for_system_workloads(upgraded)
        kube.spread_coredns(upgraded)

    on_node: dict[str, Callable[[Node], object]] = {
        "etcd": lambda node: actions.upgrade_etcd_member(ctx, node),
        "kubeadm": lambda node: actions.deliver_kubeadm(ctx, node),
        "apply": lambda node: actions.kubeadm_apply(ctx, node),
        "upgrade-node": lambda node: actions.kubeadm_node(ctx, node),
        "drain": lambda node: actions.drain(lab, node),
        "kubelet": kubelet,
        "uncordon": uncordon,
    }
    on_lab: dict[str, Callable[[PlannedStep], object]] = {
        "plan": plan,
        "prepare": prepare,
        "spec": lambda _: record_kubernetes_version(lab, version),
        "converged": converged,
    }

    def act(step: PlannedStep) -> object:
        if step.node is not None:
            return on_node[step.action](step.node)
        return on_lab[step.action](step)

    return act


def _begin(lab: Lab, target: str) -> tuple[Journal, Context] | None:
    """A new upgrade's journal, once everything it needs is checked; None when the lab
    already runs ``target``."""
    try:
        running = actions.cluster_version(lab)
        kubelets = actions.kubelet_versions(lab)
    except (HostError, kube.ClusterError) as exc:
        raise UpgradeError(f"lab {lab.name}: cannot read what the cluster runs: {exc}") from exc
    if running == target and set(kubelets.values()) == {target}:
        if lab.kubernetes_version != target:
            raise UpgradeError(
                f"{lab.source}: kubernetes_version is {lab.kubernetes_version}, but the cluster "
                f"already runs {target}; set it to {target}"
            )
        return None
    if lab.kubernetes_version != running:
        raise UpgradeError(
            f"{lab.source}: kubernetes_version is {lab.kubernetes_version}, but the cluster "
            f"runs {running}; make the spec say what runs before upgrading"
        )
    wanted = check_versions(running, target)
    ctx = Context(lab, release(running), wanted, SILENT)
    check_bundle(ctx.target_lab)
    try:
        wait_healthy(lab, GATE_S)
    except DrillError as exc:
        raise UpgradeError(f"upgrade refused, nothing was changed: {exc}") from exc
    steps = plan_steps(lab, ctx.current, wanted)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    record = Journal(lab.name, running, target, stamp, [s.name for s in steps])
    record.save()
    return record, ctx


def _resume(lab: Lab, target: str, record: Journal) -> Context:
    if record.to_version != target:
        raise UpgradeError(
            f"lab {lab.name}: an upgrade to {record.to_version} is unfinished "
            f"({record.state}, step {record.step or 'between steps'}); finish it first with "
            f"`k8slab upgrade {lab.name} --to {record.to_version}`"
        )
    ctx = Context(lab, release(record.from_version), release(target), SILENT)
    if [s.name for s in plan_steps(lab, ctx.current, ctx.target)] != record.steps:
        raise UpgradeError(
            f"lab {lab.name}: the spec's nodes changed since the upgrade to {target} began "
            f"({record.path} lists its steps); put them back to finish it"
        )
    record.close("running")
    return ctx


def upgrade(
    lab: Lab,
    target: str,
    progress: Progress = SILENT,
    on_plan: Callable[[str], None] = lambda text: None,
    verify: Callable[[Lab], VerifyReport] = run_verify,
) -> UpgradeResult:
    """Upgrade ``lab`` to ``target`` (see the module's docstring), or go on with the
    upgrade its journal says was cut short."""
    started = time.monotonic()
    earlier = journal.load(lab.name)
    if earlier is not None and earlier.is_open:
        progress.say("resume", f"to {target}, stopped in step {earlier.step or 'between steps'}")
        record, ctx = earlier, _resume(lab, target, earlier)
    else:
        begun = _begin(lab, target)
        if begun is None:
            result = UpgradeResult(lab.name, lab.etcd_topology, target, target, "")
            result.nothing_to_do = True
            return result
        record, ctx = begun
    ctx = Context(ctx.lab, ctx.current, ctx.target, progress)
    steps = plan_steps(lab, ctx.current, ctx.target)
    with progress.phase("workload", "a Deployment of 3 behind a Service, with a PDB"):
        service = disruption.deploy(lab)
    again = f"k8slab upgrade {lab.source} --to {target}"
    run_steps(
        record, steps, _action(ctx, record, on_plan), LabProbes(lab, service), progress, again
    )
    record.close("finished")
    upgraded = load_lab(lab.source)
    disruption.remove(upgraded)
    remove_probe_files(upgraded)
    result = UpgradeResult(
        lab.name,
        lab.etcd_topology,
        record.from_version,
        target,
        record.stamp,
        time.monotonic() - started,
        dict(record.seconds),
        dict(record.stages),
        converged_changed=record.stages.get("converged", {}).get("changed", {}),
        plan_output=record.plan_output,
    )
    judge(upgraded, result, verify, progress)
    result.seconds = time.monotonic() - started
    write_reports(result, record.stamp)
    return result


def judge(
    lab: Lab, result: UpgradeResult, verify: Callable[[Lab], VerifyReport], progress: Progress
) -> None:
    """The checks of an upgrade: every kubelet and API server at the target, the
    disruption within issue 16's bounds, and ``k8slab verify`` passing."""
    target = result.to_version
    try:
        kubelets = actions.kubelet_versions(lab)
        apiservers = actions.apiserver_versions(lab)
    except K8slabError as exc:
        result.check(f"every node at {target}", False, str(exc))
    else:
        behind = {n: v for n, v in {**kubelets, **apiservers}.items() if v != target}
        result.check(
            f"every kubelet and API server at {target}",
            not behind and len(kubelets) == len(lab.control_planes) + len(lab.workers),
            ", ".join(f"{n} {v}" for n, v in sorted(behind.items())),
        )
    api_gap, _ = result.worst("api")
    result.check(
        f"the API through the VIP never silent longer than {API_GAP_BUDGET_S:.0f}s",
        api_gap <= API_GAP_BUDGET_S,
        f"longest gap {api_gap:.1f}s",
    )
    _, failed = result.worst("service")
    result.check(
        "no request to the Service failed",
        failed <= SERVICE_FAILURES_BUDGET,
        f"{failed} failed",
    )
    progress.say("verify", "k8slab verify")
    try:
        report = verify(lab)
    except K8slabError as exc:
        result.check("k8slab verify passes", False, str(exc))
        return
    failed_checks = [f"{r.group}/{r.check}@{r.host}" for r in report.failures]
    result.check(
        "k8slab verify passes",
        report.passed,
        f"report {report.markdown}"
        + (f"; failed: {', '.join(failed_checks[:10])}" if failed_checks else ""),
    )
