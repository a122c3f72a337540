"""``k8slab scale``: grow or shrink a lab, the spec being the source of truth.

The whole change is checked first (``plan``) and the lab must be healthy; then the lab
converges and, last, the spec is edited in place. Adding: Vagrant creates the new hosts,
then provisioning runs over the whole lab, which joins them with fresh credentials made on
a control plane (a bootstrap token; for a control plane, certificates uploaded under a new
key, as kubeadm's HA guide does) and brings every other node's view of the lab up to date
(/etc/hosts, the load balancer's backends, the bridge CNI's routes). Removing, one node
after the other: a control plane first hands the API's VIP to one that stays; the node is
drained (PodDisruptionBudgets respected, bounded); a stacked control plane's etcd member is
removed through the members that stay; ``kubeadm reset`` runs on the host; the Node object
is deleted; the host is destroyed; provisioning then updates what the others know.

Each step is journaled (``journal.py``) before and after it runs, so a run cut short
resumes where it stopped when run again; another scale is refused meanwhile.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from toolkit.drills.lab_ops import health_problems
from toolkit.errors import K8slabError
from toolkit.etcd.steps import check_interrupted, interruptible
from toolkit.files import replace_file
from toolkit.hosts import lifecycle
from toolkit.lab.loader import read_spec_text
from toolkit.lab.model import Lab, Node, Role
from toolkit.lab.schema import display_path
from toolkit.lab.spec import load_lab
from toolkit.lab.state import LabState
from toolkit.progress import SILENT, Progress
from toolkit.provision.report import ProvisionReport
from toolkit.provision.run import check_bundle, provision
from toolkit.scale import journal, steps
from toolkit.scale.journal import ScaleJournal, step_key
from toolkit.scale.plan import ScaleError, ScalePlan, ScaleRequest, plan
from toolkit.scale.spec_edit import lab_from_text


@dataclass
class ScaleResult:
    lab: str
    kind: str
    nodes: list[str]
    seconds: float
    resumed: bool = False
    phases: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    provision: ProvisionReport | None = None


@dataclass(frozen=True)
class Step:
    key: str
    message: str
    action: Callable[[], object]


def scale(lab: Lab, request: ScaleRequest, progress: Progress = SILENT) -> ScaleResult:
    """Check ``request`` against ``lab`` and carry it out; the same request again after a
    run was cut short resumes it, another one is refused until it is finished."""
    unfinished = journal.load_open(lab.name)
    if unfinished is not None:
        asked = sorted({name for _, name in request.adds} | set(request.remove))
        kind = "add" if request.adds else "remove"
        if (kind, asked) == (unfinished.kind, sorted(unfinished.nodes)):
            return resume(lab, progress)
        raise ScaleError(
            f"lab {lab.name}: {unfinished.describe()}; finish it first with "
            f"`k8slab scale {lab.name} --resume`"
        )
    text = read_spec_text(lab.source)
    the_plan = plan(lab, text, request)
    check_bundle(the_plan.after)
    with progress.phase("health", f"lab {lab.name} before the scale"):
        problems = health_problems(lab)
    if problems:
        raise ScaleError(
            f"lab {lab.name} is not healthy, so it is not scaled (nothing was changed): "
            + "; ".join(problems)
        )
    record = ScaleJournal(
        lab=lab.name,
        kind=the_plan.kind,
        nodes=[n.name for n in the_plan.added or the_plan.removed],
        text_before=the_plan.text_before,
        text_after=the_plan.text_after,
    )
    record.save()
    return _run(the_plan, record, progress, resumed=False)


def resume(lab: Lab, progress: Progress = SILENT) -> ScaleResult:
    """Finish the scale the journal says was cut short, from the step where it stopped."""
    record = journal.load_open(lab.name)
    if record is None:
        raise ScaleError(f"lab {lab.name}: no unfinished scale to resume")
    current = read_spec_text(lab.source)
    if current not in (record.text_before, record.text_after):
        raise ScaleError(
            f"lab {lab.name}: {display_path(lab.source)} changed since the scale begun "
            f"{record.stamp}; put it back as it was to resume ({journal.journal_path(lab.name)} "
            "holds its text before and after)"
        )
    before = lab_from_text(record.text_before, lab.source)
    after = lab_from_text(record.text_after, lab.source)
    # In the journal's order: a removal's later nodes are asked through the lab without
    # the earlier ones.
    adding = record.kind == "add"
    the_plan = ScalePlan(
        before=before,
        after=after,
        text_before=record.text_before,
        text_after=record.text_after,
        added=tuple(after.node(name) for name in record.nodes) if adding else (),
        removed=() if adding else tuple(before.node(name) for name in record.nodes),
    )
    progress.say("resume", f"{the_plan.describe()}, stopped at {record.step or 'a step end'}")
    record.close("running")
    return _run(the_plan, record, progress, resumed=True)


def plan_steps(the_plan: ScalePlan, result: ScaleResult, progress: Progress) -> list[Step]:
    """The steps of the scale, in order; those on one node are keyed by it."""
    after = the_plan.after
    found: list[Step] = []
    if the_plan.added:
        added = list(the_plan.added)
        names = ", ".join(n.name for n in added)
        found.append(
            Step(
                "hosts-created",
                f"vagrant up {names}",
                lambda: lifecycle.up_nodes(after, added, progress),
            )
        )
    current = the_plan.before
    for node in the_plan.removed:
        staying = _without(current, node)
        found += _removal_steps(current, staying, node, result, progress)
        current = staying

    def converge() -> None:
        result.provision = provision(after, progress=progress)

    found += [
        Step("converged", "provision the lab as the spec will say", converge),
        Step(
            "ready",
            "every node Ready, system Pods and etcd healthy",
            lambda: steps.wait_settled(after),
        ),
        Step("spec-written", f"edit {display_path(after.source)}", lambda: write_spec(the_plan)),
    ]
    return found


def _removal_steps(
    leaving: Lab, staying: Lab, node: Node, result: ScaleResult, progress: Progress
) -> list[Step]:
    def note(text: object) -> None:
        result.notes.append(f"{node.name}: {text}")

    found = []
    if node.role == Role.CONTROL_PLANE:
        found.append(
            Step(
                step_key("vip-released", node.name),
                "hand the API's VIP to a control plane that stays",
                lambda: steps.release_vip(leaving, staying, node),
            )
        )
    found.append(Step(step_key("drained", node.name), "drain", lambda: steps.drain(staying, node)))
    if node.role == Role.CONTROL_PLANE and leaving.etcd_topology == "stacked":
        found.append(
            Step(
                step_key("etcd-member-removed", node.name),
                "remove its etcd member through the members that stay",
                lambda: note(steps.remove_etcd_member(staying, node)),
            )
        )
    # kubeadm's order: reset on the host, then delete the Node (a kubelet still running
    # would register it again).
    found += [
        Step(
            step_key("host-reset", node.name),
            "kubeadm reset",
            lambda: note(steps.reset_host(leaving, node)),
        ),
        Step(
            step_key("node-deleted", node.name),
            "kubectl delete node",
            lambda: steps.delete_node(staying, node),
        ),
        Step(
            step_key("host-destroyed", node.name),
            "destroy the host",
            lambda: note(", ".join(lifecycle.destroy_node(leaving, node, staying, progress))),
        ),
    ]
    return found


def _without(lab: Lab, node: Node) -> Lab:
    return dataclasses.replace(lab, nodes=tuple(n for n in lab.nodes if n.name != node.name))


def write_spec(the_plan: ScalePlan) -> None:
    """Write the edited spec over the old one (atomically, its mode kept), and check it
    loads as the lab after the scale."""
    path = the_plan.after.source
    if read_spec_text(path) != the_plan.text_after:
        replace_file(path, the_plan.text_after, path.stat().st_mode & 0o7777)
    if load_lab(path) != the_plan.after:
        raise ScaleError(f"{display_path(path)}: written, but it does not load as the lab after")


def _run(
    the_plan: ScalePlan, record: ScaleJournal, progress: Progress, resumed: bool
) -> ScaleResult:
    started = time.monotonic()
    nodes = [n.name for n in the_plan.added or the_plan.removed]
    result = ScaleResult(the_plan.before.name, the_plan.kind, nodes, 0.0, resumed)
    result.notes += [
        f"{n.name}: address {n.address} chosen (the next free one)"
        for n in the_plan.added
        if n.name in the_plan.chosen
    ]
    lab = the_plan.before.name
    with interruptible(progress):
        try:
            for step in plan_steps(the_plan, result, progress):
                if record.is_done(step.key):
                    continue
                record.begin(step.key)
                begun = time.monotonic()
                name, _, host = step.key.partition(":")
                with progress.phase(name, f"{host + ': ' if host else ''}{step.message}"):
                    step.action()
                result.phases[step.key] = time.monotonic() - begun
                record.mark(step.key)
                check_interrupted()
        except KeyboardInterrupt as exc:
            record.close("interrupted", f"{exc or 'SIGINT'} in step {record.step!r}")
            raise ScaleError(_stopped(lab, record, f"interrupted by {exc or 'SIGINT'}")) from exc
        except (K8slabError, OSError) as exc:
            record.close("failed", str(exc))
            raise ScaleError(_stopped(lab, record, str(exc))) from exc
    record.close("finished")
    result.seconds = time.monotonic() - started
    LabState.of(lab).write_json(
        LabState.of(lab).root / "timings" / "scale.json",
        {"kind": result.kind, "nodes": nodes, "seconds": result.seconds, "steps_s": result.phases},
    )
    return result


def _stopped(lab: str, record: ScaleJournal, why: str) -> str:
    return (
        f"lab {lab}: the scale ({record.kind} {', '.join(record.nodes)}) stopped in step "
        f"{record.step or 'between steps'}: {why}\n  fix the cause and run "
        f"`k8slab scale {lab} --resume` (or the same command again): it goes on from that step"
    )
