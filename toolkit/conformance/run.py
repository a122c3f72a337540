"""``k8slab conformance LAB``: upstream's conformance suite, run inside the lab.

The steps: check that the lab is ready and the bundle has its conformance part; import
the part's images onto the nodes; apply the run's objects (manifests.py); follow the
suite's log for progress until go-runner exits; copy the results folder (e2e.log,
junit_01.xml, go-runner's tarball) into ``<state>/reports/conformance-<UTC time>/``;
delete the objects; summarize the JUnit report. Ctrl-C sends SIGINT to go-runner, which
stops the suite and still writes its reports; a second Ctrl-C stops waiting for them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit import kube
from toolkit.bundle import conformance, parts
from toolkit.conformance import junit, manifests, results, skips, watch
from toolkit.conformance.images import import_images
from toolkit.conformance.logscan import SuiteProgress
from toolkit.errors import ConformanceError, HostError
from toolkit.lab.spec import Lab, Node
from toolkit.lab.state import LabState
from toolkit.progress import SILENT, Progress
from toolkit.versions import release

# go-runner gives ginkgo --timeout=24h; a run longer than that is stuck.
RUN_TIMEOUT_S = 25 * 3600
# After SIGINT: ginkgo runs the current spec's cleanup and writes its reports.
INTERRUPT_TIMEOUT_S = 600
CLEANUP_TIMEOUT_S = 300


@dataclass(frozen=True)
class Options:
    focus: str = manifests.CONFORMANCE_FOCUS
    skip: tuple[str, ...] = ()
    parallel: int = 1
    default_skips: bool = True
    dry_run: bool = False


@dataclass
class Result:
    lab: str
    reports: Path
    seconds: float
    progress: SuiteProgress
    exit_code: int | None = None  # go-runner's (ginkgo's); None: it never ended
    interrupted: bool = False
    dry_run: bool = False  # ginkgo listed the specs and ran none: no JUnit report
    summary: junit.Summary | None = None
    problems: list[str] = field(default_factory=list)  # what went wrong around the suite

    @property
    def passed(self) -> bool:
        summarized = self.dry_run or (self.summary is not None and self.summary.ok)
        return self.exit_code == 0 and not self.interrupted and not self.problems and summarized

    def to_dict(self) -> dict[str, Any]:
        return {
            "lab": self.lab,
            "passed": self.passed,
            "seconds": round(self.seconds, 1),
            "exit_code": self.exit_code,
            "interrupted": self.interrupted,
            "specs": {"will_run": self.progress.total, "in_suite": self.progress.suite},
            "summary": self.summary.to_dict() if self.summary else None,
            "problems": self.problems,
        }


def run_spec(lab: Lab, options: Options) -> manifests.RunSpec:
    """The run's objects' inputs; a refusal (before anything changes) of a bad regex or a
    bundle without its conformance part."""
    if options.parallel < 1:
        raise ConformanceError(f"--parallel must be 1 or more, not {options.parallel}")
    focus = skips.check_regex(options.focus, "--focus")
    skip = skips.skip_regex(list(options.skip), options.default_skips)
    rel = release(lab.kubernetes_version)
    part = parts.load_part(rel.version, conformance.NAME)
    tags = {a.tag for a in part.by_kind("image")}
    output_image = next((t for t in tags if "/busybox:" in t), "")
    if conformance.runner_image(rel) not in tags or not output_image:
        raise ConformanceError(
            f"the conformance part of {rel.version} lacks its runner or busybox image: rebuild "
            f"it with `k8slab bundle build --kubernetes {rel.version} --with conformance --force`"
        )
    repo_list = parts.part_dir(rel.version, conformance.NAME) / conformance.REPO_LIST_FILE
    return manifests.RunSpec(
        runner_image=conformance.runner_image(rel),
        output_image=output_image,
        node=runner_node(lab).name,
        repo_list=repo_list.read_text(encoding="utf-8"),
        focus=focus,
        skip=skip,
        parallel=options.parallel,
        dry_run=options.dry_run,
    )


def runner_node(lab: Lab) -> Node:
    """Where go-runner runs: the first control plane, so the workers keep their room."""
    return lab.control_planes[0]


def untainted_nodes(nodes: dict[str, Any]) -> list[str]:
    """The nodes (kubectl's JSON list) Pods without tolerations may run on."""
    return sorted(
        node["metadata"]["name"]
        for node in nodes.get("items", [])
        if not any(
            t.get("effect") in ("NoSchedule", "NoExecute")
            for t in node.get("spec", {}).get("taints") or []
        )
        and not node.get("spec", {}).get("unschedulable")
    )


def preflight(lab: Lab, progress: Progress) -> None:
    """Every node Ready and the system workloads rolled out, or a refusal; a warning when
    fewer than two nodes take Pods (the suite's node-count specs then fail)."""
    problems = [f"{name} not Ready" for name in kube.not_ready_nodes(lab)]
    problems += kube.system_workloads_pending(lab)
    if problems:
        raise ConformanceError(
            f"lab {lab.name} is not ready for the suite: {'; '.join(problems)} "
            f"(`k8slab verify {lab.name}` tells more)"
        )
    untainted = untainted_nodes(kube.kubectl_json(lab, ["get", "nodes"], timeout=30))
    if len(untainted) < 2:
        progress.say(
            "preflight",
            f"warning: only {len(untainted)} node(s) take Pods ({', '.join(untainted) or 'none'});"
            " the specs that need two will fail",
        )


def cleanup(lab: Lab, timeout_s: float = CLEANUP_TIMEOUT_S) -> None:
    """Delete the run's objects (what the suite made lives in namespaces it deletes)."""
    kube.kubectl_ok(
        lab,
        [
            "delete",
            f"namespace/{manifests.NAMESPACE}",
            f"clusterrolebinding/{manifests.CLUSTER_ROLE}",
            f"clusterrole/{manifests.CLUSTER_ROLE}",
            "--ignore-not-found",
            f"--timeout={int(timeout_s)}s",
        ],
        timeout=timeout_s + 30,
    )


def run_conformance(lab: Lab, options: Options, progress: Progress = SILENT) -> Result:
    """Run the suite on ``lab``; the result, with the reports written (see the module)."""
    spec = run_spec(lab, options)
    state = LabState.of(lab.name)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    reports = state.root / "reports" / f"conformance-{stamp}"
    started = time.monotonic()
    with progress.phase("preflight", f"lab {lab.name}, the bundle's conformance part"):
        preflight(lab, progress)
        cleanup(lab)  # what an earlier run that was killed left behind
    with progress.phase("images", "the conformance part's images onto the nodes"):
        import_images(lab, runner_node(lab), progress)
    state.write_text(reports / "objects.yaml", manifests.render(spec))
    state.write_text(reports / "skip.txt", f"{spec.skip}\n")
    result = Result(lab.name, reports, 0.0, SuiteProgress(), dry_run=options.dry_run)
    try:
        kube.apply(lab, manifests.render(spec))
        _run_and_collect(lab, spec, result, progress)
    finally:
        with progress.phase("cleanup", f"namespace {manifests.NAMESPACE} and its cluster role"):
            try:
                cleanup(lab)
            except (HostError, kube.ClusterError) as exc:
                result.problems.append(f"cleanup: {exc}")
        result.seconds = time.monotonic() - started
        _summarize(state, result)
    return result


def _run_and_collect(lab: Lab, spec: manifests.RunSpec, result: Result, progress: Progress) -> None:
    with progress.phase("start", f"the suite's Pod on {spec.node}"):
        watch.wait_started(lab)
    follower = watch.LogFollower(lab)
    report = watch.reporter(progress)
    try:
        with progress.phase("suite", f"focus {spec.focus!r}, {spec.parallel} process(es)"):
            state = watch.follow(lab, follower, RUN_TIMEOUT_S, report)
    except KeyboardInterrupt:
        result.interrupted = True
        progress.say("suite", "interrupted: SIGINT to go-runner, waiting for its reports")
        try:
            kube.kubectl(lab, manifests.interrupt_args(), timeout=60)
        except HostError as exc:
            result.problems.append(f"SIGINT to go-runner: {exc}")
        try:
            state = watch.follow(lab, follower, INTERRUPT_TIMEOUT_S, report)
        except KeyboardInterrupt:
            progress.say("suite", "interrupted again: collecting what is there")
            state = watch.PodState()
    result.progress = follower.progress
    result.exit_code = state.exit_code
    if not state.finished:
        result.problems.append("go-runner did not exit in time")
    with progress.phase("collect", f"results into {result.reports}"):
        result.problems += results.collect(lab, runner_node(lab), result.reports)


def _summarize(state: LabState, result: Result) -> None:
    try:
        result.summary = junit.read_summary(result.reports / "junit_01.xml")
    except junit.JUnitError as exc:
        if not result.dry_run:
            result.problems.append(str(exc))
    state.write_json(result.reports / "summary.json", result.to_dict())


def summary_lines(result: Result, limit: int = 0) -> list[str]:
    """The summary as the command prints it: counts, then each failure's first line."""
    lines = []
    s = result.summary
    if result.dry_run:
        lines.append(f"dry run: {result.progress.line()}")
    if s is not None:
        lines.append(
            f"{s.passed} passed, {len(s.failed)} failed, {len(s.skipped)} skipped "
            f"({s.not_selected} not selected) in {result.seconds:.0f}s"
        )
        shown = s.failed[:limit] if limit else s.failed
        lines += [f"  FAILED {f.name}\n         {f.first_line}" for f in shown]
        if len(shown) < len(s.failed):
            lines.append(f"  ... and {len(s.failed) - len(shown)} more in summary.json")
        lines += [f"  skipped {name}: {why}" for name, why in s.skipped.items()]
    lines += [f"  problem: {p}" for p in result.problems]
    if result.interrupted:
        lines.append("  interrupted: the reports cover the specs that ran")
    lines.append(f"  reports: {result.reports}")
    return lines
