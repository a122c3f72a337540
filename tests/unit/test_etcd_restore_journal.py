"""A restore cut short: the journal on disk, what --rollback undoes host by host, what
--resume finishes, and SIGTERM ending in the journal rather than a silent exit. The hosts
are fakes that record what would run on them; the real lab run is in tests/e2e."""

from __future__ import annotations

import importlib
import json
import os
import signal
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from toolkit import kube
from toolkit.etcd import cluster, journal, steps
from toolkit.etcd.journal import Journal, JournalError
from toolkit.etcd.restore import RestoreError
from toolkit.etcd.rollback import rollback_message, undo_list
from toolkit.hosts import remote
from toolkit.lab.spec import Lab, Node, load_lab

# The modules, not the functions of the same names that the package exports.
restore = importlib.import_module("toolkit.etcd.restore")
rollback = importlib.import_module("toolkit.etcd.rollback")
STAMP = "20261126T001500Z"


@pytest.fixture
def lab(isolated_state: Path) -> Lab:
    return load_lab("ha-stacked")


def new_journal(lab: Lab, **fields: Any) -> Journal:
    record = Journal(
        lab=lab.name,
        snapshot=f"/somewhere/{lab.name}-etcd-{STAMP}.db",
        file=f"{lab.name}-etcd-{STAMP}.db",
        revision=812,
        stamp=STAMP,
    )
    journal.start(record)
    for name, value in fields.items():
        setattr(record, name, value)
    record.close(record.state, record.reason)
    return record


# --- the journal on disk ------------------------------------------------------------------


def test_the_journal_is_private_and_reads_back(lab: Lab) -> None:
    record = new_journal(lab, done={"control-plane-stopped": ["cp1", "cp2"]})
    record.mark("control-plane-stopped", "cp3")
    assert stat.S_IMODE(os.stat(record.path).st_mode) == 0o600
    again = journal.load(lab.name)
    assert again is not None
    assert again.finished_on("control-plane-stopped") == {"cp1", "cp2", "cp3"}
    assert again.state == "running"


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("file", "../../etc/cron.d/x", "is not a snapshot's name"),
        ("stamp", "20261126T001500Z; reboot", "is not like"),
        ("step", "rm -rf /", "is not one of"),
        ("done", {"data-swapped": ["cp1", "$(reboot)"]}, "done must map"),
        ("done", {"drop-tables": ["cp1"]}, "done must map"),
        ("lab", "ha-external", "is not 'ha-stacked'"),
        ("state", "whatever", "is not one of"),
        ("revision", "812", "is not a number"),
    ],
)
def test_a_journal_field_that_is_not_what_restore_writes_is_refused(
    lab: Lab, field: str, value: object, problem: str
) -> None:
    record = new_journal(lab)
    data = json.loads(record.path.read_text())
    data[field] = value
    record.path.write_text(json.dumps(data))
    with pytest.raises(JournalError, match=problem):
        journal.load(lab.name)


def test_a_damaged_journal_is_refused_in_one_line(lab: Lab) -> None:
    path = journal.journal_path(lab.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff{")
    with pytest.raises(JournalError, match="not a restore journal"):
        journal.load(lab.name)
    path.write_text(" " * 70_000)
    with pytest.raises(JournalError, match="larger than a restore journal"):
        journal.load(lab.name)


def test_a_new_restore_is_refused_while_one_is_unfinished(lab: Lab) -> None:
    new_journal(lab, state="interrupted", step="etcd-stopped")
    with pytest.raises(JournalError, match=r"--resume.*--rollback"):
        journal.refuse_if_unfinished(lab.name)
    record = journal.load(lab.name)
    assert record is not None
    record.close("finished")
    journal.refuse_if_unfinished(lab.name)


def test_resume_and_rollback_need_an_unfinished_restore(lab: Lab) -> None:
    with pytest.raises(JournalError, match="no restore journal"):
        journal.load_open(lab.name, "resume")
    new_journal(lab, state="finished")
    with pytest.raises(JournalError, match="is finished; there is nothing to roll back"):
        journal.load_open(lab.name, "roll back")
    new_journal(lab, state="rolling-back")
    with pytest.raises(JournalError, match="finish it with `k8slab etcd restore ha-stacked "):
        journal.load_open(lab.name, "resume")
    assert journal.load_open(lab.name, "roll back").state == "rolling-back"


# --- what a rollback undoes, host by host -------------------------------------------------


def names(nodes: list[Node]) -> list[str]:
    return [node.name for node in nodes]


def test_nothing_touched_means_nothing_to_undo(lab: Lab) -> None:
    record = new_journal(lab, state="interrupted")
    assert undo_list(lab, record) == []
    assert "nothing was stopped or changed" in rollback_message(lab, record, "SIGINT")


def test_a_step_under_way_is_undone_on_every_host_of_it(lab: Lab) -> None:
    # etcd was being stopped: finished on cp1 only, but cp2 and cp3 may have stopped too.
    record = new_journal(
        lab,
        state="interrupted",
        step="etcd-stopped",
        done={"control-plane-stopped": ["cp1", "cp2", "cp3"], "etcd-stopped": ["cp1"]},
    )
    undos = {undo.what: names(undo.hosts) for undo in undo_list(lab, record)}
    assert undos == {
        "remove the staged restore": ["cp1", "cp2", "cp3"],
        "start etcd": ["cp1", "cp2", "cp3"],
        "start the API server, controller-manager and scheduler": ["cp1", "cp2", "cp3"],
    }
    message = rollback_message(lab, record, "interrupted by SIGTERM")
    assert "stopped in step 'etcd-stopped'" in message
    assert "k8slab etcd restore ha-stacked --rollback" in message
    assert "k8slab etcd restore ha-stacked --resume" in message
    assert "data directory /var/lib/etcd is untouched" in message


def test_only_the_hosts_that_were_swapped_get_their_old_data_back(lab: Lab) -> None:
    record = new_journal(
        lab,
        state="interrupted",
        done={
            "control-plane-stopped": ["cp1", "cp2", "cp3"],
            "etcd-stopped": ["cp1", "cp2", "cp3"],
            "data-swapped": ["cp1", "cp2"],
        },
    )
    undos = undo_list(lab, record)
    assert [(u.what, names(u.hosts)) for u in undos] == [
        ("put the data directory from before the restore back", ["cp1", "cp2"]),
        ("remove the staged restore", ["cp3"]),
        ("start etcd", ["cp1", "cp2", "cp3"]),
        ("start the API server, controller-manager and scheduler", ["cp1", "cp2", "cp3"]),
    ]
    assert f"mv /var/lib/etcd.before-restore-{STAMP} /var/lib/etcd" in undos[0].by_hand
    assert "k8slab-parked/etcd.yaml /etc/kubernetes/manifests/" in undos[2].by_hand


def test_external_etcd_is_stopped_and_started_with_systemd(isolated_state: Path) -> None:
    lab = load_lab("ha-external")
    record = new_journal(
        lab,
        state="failed",
        step="control-plane-started",
        done={step: ["etcd1", "etcd2", "etcd3"] for step in journal.STEPS[1:4]}
        | {"control-plane-stopped": ["cp1", "cp2", "cp3"]},
    )
    undos = {undo.what: (names(undo.hosts), undo.by_hand) for undo in undo_list(lab, record)}
    assert undos["stop etcd"] == (["etcd1", "etcd2", "etcd3"], "sudo systemctl stop etcd")
    assert undos["start etcd"] == (["etcd1", "etcd2", "etcd3"], "sudo systemctl start etcd")
    assert undos["stop the API server, controller-manager and scheduler"][0] == [
        "cp1",
        "cp2",
        "cp3",
    ]


# --- running the steps: interrupted, resumed, rolled back ----------------------------------


class FakeHosts:
    """Records every host action as (action, host); one action may send SIGTERM."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.sigterm_on: tuple[str, str] | None = None

        def record(action: str) -> Any:
            def run(*args: Any) -> None:
                node = next(arg for arg in args if isinstance(arg, Node))
                with self.lock:
                    self.calls.append((action, node.name))
                if self.sigterm_on == (action, node.name):
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(0.3)  # still under way when the main thread is interrupted

            return run

        for name in (
            "stop_static_pods",
            "start_static_pods",
            "stop_etcd_on",
            "start_etcd_on",
            "swap_data_dir",
            "unswap_data_dir",
        ):
            monkeypatch.setattr(steps, name, record(name))
        monkeypatch.setattr(steps, "check_reachable", lambda lab: None)
        monkeypatch.setattr(cluster, "wait_healthy", lambda *args: None)
        monkeypatch.setattr(remote, "try_root", lambda *args, **kwargs: (0, ""))
        monkeypatch.setattr(kube, "wait_for_ready_nodes", lambda lab: 0.0)
        monkeypatch.setattr(restore, "restart_coredns", lambda lab: 0.0)

    def of(self, action: str) -> list[str]:
        return sorted(host for done, host in self.calls if done == action)


def test_sigterm_during_a_step_ends_in_the_journal_and_the_rollback_advice(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts = FakeHosts(monkeypatch)
    hosts.sigterm_on = ("swap_data_dir", "cp2")
    record = new_journal(lab)
    before = signal.getsignal(signal.SIGTERM)  # another test or plugin may have set one
    with pytest.raises(RestoreError, match="interrupted by SIGTERM") as caught:
        restore.run_steps(lab, record, restore.SILENT, {})
    assert "--rollback" in str(caught.value)
    saved = journal.load(lab.name)
    assert saved is not None
    assert (saved.state, saved.step) == ("interrupted", "data-swapped")
    # what was under way on cp2 was waited for, so the journal has it
    assert {"cp1", "cp2"} <= saved.finished_on("data-swapped")
    assert hosts.of("start_etcd_on") == []
    assert signal.getsignal(signal.SIGTERM) is before, "the handler is put back"


def test_resume_runs_only_what_each_host_has_not_done(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts = FakeHosts(monkeypatch)
    new_journal(
        lab,
        state="interrupted",
        step="etcd-stopped",
        done={"control-plane-stopped": ["cp1", "cp2", "cp3"], "etcd-stopped": ["cp1"]},
    )
    result = restore.resume(lab)
    assert hosts.of("stop_static_pods") == []
    assert hosts.of("stop_etcd_on") == ["cp2", "cp3"]
    assert hosts.of("swap_data_dir") == ["cp1", "cp2", "cp3"]
    assert hosts.of("start_static_pods") == ["cp1", "cp2", "cp3"]
    assert result.revision == 812
    saved = journal.load(lab.name)
    assert saved is not None and saved.state == "finished"


def test_resume_refuses_when_a_host_lost_its_restored_data(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts = FakeHosts(monkeypatch)
    monkeypatch.setattr(
        remote, "try_root", lambda lab, node, script, **kw: (1 if node.name == "cp3" else 0, "")
    )
    new_journal(lab, state="failed", step="etcd-stopped", done={"control-plane-stopped": ["cp1"]})
    with pytest.raises(RestoreError, match="gone on cp3; nothing was changed"):
        restore.resume(lab)
    assert hosts.calls == []


def test_rollback_undoes_each_host_once_and_closes_the_journal(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts = FakeHosts(monkeypatch)
    new_journal(
        lab,
        state="failed",
        step="etcd-started",
        done={
            "control-plane-stopped": ["cp1", "cp2", "cp3"],
            "etcd-stopped": ["cp1", "cp2", "cp3"],
            "data-swapped": ["cp1", "cp2", "cp3"],
            "etcd-started": ["cp1"],
        },
    )
    rollback.rollback(lab)
    order = [action for action, _ in hosts.calls]
    assert order.index("stop_etcd_on") < order.index("unswap_data_dir")
    assert order.index("unswap_data_dir") < order.index("start_etcd_on")
    assert order.index("start_etcd_on") < order.index("start_static_pods")
    assert hosts.of("stop_etcd_on") == ["cp1", "cp2", "cp3"], "under way: every host"
    assert hosts.of("unswap_data_dir") == ["cp1", "cp2", "cp3"]
    assert hosts.of("stop_static_pods") == [], "the control plane was never started"
    saved = journal.load(lab.name)
    assert saved is not None and saved.state == "rolled-back"
    with pytest.raises(JournalError, match="nothing to roll back"):
        rollback.rollback(lab)
