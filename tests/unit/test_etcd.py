"""Pure logic of etcd backup and restore: etcd's JSON, manifests, pruning, rollback advice."""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import shlex
from importlib.resources.abc import Traversable
from pathlib import Path

import pytest

from toolkit.constants import ETCD_WORK_DIR
from toolkit.etcd.manifest import SnapshotError, SnapshotManifest
from toolkit.etcd.snapshots import (
    checked_manifest,
    list_backups,
    manifest_path,
    prune,
    resolve,
    sha256_path,
    snapshot_name,
    stamp_of,
    to_prune,
    write_sidecars,
)
from toolkit.etcd.staging import RestorePlan, stage
from toolkit.etcd.status import (
    EtcdError,
    MemberInfo,
    active_peers,
    cluster_health,
    inactive_peers,
    parse_endpoint_status,
    parse_member_list,
    parse_snapshot_status,
)
from toolkit.etcd.topology import Member, Topology
from toolkit.hosts import remote
from toolkit.lab.spec import Lab, Node, load_lab

# Captured from etcd 3.6.5 (the bundle's etcdctl/etcdutl) on loopback.
STATUS_ONE = (
    '{"Endpoint":"https://172.30.13.11:2379","Status":{"header":{"cluster_id":1,'
    '"member_id":111,"revision":812,"raft_term":3},"version":"3.6.5","dbSize":20480,'
    '"leader":222,"raftIndex":5,"raftTerm":3,"raftAppliedIndex":5}}'
)
STATUS_TWO = STATUS_ONE.replace("172.30.13.11", "172.30.13.12").replace(
    '"member_id":111', '"member_id":222'
)
STATUS_THREE = STATUS_ONE.replace("172.30.13.11", "172.30.13.13").replace(
    '"member_id":111', '"member_id":333'
)
ENDPOINTS = [f"https://172.30.13.{n}:2379" for n in (11, 12, 13)]
WARN_LINE = '{"level":"warn","ts":"2026-11-25T23:53:29Z","msg":"retrying of unary invoker"}'


def test_endpoint_status_reads_member_leader_and_revision() -> None:
    (status,) = parse_endpoint_status(f"[{STATUS_ONE}]")
    assert (status.member_id, status.leader_id, status.revision) == (111, 222, 812)
    assert status.version == "3.6.5"


def test_a_healthy_cluster_has_every_member_and_one_leader() -> None:
    health = cluster_health(f"[{STATUS_ONE},{STATUS_TWO},{STATUS_THREE}]", ENDPOINTS)
    assert health.healthy, health.problems
    assert health.leader_endpoint == ENDPOINTS[1]
    assert health.followers() == [ENDPOINTS[0], ENDPOINTS[2]]


def test_a_silent_member_is_named_even_though_etcdctl_repeats_another_entry() -> None:
    # etcdctl prints an earlier entry again in place of an endpoint that did not answer.
    health = cluster_health(f"{WARN_LINE}\n[{STATUS_ONE},{STATUS_TWO},{STATUS_ONE}]", ENDPOINTS)
    assert not health.healthy
    assert health.problems == [f"{ENDPOINTS[2]} does not answer"]


def test_members_without_a_leader_or_disagreeing_are_unhealthy() -> None:
    no_leader = STATUS_ONE.replace('"leader":222', '"leader":0')
    health = cluster_health(f"[{no_leader}]", ENDPOINTS[:1])
    assert "a member has no leader" in health.problems
    other = STATUS_TWO.replace('"leader":222', '"leader":333')
    health = cluster_health(f"[{STATUS_ONE},{other},{STATUS_THREE}]", ENDPOINTS)
    assert any("disagree" in p for p in health.problems)


def test_no_answer_at_all_is_unhealthy() -> None:
    health = cluster_health("", ENDPOINTS)
    assert len(health.problems) == 3


def test_member_list_and_hex_ids() -> None:
    text = json.dumps(
        {
            "header": {"cluster_id": 1},
            "members": [
                {
                    "ID": 13668033151171901709,
                    "name": "cp1",
                    "peerURLs": ["https://172.30.13.11:2380"],
                    "clientURLs": ["https://172.30.13.11:2379"],
                },
                {"ID": 42, "peerURLs": ["https://172.30.13.12:2380"], "isLearner": True},
            ],
        }
    )
    first, second = parse_member_list(text)
    assert first.name == "cp1" and first.hex_id == "bdae9bbc11dd390d"
    assert second.name == "" and second.learner and second.client_urls == ()


METRICS = """# HELP etcd_network_active_peers The current number of active peer connections.
# TYPE etcd_network_active_peers gauge
etcd_network_active_peers{Local="bdae9bbc11dd390d",Remote="2a"} 1
etcd_network_active_peers{Local="bdae9bbc11dd390d",Remote="2b"} 0
etcd_network_disconnected_peers_total{Local="bdae9bbc11dd390d",Remote="2b"} 1
"""


def member(hex_id: str, name: str) -> MemberInfo:
    return MemberInfo(int(hex_id, 16), name, (), (), False)


def test_a_member_reports_which_peer_links_are_active() -> None:
    assert active_peers(METRICS) == {"2a": 1.0, "2b": 0.0}
    members = [member("bdae9bbc11dd390d", "cp1"), member("2a", "cp2"), member("2b", "cp3")]
    # cp3's link failed and did not come back; a peer never reached has no sample at all.
    assert inactive_peers(METRICS, members, "cp1") == ["cp3"]
    assert inactive_peers(METRICS, [*members, member("2c", "")], "cp1") == ["2c", "cp3"]
    # No answer from the member (curl failed): no peer is shown active, so none counts.
    assert inactive_peers("curl: (7) Failed to connect", members, "cp1") == ["cp2", "cp3"]
    assert inactive_peers("", members[:1], "cp1") == []


def test_snapshot_status() -> None:
    status = parse_snapshot_status(
        '{"hash":943956090,"revision":2,"totalKey":1,"totalSize":20480,"version":"3.6.0"}'
    )
    assert (status.hash, status.revision, status.total_keys) == (943956090, 2, 1)


def test_no_json_is_a_clear_error() -> None:
    with pytest.raises(EtcdError, match="no JSON in the output of etcdutl snapshot status"):
        parse_snapshot_status("Error: snapshot missing hash")


# --- the backup directory --------------------------------------------------------------


def manifest_for(lab: str, path: Path, **changes: object) -> SnapshotManifest:
    data = path.read_bytes()
    fields: dict[str, object] = {
        "lab": lab,
        "topology": "stacked",
        "file": path.name,
        "created_at": "2026-11-25T23:50:00+00:00",
        "member": "cp2",
        "revision": 812,
        "total_keys": 1,
        "hash": 943956090,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "etcd_version": "3.6.5",
        "kubernetes_version": "v1.34.4",
    }
    fields.update(changes)
    return SnapshotManifest(**fields)  # type: ignore[arg-type]


def make_snapshot(directory: Path, lab: str, when: float, content: bytes = b"snap") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / snapshot_name(lab, when)
    path.write_bytes(content)
    write_sidecars(path, manifest_for(lab, path))
    return path


def test_names_carry_the_lab_and_a_utc_stamp() -> None:
    name = snapshot_name("dev", 1_795_000_000)
    assert name == "dev-etcd-20261118T110640Z.db"
    assert stamp_of(name) is not None and stamp_of(name).timestamp() == 1_795_000_000  # type: ignore[union-attr]
    assert stamp_of("notes.db") is None


def test_manifest_round_trips_and_names_missing_fields(tmp_path: Path) -> None:
    path = make_snapshot(tmp_path, "dev", 1_795_000_000)
    manifest = manifest_for("dev", path)
    assert SnapshotManifest.from_json(manifest.to_json(), path) == manifest
    broken = json.loads(manifest.to_json())
    del broken["revision"]
    with pytest.raises(SnapshotError, match="missing revision"):
        SnapshotManifest.from_json(json.dumps(broken), path)


def test_an_intact_snapshot_of_this_lab_is_accepted(tmp_path: Path) -> None:
    path = make_snapshot(tmp_path, "dev", 1_795_000_000)
    assert checked_manifest(path, "dev").member == "cp2"


def test_a_snapshot_of_another_lab_is_refused(tmp_path: Path) -> None:
    path = make_snapshot(tmp_path, "other", 1_795_000_000)
    with pytest.raises(SnapshotError, match="snapshot of lab 'other', not 'dev'"):
        checked_manifest(path, "dev")


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_snapshot_is_refused(tmp_path: Path, damage: str) -> None:
    path = make_snapshot(tmp_path, "dev", 1_795_000_000, b"0123456789" * 100)
    data = path.read_bytes()
    path.write_bytes(data[:500] if damage == "truncate" else data[:10] + b"X" + data[11:])
    with pytest.raises(SnapshotError, match="corrupted or truncated"):
        checked_manifest(path, "dev")


def test_a_snapshot_without_its_sidecars_is_refused(tmp_path: Path) -> None:
    path = make_snapshot(tmp_path, "dev", 1_795_000_000)
    path.with_name(path.name + ".sha256").unlink()
    with pytest.raises(SnapshotError, match=r"\.sha256: missing"):
        checked_manifest(path, "dev")


def test_prune_keeps_the_newest(tmp_path: Path) -> None:
    paths = [make_snapshot(tmp_path, "dev", 1_795_000_000 + 60 * n) for n in range(4)]
    (tmp_path / "notes.db").write_bytes(b"not ours")
    assert to_prune([p.name for p in reversed(paths)], 2) == [paths[0].name, paths[1].name]
    removed = prune("dev", 2, tmp_path)
    assert removed == paths[:2]
    assert not any(p.exists() or p.with_name(p.name + ".json").exists() for p in paths[:2])
    assert [e.path for e in list_backups("dev", tmp_path)][-2:] == paths[2:]
    assert (tmp_path / "notes.db").exists()


def test_keep_zero_is_refused() -> None:
    with pytest.raises(SnapshotError, match="keep at least 1"):
        to_prune(["dev-etcd-20261118T110640Z.db"], 0)


def test_latest_resolves_to_the_newest(isolated_state: Path) -> None:
    directory = isolated_state / "dev" / "backups"
    newest = make_snapshot(directory, "dev", 1_795_000_600)
    make_snapshot(directory, "dev", 1_795_000_000)
    assert resolve("dev", "latest") == newest
    assert resolve("dev", newest.name) == newest
    with pytest.raises(SnapshotError, match="no such snapshot"):
        resolve("dev", "nope.db")


# --- a manifest is checked field by field, its values quoted where they reach a shell --

HOSTILE_FIELDS = [
    ("file", "../../etc/cron.d/x"),
    ("file", "dev-etcd-20261118T110640Z.db; touch /pwned"),
    ("file", "dev-etcd-20261118T110640Z.db\n"),
    ("file", "dev-etcd-20261118T110700Z.db"),  # another snapshot's name
    ("lab", "dev\n"),
    ("lab", "../dev"),
    ("topology", "stacked; reboot"),
    ("member", "cp2 $(reboot)"),
    ("created_at", "yesterday"),
    ("revision", "812"),
    ("revision", True),
    ("revision", -1),
    ("hash", 1.5),
    ("size", None),
    ("sha256", "A" * 64),
    ("sha256", "'; reboot; '"),
    ("etcd_version", "3.6.5; id"),
    ("kubernetes_version", "v1.34.4`id`"),
]


@pytest.mark.parametrize(("field", "value"), HOSTILE_FIELDS)
def test_a_manifest_field_that_is_not_what_backup_writes_is_refused(
    tmp_path: Path, field: str, value: object
) -> None:
    path = make_snapshot(tmp_path, "dev", 1_795_000_000)
    manifest = json.loads(manifest_path(path).read_text())
    manifest_path(path).write_text(json.dumps({**manifest, field: value}))
    where = re.escape(f"{manifest_path(path)}: ")
    with pytest.raises(SnapshotError, match=rf"^{where}.*field '{field}' is "):
        checked_manifest(path, "dev")
    assert list_backups("dev", tmp_path) == []


def test_a_manifest_too_large_or_not_text_is_refused(tmp_path: Path) -> None:
    path = make_snapshot(tmp_path, "dev", 1_795_000_000)
    manifest_path(path).write_bytes(b"\xff\xfe" * 10)
    with pytest.raises(SnapshotError, match="not text; the manifest is damaged"):
        checked_manifest(path, "dev")
    manifest_path(path).write_text(" " * 100_000 + manifest_for("dev", path).to_json())
    with pytest.raises(SnapshotError, match="more than a manifest ever is"):
        checked_manifest(path, "dev")


def test_the_staging_script_quotes_every_value_from_the_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A manifest past its checks would be refused; quoting is the second line of defence.
    lab = load_lab("ha-stacked")
    path = make_snapshot(tmp_path, lab.name, 1_795_000_000)
    hostile = "x; touch /tmp/pwned #"
    plan = RestorePlan(lab, path, manifest_for(lab.name, path, file=hostile), "20261126T001500Z")
    commands: list[str] = []

    def try_run_script(
        lab: Lab, node: Node, script: Traversable, *args: str | int, timeout: float = 60
    ) -> tuple[int, str]:
        commands.append(remote.script_command(script, *args))
        return 0, '{"hash":943956090,"revision":812,"totalKey":1,"totalSize":20480}'

    monkeypatch.setattr(remote, "push", lambda *args, **kwargs: None)
    monkeypatch.setattr(remote, "try_run_script", try_run_script)
    stage(plan)
    assert len(commands) == 3
    for command in commands:
        assert command.count(hostile) == command.count(shlex.quote(hostile)) == 1
        assert hostile in shlex.split(command), "the file name is one argument of the script"


# --- a backup is committed sidecars first, and only complete ones count -----------------

# The module, not the function `toolkit.etcd.backup` that the package exports.
backup_module = importlib.import_module("toolkit.etcd.backup")


def fake_member(monkeypatch: pytest.MonkeyPatch, lab: Lab, content: bytes) -> None:
    """A lab whose first control plane takes snapshots holding ``content``."""
    node = lab.control_planes[0]
    digest = hashlib.sha256(content).hexdigest()
    monkeypatch.setattr(
        backup_module, "choose_member", lambda topo, wanted: (Member(node), "follower")
    )

    def root(lab: Lab, node: Node, script: str, timeout: float = 60) -> str:
        match = re.search(rf"{ETCD_WORK_DIR}/\S+?\.db", script)
        assert match is not None
        return (
            '{"hash":943956090,"revision":812,"totalKey":1,"totalSize":20480}\n'
            f"{digest}  {match[0]}\netcdutl version: 3.6.5\n"
        )

    def fetch(lab: Lab, node: Node, remote_path: str, local_path: Path) -> str:
        local_path.write_bytes(content)
        return digest

    monkeypatch.setattr(remote, "root", root)
    monkeypatch.setattr(remote, "try_root", lambda *args, **kwargs: (0, ""))
    monkeypatch.setattr(remote, "fetch", fetch)


def test_a_backup_is_listed_with_its_sidecars(
    isolated_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = load_lab("ha-stacked")
    fake_member(monkeypatch, lab, b"snapshot")
    taken = backup_module.backup(lab, keep=1)
    assert [e.path for e in list_backups(lab.name)] == [taken.path]
    assert checked_manifest(taken.path, lab.name) == taken.manifest
    assert sorted(p.name for p in taken.path.parent.iterdir()) == sorted(
        [taken.path.name, sha256_path(taken.path).name, manifest_path(taken.path).name]
    )


def test_a_backup_that_fails_writing_its_manifest_leaves_no_snapshot(
    isolated_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = load_lab("ha-stacked")
    fake_member(monkeypatch, lab, b"snapshot")

    def disk_full(self: SnapshotManifest) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(SnapshotManifest, "to_json", disk_full)
    with pytest.raises(OSError, match="No space left"):
        backup_module.backup(lab)
    directory = isolated_state / lab.name / "backups"
    assert sorted(p.name for p in directory.iterdir()) == []


@pytest.mark.parametrize(
    "damage", ["no sidecars", "no manifest", "no checksum", "damaged manifest", "other lab"]
)
def test_a_snapshot_without_complete_sidecars_is_not_listed_restored_or_pruned(
    isolated_state: Path, damage: str
) -> None:
    directory = isolated_state / "dev" / "backups"
    good = make_snapshot(directory, "dev", 1_795_000_000)
    orphan = make_snapshot(directory, "dev", 1_795_000_600)
    if damage in ("no sidecars", "no manifest"):
        manifest_path(orphan).unlink()
    if damage in ("no sidecars", "no checksum"):
        sha256_path(orphan).unlink()
    if damage == "damaged manifest":
        manifest_path(orphan).write_text(manifest_path(orphan).read_text()[:40])
    if damage == "other lab":
        write_sidecars(orphan, manifest_for("other", orphan))

    assert [e.path for e in list_backups("dev")] == [good]
    assert resolve("dev", "latest") == good
    assert prune("dev", 1) == []
    assert good.exists() and orphan.exists()


def test_topology_commands_for_both_kinds() -> None:
    stacked = Topology(load_lab("ha-stacked"))
    external = Topology(load_lab("ha-external"))
    assert "/etc/kubernetes/pki/etcd/healthcheck-client.crt" in stacked.etcdctl()
    assert "/etc/etcd/pki/healthcheck-client.crt" in external.etcdctl()
    assert [m.name for m in external.members] == ["etcd1", "etcd2", "etcd3"]
    assert external.initial_cluster().startswith("etcd1=https://172.30.3.31:2380,")
