"""Pure logic of etcd backup and restore: etcd's JSON, manifests, pruning, rollback advice."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from toolkit.etcd.restore import RestorePlan, rollback_message, rollback_steps
from toolkit.etcd.snapshots import (
    SnapshotError,
    SnapshotManifest,
    checked_manifest,
    list_backups,
    prune,
    resolve,
    snapshot_name,
    stamp_of,
    to_prune,
    write_sidecars,
)
from toolkit.etcd.status import (
    EtcdError,
    cluster_health,
    parse_endpoint_status,
    parse_member_list,
    parse_snapshot_status,
)
from toolkit.etcd.topology import Topology
from toolkit.lab.spec import Lab, load_lab

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


# --- rollback advice ---------------------------------------------------------------------


def plan_for(topology: str, tmp_path: Path) -> RestorePlan:
    lab: Lab = load_lab("ha-stacked" if topology == "stacked" else "ha-external")
    path = make_snapshot(tmp_path, lab.name, 1_795_000_000)
    return RestorePlan(lab, path, manifest_for(lab.name, path), "20261126T001500Z")


def test_nothing_done_means_nothing_to_roll_back(tmp_path: Path) -> None:
    assert rollback_steps(plan_for("stacked", tmp_path), []) == [
        "nothing was stopped or changed; the lab runs as before"
    ]


def test_stacked_rollback_after_the_swap_puts_old_data_back_and_restarts(tmp_path: Path) -> None:
    plan = plan_for("stacked", tmp_path)
    done = ["control-plane-stopped", "etcd-stopped", "data-swapped"]
    message = rollback_message(plan, done, "etcd-started", "etcd not healthy within 180s")
    assert "failed in step 'etcd-started' (done before it: control-plane-stopped, " in message
    steps = rollback_steps(plan, done, "etcd-started")
    # etcd was started (perhaps on some members only): stop it before the data goes back
    assert "manifests/etcd.yaml /etc/kubernetes/k8slab-parked/" in steps[0]
    assert "sudo mv /var/lib/etcd.before-restore-20261126T001500Z /var/lib/etcd" in steps[1]
    assert "(cp1, cp2, cp3)" in steps[1]
    assert "k8slab-parked/etcd.yaml /etc/kubernetes/manifests/" in steps[2]
    assert "kube-apiserver.yaml" in steps[3]
    assert "1. on each etcd member (cp1, cp2, cp3): stop etcd" in message
    assert "stay in /var/lib/etcd.before-restore-20261126T001500Z" in steps[-1]


def test_external_rollback_uses_systemd_on_the_etcd_hosts(tmp_path: Path) -> None:
    plan = plan_for("external", tmp_path)
    steps = rollback_steps(
        plan, ["control-plane-stopped", "etcd-stopped", "data-swapped", "etcd-started"]
    )
    assert (
        steps[0]
        == "on each etcd member (etcd1, etcd2, etcd3): stop etcd: `sudo systemctl stop etcd`"
    )
    assert "sudo systemctl start etcd" in steps[2]
    assert "(cp1, cp2, cp3)" in steps[3]


def test_rollback_before_the_swap_leaves_data_untouched(tmp_path: Path) -> None:
    steps = rollback_steps(plan_for("stacked", tmp_path), ["control-plane-stopped"])
    assert len(steps) == 2
    assert "kube-apiserver.yaml" in steps[0]
    assert steps[1] == "every member's data directory /var/lib/etcd is untouched"


def test_topology_commands_for_both_kinds() -> None:
    stacked = Topology(load_lab("ha-stacked"))
    external = Topology(load_lab("ha-external"))
    assert "/etc/kubernetes/pki/etcd/healthcheck-client.crt" in stacked.etcdctl()
    assert "/etc/etcd/pki/healthcheck-client.crt" in external.etcdctl()
    assert [m.name for m in external.members] == ["etcd1", "etcd2", "etcd3"]
    assert external.initial_cluster().startswith("etcd1=https://172.30.3.31:2380,")
