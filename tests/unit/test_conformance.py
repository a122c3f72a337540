"""k8slab conformance without a lab: the objects it applies, the skip list, the progress
read from the suite's log, the JUnit summary, and the run's flow against a fake cluster."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from toolkit.cli import main
from toolkit.conformance import junit, logscan, manifests, results, run, skips, watch
from toolkit.lab import spec

FIXTURES = Path(__file__).parent / "fixtures" / "conformance"
SPEC = manifests.RunSpec(
    runner_image="k8slab.test/conformance:v1.34.4",
    output_image="k8slab.test/e2e-test-images/busybox:1.37.0-1",
    node="cp1",
    repo_list="promoterE2eRegistry: k8slab.test/e2e-test-images\n",
    skip=r"\[Serial\]",
)


def _by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objects}


# --- the objects ------------------------------------------------------------------------------


def test_the_rendered_stream_is_the_objects_and_keeps_regex_backslashes() -> None:
    stream = list(yaml.safe_load_all(manifests.render(SPEC)))
    assert stream == manifests.objects(SPEC)
    env = {e["name"]: e["value"] for e in _by_kind(stream)["Pod"]["spec"]["containers"][0]["env"]}
    assert env["E2E_FOCUS"] == r"\[Conformance\]"
    assert env["E2E_SKIP"] == r"\[Serial\]"


def test_the_service_account_is_bound_to_a_cluster_role_that_may_do_anything() -> None:
    objs = _by_kind(manifests.objects(SPEC))
    binding = objs["ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == objs["ClusterRole"]["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "conformance", "namespace": manifests.NAMESPACE}
    ]
    assert {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]} in objs["ClusterRole"]["rules"]
    assert objs["Pod"]["spec"]["serviceAccountName"] == objs["ServiceAccount"]["metadata"]["name"]


def test_the_pod_runs_go_runner_pinned_tolerant_unprivileged_and_offline() -> None:
    pod = _by_kind(manifests.objects(SPEC))["Pod"]["spec"]
    runner, output = pod["containers"]
    assert pod["nodeName"] == "cp1"
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert pod["restartPolicy"] == "Never"
    assert runner["image"] == SPEC.runner_image and "command" not in runner  # go-runner
    assert output["image"] == SPEC.output_image
    for container in (runner, output):
        assert container["imagePullPolicy"] == "Never"
        context = container["securityContext"]
        assert context["runAsNonRoot"] and context["runAsUser"] == 65534
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert not context["allowPrivilegeEscalation"]
        assert {"name": "results", "mountPath": "/tmp/results"} in container["volumeMounts"]


def test_the_repo_list_reaches_e2e_test_through_a_configmap() -> None:
    objs = _by_kind(manifests.objects(SPEC))
    runner = objs["Pod"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in runner["env"]}
    mount = next(m for m in runner["volumeMounts"] if m["name"] == "repo-list")
    key = Path(env["KUBE_TEST_REPO_LIST"]).name
    assert Path(env["KUBE_TEST_REPO_LIST"]).parent == Path(mount["mountPath"])
    assert objs["ConfigMap"]["data"][key] == SPEC.repo_list
    assert env["E2E_PROVIDER"] == "skeleton"


def test_parallel_processes_go_to_ginkgo_not_to_e2e_parallel() -> None:
    def env(**changes: Any) -> dict[str, str]:
        pod = _by_kind(manifests.objects(manifests.RunSpec(**{**SPEC.__dict__, **changes})))
        return {e["name"]: e["value"] for e in pod["Pod"]["spec"]["containers"][0]["env"]}

    assert "E2E_EXTRA_GINKGO_ARGS" not in env()
    # go-runner reads E2E_PARALLEL as a yes/no that also skips [Serial]: never set.
    assert "E2E_PARALLEL" not in env(parallel=3)
    assert env(parallel=3)["E2E_EXTRA_GINKGO_ARGS"] == "--procs=3"
    assert env(dry_run=True)["E2E_DRYRUN"] == "true"
    # ginkgo refuses a dry run in parallel.
    assert "E2E_EXTRA_GINKGO_ARGS" not in env(dry_run=True, parallel=3)


def test_ctrl_c_sends_sigint_to_pid_1_of_the_runner_container() -> None:
    args = manifests.interrupt_args()
    assert args[args.index("-c") + 1] == manifests.RUNNER
    assert args[args.index("--") + 1 :] == ["sh", "-c", "kill -INT 1"]


# --- skips ------------------------------------------------------------------------------------


def test_each_default_skip_names_one_conformance_spec_and_why() -> None:
    """Against the [Conformance] specs of v1.34.4 (`e2e.test --list-conformance-tests`)."""
    names = (FIXTURES / "conformance-specs-v1.34.4.txt").read_text().splitlines()
    assert len(names) == 424
    listed = skips.default_skips()
    assert len(listed) < 10  # issue 17's goal
    for skip in listed:
        assert [n for n in names if re.search(skip.regex, n)] != [], skip.regex
        assert len([n for n in names if re.search(skip.regex, n)]) == 1, skip.regex
        assert skip.reason, skip.regex


def test_a_skip_list_keeps_each_regex_with_the_comments_above_its_run() -> None:
    text = "# header\n\n# why one\n# (issue 17)\none\nalso\n# why three\nthree\n\nfour\n"
    assert skips.parse(text) == [
        skips.Skip("one", "why one (issue 17)"),
        skips.Skip("also", "why one (issue 17)"),
        skips.Skip("three", "why three"),
        skips.Skip("four", ""),
    ]


def test_the_skip_regex_joins_user_and_default_patterns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed = tmp_path / "skips.txt"
    listed.write_text("# container nodes\nHostPort.*different hostIP\n")
    monkeypatch.setattr(skips, "DEFAULT_SKIPS", listed)
    assert skips.skip_regex([]) == "HostPort.*different hostIP"
    assert skips.skip_regex([], use_defaults=False) == ""
    assert skips.skip_regex([r"\[Serial\]"], use_defaults=False) == r"\[Serial\]"
    assert skips.skip_regex([r"\[Serial\]"]) == r"(?:\[Serial\])|(?:HostPort.*different hostIP)"


@pytest.mark.parametrize("bad", ["[unclosed", "(?=ahead)", r"(a)\1", "two\nlines"])
def test_a_regex_ginkgo_would_refuse_is_refused_first(bad: str) -> None:
    with pytest.raises(skips.SkipListError, match="--skip"):
        skips.skip_regex([bad])


# --- progress from the log --------------------------------------------------------------------


def test_progress_of_a_recorded_run_with_failures() -> None:
    """A run of a small ginkgo suite (recorded: see fixtures/conformance/README.md) through
    ginkgo's default reporter, as go-runner tees it into e2e.log."""
    text = (FIXTURES / "ginkgo-run.log").read_text()
    progress = logscan.LogScanner().feed(text)
    assert (progress.total, progress.suite) == (6, 7)
    # 3 passes and 2 failures; the spec skipped while running and the one outside the
    # focus are both an S.
    assert progress.done == 5
    assert progress.ran == 5
    assert progress.failed == [
        "[sig-demo] conformance demo fails on purpose [Conformance]",
        "[sig-demo] conformance demo times out [Conformance]",
    ]
    assert progress.line() == "finished: 5/6 specs ran, 2 failed"
    before_the_end = text[: text.index("Summarizing")]
    assert logscan.LogScanner().feed(before_the_end).line() == "5/6 specs done, 2 failed"


def test_progress_counts_the_open_line_of_marks_and_survives_any_cut() -> None:
    text = (FIXTURES / "ginkgo-run.log").read_text()
    whole = logscan.LogScanner().feed(text)
    for size in (1, 7, 64):
        scanner = logscan.LogScanner()
        for start in range(0, len(text), size):
            last = scanner.feed(text[start : start + size])
        assert last == whole, size
    opened = logscan.LogScanner()
    opened.feed("Will run 424 of 7144 specs\n••S•")
    assert opened.feed("•S").done == 4  # S: skipped, or left out by the focus


def test_progress_of_a_recorded_dry_run_of_e2e_test() -> None:
    """e2e.test v1.34.4 under go-runner with E2E_DRYRUN, focus [sig-network].*[Conformance]."""
    progress = logscan.LogScanner().feed((FIXTURES / "e2e-dry-run.log").read_text())
    assert progress.total is not None and progress.total > 0
    assert progress.done == progress.total == progress.ran
    assert progress.failed == []


def test_before_the_suite_starts_the_line_says_so() -> None:
    assert logscan.SuiteProgress().line() == "starting (no spec list yet)"


# --- the JUnit summary ------------------------------------------------------------------------


def test_the_junit_summary_counts_each_outcome() -> None:
    summary = junit.summarize((FIXTURES / "junit_01.xml").read_text())
    assert summary.passed == 3
    assert summary.not_selected == 1
    assert summary.skipped == {
        "[sig-demo] conformance demo skips at run time [Conformance]": "no second node"
    }
    assert [(f.name, f.status, f.first_line) for f in summary.failed] == [
        (
            "[sig-demo] conformance demo fails on purpose [Conformance]",
            "failed",
            "[FAILED] Expected <int>: 1 to equal <int>: 2",  # joined from four lines
        ),
        (
            "[sig-demo] conformance demo times out [Conformance]",
            "timedout",
            "[TIMEDOUT] A spec timeout occurred",
        ),
    ]
    assert not summary.ok
    assert json.loads(json.dumps(summary.to_dict()))["failed"][0]["status"] == "failed"


def test_a_missing_or_broken_junit_report_is_named(tmp_path: Path) -> None:
    with pytest.raises(junit.JUnitError, match="wrote no JUnit report"):
        junit.read_summary(tmp_path / "junit_01.xml")
    with pytest.raises(junit.JUnitError, match="not XML"):
        junit.summarize("<testsuites")


# --- the run against a fake cluster -------------------------------------------------------------


def test_the_pod_state_reads_the_runner_exit_and_hopeless_waits() -> None:
    pod = {
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {"name": "conformance", "state": {"terminated": {"exitCode": 1}}},
                {"name": "output", "state": {"running": {}}},
            ],
        }
    }
    assert watch.pod_state(pod) == watch.PodState("Running", 1, "")
    waiting = {"status": {"phase": "Pending", "containerStatuses": [
        {"name": "conformance", "state": {"waiting": {"reason": "ErrImageNeverPull"}}}
    ]}}  # fmt: skip
    assert watch.pod_state(waiting).waiting == "conformance: ErrImageNeverPull"
    assert not watch.pod_state(waiting).finished


def test_untainted_nodes_leave_out_tainted_and_cordoned_ones() -> None:
    nodes = {
        "items": [
            {"metadata": {"name": "cp1"}, "spec": {"taints": [{"effect": "NoSchedule"}]}},
            {"metadata": {"name": "w1"}, "spec": {}},
            {"metadata": {"name": "w2"}, "spec": {"taints": [{"effect": "PreferNoSchedule"}]}},
            {"metadata": {"name": "w3"}, "spec": {"unschedulable": True}},
        ]
    }
    assert run.untainted_nodes(nodes) == ["w1", "w2"]


class FakeCluster:
    """kubectl answers for one run: the log grows by a slice a read, the runner exits
    after the last slice (or, interrupted, once SIGINT came)."""

    def __init__(self, log: bytes, slices: int, exit_after_interrupt: bool = False) -> None:
        step = -(-len(log) // slices)
        self.slices = [log[i : i + step] for i in range(0, len(log), step)]
        self.log = b""
        self.interrupted = False
        self.exit_after_interrupt = exit_after_interrupt
        self.calls: list[list[str]] = []

    def kubectl(self, lab: object, args: list[str], **_: Any) -> tuple[int, str]:
        self.calls.append(list(args))
        if args == manifests.interrupt_args():
            self.interrupted = True
            return 0, ""
        if args[: len(manifests.log_tail_args(0)) - 1] == manifests.log_tail_args(0)[:-1]:
            if self.slices and not (self.exit_after_interrupt and not self.interrupted):
                self.log += self.slices.pop(0)
            offset = int(args[-1].split("+")[1].split()[0]) - 1
            return 0, base64.encodebytes(self.log[offset:]).decode()
        raise AssertionError(f"unexpected kubectl {args}")

    def kubectl_json(self, lab: object, args: list[str], **_: Any) -> Any:
        done = not self.slices if not self.exit_after_interrupt else self.interrupted
        state = {"terminated": {"exitCode": 1}} if done else {"running": {}}
        return {
            "status": {
                "phase": "Running",
                "containerStatuses": [{"name": "conformance", "state": state}],
            }
        }


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    log = (FIXTURES / "ginkgo-run.log").read_bytes()
    cluster = FakeCluster(log, slices=5)
    monkeypatch.setattr(run.kube, "kubectl", cluster.kubectl)
    monkeypatch.setattr(run.kube, "kubectl_json", cluster.kubectl_json)
    monkeypatch.setattr(watch, "POLL_INTERVAL_S", 0)
    return cluster


def test_following_the_log_reports_progress_until_the_runner_exits(fake: FakeCluster) -> None:
    said: list[str] = []
    follower = watch.LogFollower(spec.load_lab("single"))
    state = watch.follow(follower.lab, follower, 60, lambda p: said.append(p.line()))
    assert state.exit_code == 1
    assert follower.progress.done == 5 and len(follower.progress.failed) == 2
    assert said[-1] == "finished: 5/6 specs ran, 2 failed"


def test_ctrl_c_interrupts_go_runner_and_still_collects(
    fake: FakeCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake.exit_after_interrupt = True
    polls = {"n": 0}
    real_poll = watch.poll

    def poll_then_ctrl_c(*args: Any, **kwargs: Any) -> Any:
        polls["n"] += 1
        if polls["n"] == 1:
            raise KeyboardInterrupt
        return real_poll(*args, **kwargs)

    collected: list[Path] = []
    monkeypatch.setattr(watch, "poll", poll_then_ctrl_c)
    monkeypatch.setattr(watch, "wait_started", lambda lab: None)
    monkeypatch.setattr(
        results, "collect", lambda lab, node, reports: collected.append(reports) or []
    )
    result = run.Result("single", tmp_path, 0.0, logscan.SuiteProgress())
    run._run_and_collect(spec.load_lab("single"), SPEC, result, run.SILENT)
    assert manifests.interrupt_args() in fake.calls
    assert result.interrupted and result.exit_code == 1
    assert collected == [tmp_path]
    assert not result.passed


def test_the_log_follower_keeps_characters_cut_between_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = "Will run 3 of 9 specs\n•••\n".encode()
    cut = log.index("•".encode()) + 1  # inside the first mark's three bytes
    cluster = FakeCluster(log, slices=1)
    cluster.slices = [log[:cut], log[cut:]]
    monkeypatch.setattr(run.kube, "kubectl", cluster.kubectl)
    follower = watch.LogFollower(spec.load_lab("single"))
    assert follower.read().done == 0
    assert follower.read().done == 3


# --- the command --------------------------------------------------------------------------------


def test_the_command_refuses_a_bad_lab_argument_in_one_line() -> None:
    result = CliRunner().invoke(main, ["conformance", "bad;name"])
    assert result.exit_code == 1
    assert result.output.startswith("error: LAB 'bad;name' is neither a lab name")


def test_the_command_names_the_build_when_the_bundle_lacks_the_part(
    tmp_path: Path, isolated_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("K8SLAB_CACHE_DIR", str(tmp_path / "cache"))
    result = CliRunner().invoke(main, ["conformance", "single", "--focus", "sig-network"])
    assert result.exit_code == 1
    assert "run `k8slab bundle build --kubernetes v1.34.4 --with conformance`" in result.output


def test_the_command_refuses_a_focus_ginkgo_would_refuse_before_anything_runs(
    isolated_state: Path,
) -> None:
    result = CliRunner().invoke(main, ["conformance", "single", "--focus", "(?!x)"])
    assert result.exit_code == 1
    assert "--focus" in result.output and "not RE2" in result.output


def test_only_regular_files_inside_the_reports_folder_are_extracted(tmp_path: Path) -> None:
    import io
    import tarfile

    archive = tmp_path / "results.tar"
    with tarfile.open(archive, "w") as tar:
        for name, data in (("./e2e.log", b"log"), ("../escape", b"x"), ("/etc/abs", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("./link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    into = tmp_path / "reports"
    assert results.extract_files(archive, into) == ["e2e.log"]
    assert sorted(p.name for p in into.rglob("*")) == ["e2e.log"]
    assert not (tmp_path / "escape").exists()


def test_a_dry_run_passes_without_a_junit_report(tmp_path: Path) -> None:
    dry = run.Result("single", tmp_path, 1.0, logscan.SuiteProgress(3, 9, 3, [], 3), exit_code=0)
    dry.dry_run = True
    assert dry.passed
    assert run.summary_lines(dry)[0] == "dry run: finished: 3/3 specs ran"
    real = run.Result("single", tmp_path, 1.0, logscan.SuiteProgress(), exit_code=0)
    assert not real.passed  # no summary: e2e.test wrote no JUnit report
