"""Pure logic of the drills: probe logs, gaps, the probe scripts, reports, CLI errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from toolkit import drills, kube
from toolkit.cli import main
from toolkit.constants import PARKED_MANIFESTS_DIR
from toolkit.drills import backup_restore, lab_ops, member_loss, probes
from toolkit.drills.report import DrillResult, render_markdown, write_reports
from toolkit.etcd.manifest import SnapshotManifest
from toolkit.etcd.snapshots import snapshot_name, write_sidecars
from toolkit.etcd.topology import Topology
from toolkit.hosts import remote
from toolkit.hosts.ssh import SshTarget
from toolkit.lab.spec import Lab, load_lab
from toolkit.progress import Progress
from toolkit.verify import VerifyReport
from toolkit.versions import release


def samples(*rows: tuple[float, str]) -> list[probes.Sample]:
    return [probes.Sample(at, n, code) for n, (at, code) in enumerate(rows, 1)]


def test_probe_log_lines_are_parsed_and_junk_skipped() -> None:
    text = "1764115200.100 1 200\n1764115200.300 2 000\ngarbage\n1764115200.5 x 200\ndone\n"
    parsed = probes.parse_samples(text)
    assert [(s.seq, s.code, s.ok) for s in parsed] == [(1, "200", True), (2, "000", False)]


def test_longest_gap_is_between_consecutive_successes() -> None:
    log = samples(
        (0.0, "200"), (0.1, "200"), (0.2, "000"), (2.0, "503"), (4.6, "200"), (4.7, "200")
    )
    assert round(probes.longest_gap(log), 3) == 4.5
    assert round(probes.longest_gap(log, since=4.0), 3) == 0.1


def test_without_any_success_the_gap_is_the_whole_span() -> None:
    assert probes.longest_gap(samples((1.0, "000"), (9.0, "503"))) == 8.0
    assert probes.longest_gap([]) == 0.0


def test_gap_around_an_event() -> None:
    log = samples((0.0, "201"), (1.0, "201"), (2.0, "500"), (6.0, "201"))
    assert probes.gap_around(log, 1.5) == 5.0
    assert probes.gap_around(log, 7.0) == float("inf")


def test_the_probe_loop_is_bounded_and_logs_what_it_saw(tmp_path: Path) -> None:
    # The script runs here with a request that needs no network: bounded by count.
    script = probes.loop_script("t", "echo 204", max_count=3, max_seconds=30, interval=0)
    script = script.replace(probes.DRILL_DIR, str(tmp_path))
    subprocess.run(["sh", "-c", script], check=True, timeout=30)
    lines = (tmp_path / "t.log").read_text().splitlines()
    assert [line.split()[1:] for line in lines] == [["1", "204"], ["2", "204"], ["3", "204"]]
    assert (tmp_path / "t.log.done").exists()


def test_the_probe_loop_stops_at_its_stop_file(tmp_path: Path) -> None:
    script = probes.loop_script("t", "echo 200", max_count=1000, max_seconds=30, interval=0)
    script = script.replace(probes.DRILL_DIR, str(tmp_path))
    (tmp_path / "t.stop").touch()
    subprocess.run(["sh", "-c", script], check=True, timeout=30)
    assert not (tmp_path / "t.log").exists()


def test_write_request_posts_a_configmap_with_a_server_side_timeout() -> None:
    lab = load_lab("ha-stacked")
    request = probes.write_request(lab, "ns", "w", timeout_s=5)
    assert "https://172.30.2.100:8443/api/v1/namespaces/ns/configmaps?timeout=4s" in request
    assert "--max-time 5" in request
    # the body, once the shell has expanded $i, is the ConfigMap w-<i> with seq <i>
    body = subprocess.run(
        ["sh", "-c", 'i=7; printf %s "' + request.split('-d "')[1].split('" ')[0] + '"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(body) == json.loads(probes.configmap_body("w-7", "7"))


def test_a_timed_write_can_go_straight_to_one_api_server() -> None:
    lab = load_lab("ha-stacked")
    request = probes.write_request(
        lab, "ns", "q", 20, endpoint="172.30.2.11:6443", server_timeout_s=10, write_out="%{x}"
    )
    assert "https://172.30.2.11:6443/api/v1/namespaces/ns/configmaps?timeout=10s" in request
    assert "--max-time 20" in request and "-w '%{x}'" in request


def test_timed_writes_tell_an_error_from_a_hang(tmp_path: Path) -> None:
    # Stand-ins for curl: the API server's 504 after its deadline, the load balancer
    # closing the connection (curl 35), and a client bound running out (curl 28).
    requests = {
        "direct": "echo 504 10.12",
        "vip": "sh -c 'echo 000 0.01; exit 35'",
        "slow": "sh -c 'echo 000 20.00; exit 28'",
    }
    script = probes.timed_writes_script(requests, count=2, interval=0)
    output = subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    answers = probes.parse_answers(output + "junk line\n")
    assert [(a.route, a.seq) for a in answers] == [
        ("direct", 1),
        ("direct", 2),
        ("vip", 1),
        ("vip", 2),
        ("slow", 1),
        ("slow", 2),
    ]
    direct, vip, slow = answers[0], answers[2], answers[4]
    assert direct.http_error and not direct.ok and not direct.hung and direct.seconds == 10.12
    assert not vip.http_error and not vip.hung and vip.curl_exit == 35
    assert slow.hung and not slow.http_error
    assert str(direct) == "direct#1 504 10.1s curl=0"


def test_report_passes_only_when_every_check_passes(tmp_path: Path, isolated_state: Path) -> None:
    good = DrillResult("member-loss", "dev", "stacked", "2026-11-26T00:00:00+00:00", 42.0)
    good.check("writes resumed", True)
    good.timings["write_gap_s"] = 1.5
    bad = DrillResult("quorum-loss", "dev", "stacked", "2026-11-26T00:01:00+00:00", 80.0)
    bad.check("no write succeeds without quorum", False, "HTTP codes: ['201']")
    empty = DrillResult("backup-restore", "dev", "stacked", "2026-11-26T00:02:00+00:00")
    assert good.passed and not bad.passed and not empty.passed
    markdown = render_markdown([good, bad])
    assert "| member-loss | PASS | 42.0s | write_gap_s 1.5s |" in markdown
    assert "- [ ] no write succeeds without quorum: HTTP codes: ['201']" in markdown
    json_path, md_path = write_reports("dev", [good, bad])
    assert json_path.parent == isolated_state / "dev" / "reports"
    payload = json.loads(json_path.read_text())
    assert payload["passed"] is False
    assert [d["passed"] for d in payload["drills"]] == [True, False]
    assert md_path.read_text() == markdown


def test_an_all_run_cut_short_keeps_the_drills_that_ended(
    isolated_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_drill(lab: Lab, name: str, progress: Progress) -> DrillResult:
        if name == "quorum-loss":
            raise KeyboardInterrupt
        result = DrillResult(name, lab.name, lab.etcd_topology, "2026-11-26T04:00:00+00:00")
        result.check("it went well", True)
        return result

    monkeypatch.setattr(drills, "run_drill", fake_drill)
    seen: list[DrillResult] = []
    with pytest.raises(KeyboardInterrupt):
        drills.run_drills(load_lab("ha-stacked"), list(drills.DRILL_NAMES), on_result=seen.append)
    assert [r.drill for r in seen] == ["backup-restore", "member-loss"]
    [json_path] = (isolated_state / "ha-stacked" / "reports").glob("drill-all-*.json")
    payload = json.loads(json_path.read_text())
    assert [d["drill"] for d in payload["drills"]] == ["backup-restore", "member-loss"]
    assert json_path.with_suffix(".md").read_text().count("| PASS |") == 2


def test_drill_needs_a_name_or_all() -> None:
    result = CliRunner().invoke(main, ["drill", "ha-stacked"])
    assert result.exit_code == 2
    assert "name one drill" in result.output


def test_unknown_drill_is_refused_with_the_choices() -> None:
    result = CliRunner().invoke(main, ["drill", "ha-stacked", "meteor"])
    assert result.exit_code == 2
    assert "member-loss" in result.output


def test_restore_refuses_a_snapshot_of_another_lab_before_touching_anything(
    tmp_path: Path, isolated_state: Path
) -> None:
    snapshot = tmp_path / snapshot_name("single", 1_795_000_000)
    snapshot.write_bytes(b"not really a snapshot")
    manifest = SnapshotManifest(
        "single",
        "stacked",
        snapshot.name,
        "2026-11-18T11:06:40+00:00",
        "cp1",
        9,
        1,
        1,
        21,
        "0" * 64,
        "3.6.5",
        "v1.34.4",
    )
    write_sidecars(snapshot, manifest)
    result = CliRunner().invoke(main, ["etcd", "restore", "ha-stacked", str(snapshot), "--yes"])
    assert result.exit_code == 1
    assert "snapshot of lab 'single', not 'ha-stacked'" in result.output


def test_backups_of_a_lab_without_any(isolated_state: Path) -> None:
    result = CliRunner().invoke(main, ["etcd", "backups", "ha-stacked"])
    assert result.exit_code == 0
    assert "no snapshots; run `k8slab etcd backup ha-stacked`" in result.output


def test_keep_must_be_positive() -> None:
    result = CliRunner().invoke(main, ["etcd", "backup", "ha-stacked", "--keep", "0"])
    assert result.exit_code == 2


KUBEADM_ETCD_MANIFEST = """\
spec:
  containers:
  - command:
    - etcd
    - --data-dir=/var/lib/etcd
    - --initial-advertise-peer-urls=https://172.30.2.11:2380
    - --initial-cluster=cp1=https://172.30.2.11:2380
    - --key-file=/etc/kubernetes/pki/etcd/server.key
"""
EXTERNAL_ETCD_CONFIG = """\
name: etcd1
initial-cluster: etcd1=https://172.30.3.31:2380,etcd2=https://172.30.3.32:2380
initial-cluster-token: ha-external-etcd
initial-cluster-state: new
"""


def rejoin(topology: str, text: str, tmp_path: Path) -> str:
    lab = load_lab("ha-stacked" if topology == "stacked" else "ha-external")
    command = member_loss.rejoin_config_command(Topology(lab), "a=https://x:2380,b=https://y:2380")
    target = tmp_path / "config"
    target.write_text(text)
    for real in (f"{PARKED_MANIFESTS_DIR}/etcd.yaml", member_loss.EXTERNAL_CONFIG):
        command = command.replace(real, str(target))
    subprocess.run(["sh", "-c", command], check=True, timeout=30)
    return target.read_text()


def test_a_replaced_stacked_member_joins_the_existing_cluster(tmp_path: Path) -> None:
    text = rejoin("stacked", KUBEADM_ETCD_MANIFEST, tmp_path)
    assert "    - --initial-cluster=a=https://x:2380,b=https://y:2380\n" in text
    assert "    - --initial-cluster-state=existing\n" in text
    assert text.count("--initial-cluster-state") == 1
    assert "    - --key-file=/etc/kubernetes/pki/etcd/server.key\n" in text
    again = rejoin("stacked", text, tmp_path)
    assert again.count("--initial-cluster-state=existing") == 1


def test_a_replaced_external_member_joins_the_existing_cluster(tmp_path: Path) -> None:
    text = rejoin("external", EXTERNAL_ETCD_CONFIG, tmp_path)
    assert "initial-cluster: a=https://x:2380,b=https://y:2380\n" in text
    assert "initial-cluster-state: existing\n" in text
    assert "initial-cluster-token: ha-external-etcd\n" in text


def test_collecting_a_probe_without_stopping_it_lets_it_finish(tmp_path: Path) -> None:
    script = probes.loop_script("t", "echo 503", max_count=3, max_seconds=30, interval=0.2)
    collect = probes.stop_command("t", wait_s=10, ask=False)
    script, collect = (s.replace(probes.DRILL_DIR, str(tmp_path)) for s in (script, collect))
    with subprocess.Popen(["sh", "-c", script]) as loop:
        output = subprocess.run(
            ["sh", "-c", collect], capture_output=True, text=True, check=True, timeout=30
        ).stdout
        loop.wait(timeout=30)
    assert [s.seq for s in probes.parse_samples(output)] == [1, 2, 3]
    assert not (tmp_path / "t.stop").exists()


READYZ_OK = "[+]ping ok\n[+]etcd ok\nreadyz check passed\n"
READYZ_ETCD_FAILED = "[+]ping ok\n[-]etcd failed: reason withheld\nreadyz check failed\n"


def test_the_health_gate_asks_every_api_server_its_own_readyz(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The member-loss drill once declared a lab healthy through the VIP while cp3's own
    # API server answered "[-]etcd failed"; the gate must see each server, not the VIP.
    lab = load_lab("ha-stacked")
    asked: list[tuple[str, str]] = []

    def fake_run_command(target: SshTarget, command: str, timeout: float = 30) -> tuple[int, str]:
        asked.append((target.name, command))
        return 0, (f"=== cp1\n{READYZ_OK}=== cp2\n{READYZ_OK}=== cp3\n{READYZ_ETCD_FAILED}")

    monkeypatch.setattr(remote, "run_command", fake_run_command)
    problems = kube.apiservers_not_ready(lab)
    assert problems == ["the API server on cp3 is not ready: [-]etcd failed: reason withheld"]
    ((on, script),) = asked
    assert on == "cp1"
    for cp in lab.control_planes:
        assert f"https://{cp.address}:6443/readyz?verbose" in script
    assert "--cacert /etc/kubernetes/pki/ca.crt" in script and " -k" not in script


def test_an_api_server_that_does_not_answer_is_not_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    lab = load_lab("ha-stacked")
    output = f"=== cp1\n{READYZ_OK}=== cp2\ncurl: (7) Failed to connect to 172.30.2.12 port 6443\n"
    monkeypatch.setattr(remote, "run_command", lambda *a, **k: (7, output))
    assert kube.apiservers_not_ready(lab) == [
        "the API server on cp2 is not ready: curl: (7) Failed to connect to 172.30.2.12 port 6443",
        "the API server on cp3 is not ready: no answer",
    ]


def test_a_drill_removes_its_probe_files_from_every_node_even_when_it_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The probes decode admin.conf's client key into DRILL_DIR; it must not outlive them.
    lab = load_lab("ha-stacked")
    removed: list[str] = []

    def fake_root(lab: Lab, node: object, script: str, timeout: float = 60) -> str:
        if script == f"rm -rf {probes.DRILL_DIR}":
            removed.append(node.name)  # type: ignore[attr-defined]
        return ""

    def failing_drill(lab: Lab, result: DrillResult, progress: Progress) -> None:
        raise drills.DrillError("broke halfway")

    monkeypatch.setattr(lab_ops.remote, "root", fake_root)
    monkeypatch.setattr(drills, "wait_healthy", lambda lab, deadline_s=300: 0.0)
    monkeypatch.setitem(drills.DRILLS, "member-loss", failing_drill)

    def verify(lab: Lab) -> VerifyReport:
        raise drills.DrillError("verify not run here")

    result = drills.run_drill(lab, "member-loss", verify=verify)
    assert result.error == "broke halfway"
    assert sorted(removed) == sorted(n.name for n in lab.control_planes + lab.workers)


def test_what_the_drills_wait_for_in_a_probe_log() -> None:
    log = samples((10.0, "201"), (11.0, "201"), (12.0, "000"), (15.0, "201"), (21.5, "201"))
    assert probes.acknowledged_after(log, 0) == 4
    assert probes.acknowledged_after(log, 12.0) == 2
    assert probes.answered_for(log, 12.0) == 6.5
    assert probes.answered_for(log, 30.0) == 0.0


def test_reading_a_probe_log_leaves_the_probe_running(tmp_path: Path) -> None:
    (tmp_path / "t.log").write_text("1764115200.100 1 200\n")
    read = probes.read_command("t").replace(probes.DRILL_DIR, str(tmp_path))
    output = subprocess.run(["sh", "-c", read], capture_output=True, text=True, check=True).stdout
    assert [s.seq for s in probes.parse_samples(output)] == [1]
    assert not (tmp_path / "t.stop").exists()
    missing = probes.read_command("gone").replace(probes.DRILL_DIR, str(tmp_path))
    assert subprocess.run(["sh", "-c", missing], capture_output=True, check=True).stdout == b""


def test_the_sentinel_runs_the_pause_image_of_the_labs_release() -> None:
    lab = load_lab("ha-stacked")
    image = release(lab.kubernetes_version).pause_image
    assert image == f"registry.k8s.io/pause:{release(lab.kubernetes_version).pause}"
    docs = [
        json.loads(doc)
        for doc in backup_restore.sentinel_manifest("ns", "t", image).split("\n---\n")
    ]
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == image


def test_every_drill_is_registered_once_under_its_name() -> None:
    assert drills.DRILL_NAMES == (
        "backup-restore",
        "member-loss",
        "quorum-loss",
        "control-plane-loss",
    )
    assert drills.DRILLS["member-loss"] is member_loss.run
