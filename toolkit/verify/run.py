"""Run the verification suites against a lab and report check by check.

The suites are testinfra/pytest modules shipped in ``toolkit/verify/suites``; pytest runs
them in this process with the lab handed over through a plugin, writes JUnit XML into the
lab's state directory, and the report is read back from it.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from toolkit.lab.spec import Lab, Node
from toolkit.progress import SILENT, Progress
from toolkit.verify import load_balancer, policy
from toolkit.verify.cluster import Cluster, VerifyError
from toolkit.verify.report import VerifyReport, parse_junit, render_markdown
from toolkit.verify.workload import Layout, Workload

SUITES_DIR = Path(__file__).parent / "suites"
# In the order they run: a broken control plane explains failures further down.
GROUPS = (
    "control-plane",
    "control-plane-ha",
    "etcd",
    "nodes",
    "cloud-provider",
    "network",
    "network-policy",
    "load-balancer",
    "scheduling",
    "addons",
)
# Groups that check a part only some labs have: whether a lab has it, and what it lacks.
LAB_GROUPS: dict[str, tuple[Callable[[Lab], bool], str]] = {
    "cloud-provider": (
        lambda lab: lab.cloud_provider != "none",
        "no cloud-controller-manager (its cloud_provider is none)",
    ),
}
WORKLOAD_GROUPS = {"nodes", "network", "load-balancer", "scheduling"}
CONTEXT_KEY = pytest.StashKey["VerifyContext"]()


class VerifyContext:
    """What the suites receive: the lab, its cluster access, the test workload."""

    def __init__(self, cluster: Cluster, workload: Workload | None, progress: Progress) -> None:
        self.cluster = cluster
        self.lab = cluster.lab
        self.workload = workload
        self.progress = progress


class VerifyPlugin:
    """Hands the context to the suites and reports each check as it finishes."""

    def __init__(self, context: VerifyContext) -> None:
        self.context = context

    def pytest_configure(self, config: pytest.Config) -> None:
        config.stash[CONTEXT_KEY] = self.context

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or report.outcome != "passed":
            if report.when != "call" and report.outcome == "skipped":
                outcome = "skipped"
            elif report.when != "call":
                outcome = "error" if report.failed else report.outcome
            else:
                outcome = report.outcome
            if report.when == "teardown" and report.passed:
                return
            self.context.progress.say(
                "verify", f"{outcome:<7} {report.nodeid.split('::')[-1]} ({report.duration:.1f}s)"
            )


def groups_of(lab: Lab) -> tuple[str, ...]:
    """The groups that check ``lab``: all but those of a part it does not have."""
    return tuple(g for g in GROUPS if g not in LAB_GROUPS or LAB_GROUPS[g][0](lab))


def select_groups(lab: Lab, only: Sequence[str] | None) -> tuple[str, ...]:
    if not only:
        return groups_of(lab)
    unknown = [g for g in only if g not in GROUPS]
    if unknown:
        raise VerifyError(
            f"unknown verify group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}"
        )
    for group in only:
        if group not in groups_of(lab):
            raise VerifyError(
                f"lab {lab.name} has {LAB_GROUPS[group][1]}: the {group} group has nothing "
                "to check there"
            )
    return tuple(g for g in GROUPS if g in only)


def layout_nodes(lab: Lab) -> list[Node]:
    """The two nodes of the test Pods (a, b): two workers, or a worker and a control plane."""
    candidates = lab.workers[:2] if len(lab.workers) >= 2 else [*lab.workers, *lab.control_planes]
    if len(candidates) < 2:
        raise VerifyError(f"lab {lab.name}: the network checks need at least two nodes")
    return candidates[:2]


def layout_for(cluster: Cluster) -> Layout:
    """Two distinct nodes for the test Pods: two workers, or a worker and a control plane."""
    lab = cluster.lab
    candidates = layout_nodes(lab)
    # kube-proxy runs on every node of every lab, whatever the CNI (the bridge labs have no
    # flannel), and its image is the bundle's Debian userland with bash, perl and getent.
    daemonsets = cluster.kubectl_json("get", "daemonset", "-A", "-l", "k8s-app=kube-proxy")
    images = [
        c["image"]
        for ds in daemonsets["items"]
        for c in ds["spec"]["template"]["spec"]["containers"]
    ]
    if not images:
        raise VerifyError(
            f"lab {lab.name}: no kube-proxy DaemonSet, whose image the test Pods use; "
            f"provision the lab (k8slab provision {lab.name})"
        )
    # A container node shares the machine's kernel and cannot load modules into it.
    probe = cluster.run(candidates[0], "test -e /proc/net/sctp && echo yes; uname -r")
    sctp = probe.output.startswith("yes")
    kernel = probe.stdout.strip().splitlines()[-1] if probe.stdout.strip() else "?"
    reason = (
        ""
        if sctp
        else f"the kernel ({kernel}) of {candidates[0].name} offers no SCTP "
        "(/proc/net/sctp is missing; a container node cannot load modules)"
    )
    kube_nodes = tuple(n.name for n in lab.control_planes + lab.workers)
    return Layout(candidates[0], candidates[1], images[0], sctp, reason, kube_nodes)


@contextlib.contextmanager
def interruptible_by_sigterm() -> Iterator[None]:
    """Turn SIGTERM (a `timeout`, a CI cancel) into KeyboardInterrupt for the run, so that
    a stopped component is restored and the test workload removed on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def pytest_args(
    groups: Sequence[str], junit_xml: Path, lab_name: str, suites_dir: Path = SUITES_DIR
) -> list[str]:
    """pytest's arguments to run the suites of ``groups`` (``check_<group>.py`` under
    ``suites_dir``) and write JUnit XML to ``junit_xml``, under none of the caller's
    pytest configuration."""
    return [
        *(str(suites_dir / f"check_{g.replace('-', '_')}.py") for g in groups),
        "-c",
        os.devnull,  # no ini file: the caller's pytest configuration must not apply
        "--rootdir",
        str(suites_dir),
        "-p",
        "no:cacheprovider",
        "--import-mode=importlib",
        "-o",
        "python_files=check_*.py",
        "-o",
        "junit_family=xunit2",
        "-o",
        f"junit_suite_name=k8slab-verify-{lab_name}",
        "-o",
        "junit_logging=no",
        f"--junitxml={junit_xml}",
        "--tb=short",
        "-q",
    ]


def run_suites(context: VerifyContext, groups: Sequence[str], junit_xml: Path) -> None:
    """pytest, in this process, on the suites of ``groups``; JUnit XML to ``junit_xml``."""
    args = pytest_args(groups, junit_xml, context.lab.name)
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exit_code = pytest.main(args, plugins=[VerifyPlugin(context)])
    if exit_code == pytest.ExitCode.INTERRUPTED:
        raise KeyboardInterrupt("verify interrupted; its test workload was removed")
    if exit_code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        raise VerifyError(
            f"the verify suites could not run (pytest exit {int(exit_code)}):\n"
            + output.getvalue()[-3000:]
        )


def run_verify(
    lab: Lab, only: Sequence[str] | None = None, progress: Progress = SILENT
) -> VerifyReport:
    """Run the checks of ``only`` (default: every group) and write the reports.

    Never raises for a failing check: ``VerifyReport.passed`` says whether all held.
    Raises :class:`VerifyError` when the run cannot start (no state, unknown group).
    """
    groups = select_groups(lab, only)
    cluster = Cluster(lab)
    started_at = datetime.now(UTC)
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    reports = cluster.state.root / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    junit_xml = reports / f"verify-{stamp}.xml"
    markdown = reports / f"verify-{stamp}.md"
    started = time.monotonic()
    workload: Workload | None = None
    with interruptible_by_sigterm():
        try:
            if WORKLOAD_GROUPS & set(groups):
                layout = layout_for(cluster)
                # The LoadBalancer Service, for a lab with a pool (MetalLB gives it an address).
                extra = (
                    (load_balancer.manifests(layout),)
                    if lab.load_balancer is not None and "load-balancer" in groups
                    else ()
                )
                workload = Workload(cluster, layout, extra)
                workload.start()
                progress.say(
                    "verify", f"test Pods on {workload.layout.a.name}, {workload.layout.b.name}"
                )
            run_suites(VerifyContext(cluster, workload, progress), groups, junit_xml)
        finally:
            if workload is not None:
                workload.remove()
            if "network-policy" in groups and lab.policy_agent is not None:
                policy.remove(cluster)  # the suite removes them too, unless interrupted
            cluster.close()
    results = tuple(parse_junit(junit_xml.read_text(encoding="utf-8")))
    report = VerifyReport(
        lab=lab.name,
        groups=groups,
        started=started_at.isoformat(timespec="seconds"),
        seconds=time.monotonic() - started,
        results=results,
        junit_xml=junit_xml,
        markdown=markdown,
    )
    cluster.state.write_text(markdown, render_markdown(report))
    cluster.state.write_json(reports / "verify-latest.json", summary(report))
    return report


def summary(report: VerifyReport) -> dict[str, Any]:
    return {
        "lab": report.lab,
        "started": report.started,
        "seconds": round(report.seconds, 1),
        "passed": report.passed,
        "counts": report.counts(),
        "junit_xml": str(report.junit_xml),
        "markdown": str(report.markdown),
        "failures": [f"{r.group}/{r.check}[{r.host}]" for r in report.failures],
        "passed_after_retry": [
            f"{r.group}/{r.check}[{r.host}]"
            for r in report.results
            if r.outcome == "passed" and r.evidence
        ],
    }
