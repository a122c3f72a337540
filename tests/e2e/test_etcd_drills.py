"""End to end and destructive: etcd backup and restore, refused snapshots, and every drill,
on real labs ($K8SLAB_DRILL_LABS, names or lab.yml paths; default: ha-stacked).

K8SLAB_E2E_REUSE=1 uses labs that are already up; K8SLAB_KEEP_LABS=1 leaves them up.
The drills marked `ci_drill` (backup-restore, member-loss) also run in scripts/test's
`-m "not destructive or ci_drill"`, last, on the lab the session's e2e tests brought up.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.e2e.conftest import DRILL_LABS, DRILL_SUMMARIES, LabPool
from toolkit import kube
from toolkit.cli import main
from toolkit.constants import ETCD_DATA_DIR
from toolkit.drills import DRILL_NAMES, DrillError, run_drill, run_drills
from toolkit.drills.lab_ops import health_problems, wait_healthy
from toolkit.etcd import SnapshotError, backup, list_backups, restore
from toolkit.etcd.journal import journal_path
from toolkit.etcd.snapshots import file_sha256, manifest_path, sha256_line, sha256_path
from toolkit.etcd.steps import start_etcd, stop_etcd
from toolkit.etcd.topology import Topology, running_containers_command
from toolkit.hosts import remote
from toolkit.lab.spec import Lab

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.destructive]


@pytest.fixture(scope="module", params=DRILL_LABS)
def lab(request: pytest.FixtureRequest, lab_pool: LabPool) -> Lab:
    return lab_pool.get(request.param)


def untouched(lab: Lab) -> list[str]:
    """What is wrong if a refused restore changed anything: every API server and etcd still
    running, no restored data directory left behind, the lab healthy."""
    problems = []
    for cp in lab.control_planes:
        _, running = remote.try_root(lab, cp, running_containers_command(["kube-apiserver"]))
        if not running.strip():
            problems.append(f"{cp.name}: kube-apiserver not running")
    for member in Topology(lab).members:
        _, leftovers = remote.try_root(
            lab, member.node, f"ls -d {ETCD_DATA_DIR}.restored-* 2>/dev/null"
        )
        if leftovers.strip():
            problems.append(f"{member.name}: staged data left: {leftovers.strip()}")
    return problems + health_problems(lab)


def copy_snapshot(source: Path, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    for path in (source, sha256_path(source), manifest_path(source)):
        shutil.copy(path, into / path.name)
    return into / source.name


def test_backup_from_a_follower_listed_and_pruned(lab: Lab) -> None:
    results = [backup(lab, keep=2) for _ in range(3)]
    listed = list_backups(lab.name)
    assert [e.path for e in listed][-2:] == [r.path for r in results[1:]]
    assert len(listed) == 2
    newest = results[-1].manifest
    assert newest.lab == lab.name and newest.revision > 0 and newest.total_keys > 0
    assert newest.member in {m.name for m in Topology(lab).members}
    assert file_sha256(results[-1].path) == newest.sha256
    cli = CliRunner().invoke(main, ["etcd", "backups", lab.source.as_posix()])
    assert cli.exit_code == 0 and results[-1].path.name in cli.output


def test_a_corrupted_snapshot_is_refused_with_nothing_stopped(lab: Lab, tmp_path: Path) -> None:
    snapshot = copy_snapshot(backup(lab).path, tmp_path)
    data = bytearray(snapshot.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 8] = b"CORRUPT!"
    snapshot.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match="corrupted or truncated"):
        restore(lab, snapshot)
    assert untouched(lab) == []


def test_a_truncated_snapshot_with_a_matching_checksum_is_refused_on_the_members(
    lab: Lab, tmp_path: Path
) -> None:
    # Whoever truncated it also rewrote the checksums: etcdutl's own hash check catches it.
    snapshot = copy_snapshot(backup(lab).path, tmp_path)
    snapshot.write_bytes(snapshot.read_bytes()[: snapshot.stat().st_size // 2])
    digest = file_sha256(snapshot)
    sha256_path(snapshot).write_text(sha256_line(digest, snapshot.name))
    manifest = json.loads(manifest_path(snapshot).read_text())
    manifest_path(snapshot).write_text(json.dumps({**manifest, "sha256": digest}))
    with pytest.raises(SnapshotError, match="refused before anything was stopped"):
        restore(lab, snapshot)
    assert untouched(lab) == []


def test_a_snapshot_of_another_lab_is_refused(lab: Lab, tmp_path: Path) -> None:
    snapshot = copy_snapshot(backup(lab).path, tmp_path)
    manifest = json.loads(manifest_path(snapshot).read_text())
    manifest_path(snapshot).write_text(json.dumps({**manifest, "lab": "some-other-lab"}))
    result = CliRunner().invoke(main, ["etcd", "restore", str(lab.source), str(snapshot), "--yes"])
    assert result.exit_code == 1
    assert f"snapshot of lab 'some-other-lab', not '{lab.name}'" in result.output
    assert untouched(lab) == []


def test_a_drill_refuses_to_start_on_an_unhealthy_lab(lab: Lab) -> None:
    topo = Topology(lab)
    last = topo.members[-1]
    stop_etcd(topo, [last.node])
    try:
        with pytest.raises(
            DrillError, match=r"drill member-loss does not start: lab .* is not healthy"
        ):
            run_drill(lab, "member-loss")
    finally:
        start_etcd(topo, [last.node])
    wait_healthy(lab, 300)


def marker_exists(lab: Lab, name: str) -> bool:
    status, output = kube.kubectl(lab, ["get", "configmap", name, "-n", "default", "-o", "name"])
    assert status == 0 or "NotFound" in output, output
    return status == 0


def journal_of(lab: Lab) -> dict[str, object]:
    path = journal_path(lab.name)
    return json.loads(path.read_text()) if path.exists() else {}


def interrupted_restore(lab: Lab, snapshot: Path, in_step: str) -> str:
    """Run `k8slab etcd restore` as its own process, SIGTERM it once the journal says it is
    in ``in_step``, and return what it printed (it must exit non-zero)."""
    command = [str(Path(sys.executable).with_name("k8slab")), "etcd", "restore"]
    process = subprocess.Popen(
        [*command, str(lab.source), str(snapshot), "--yes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while journal_of(lab).get("step") != in_step and process.poll() is None:
            assert time.monotonic() < deadline, f"the restore never reached {in_step}"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode != 0, output
    return output


@pytest.mark.ci_drill
def test_an_interrupted_restore_is_rolled_back_or_resumed_from_its_journal(lab: Lab) -> None:
    """SIGTERM in the middle of a restore: the journal and the advice say what each host
    went through; --rollback brings back the data from before, --resume the snapshot's."""
    taken = backup(lab)
    marker = f"written-after-the-snapshot-{int(time.time())}"
    kube.kubectl_ok(lab, ["create", "configmap", marker, "-n", "default"])

    output = interrupted_restore(lab, taken.path, "etcd-stopped")
    assert "interrupted by SIGTERM" in output and "--rollback" in output, output
    assert journal_of(lab)["state"] == "interrupted"
    cli = CliRunner().invoke(main, ["etcd", "restore", str(lab.source), "--rollback"])
    assert cli.exit_code == 0, cli.output
    assert journal_of(lab)["state"] == "rolled-back"
    assert marker_exists(lab, marker), "a rollback keeps what was written after the snapshot"
    assert untouched(lab) == []

    output = interrupted_restore(lab, taken.path, "etcd-started")
    assert "--resume" in output, output
    cli = CliRunner().invoke(main, ["etcd", "restore", str(lab.source), "--resume"])
    assert cli.exit_code == 0, cli.output
    assert journal_of(lab)["state"] == "finished"
    assert not marker_exists(lab, marker), "the snapshot predates the marker"
    assert health_problems(lab) == []


CI_DRILLS = ("backup-restore", "member-loss")


@pytest.mark.parametrize(
    "drill",
    [pytest.param(d, marks=[pytest.mark.ci_drill] if d in CI_DRILLS else []) for d in DRILL_NAMES],
)
def test_drill_passes(lab: Lab, drill: str) -> None:
    (result,), json_path, md_path = run_drills(lab, [drill])
    timings = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in result.timings.items())
    DRILL_SUMMARIES.append(
        f"{lab.name} {drill}: {'PASS' if result.passed else 'FAIL'} in {result.seconds:.1f}s"
        f" ({timings}); {md_path.name}"
    )
    failed = [f"{c.name}: {c.detail}" for c in result.checks if not c.ok]
    assert result.passed, f"{result.error or ''} {failed} (report {md_path})"
    assert json.loads(json_path.read_text())["passed"] is True
