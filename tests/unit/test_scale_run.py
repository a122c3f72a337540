"""`k8slab scale` end to end on fakes: the steps in their order for each kind of change, the
journal on disk, a run cut short resumed from its step (what was done is not done again),
another scale refused meanwhile, and the spec edited only at the end. The hosts and the
cluster are fakes that record what would be done; the real lab run is tests/e2e/test_scale.py."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.helpers.lab_specs import write_spec
from tests.unit.test_scale_spec import COMMENTED
from toolkit.cli import main
from toolkit.hosts import lifecycle
from toolkit.lab.spec import Lab, Node, load_lab
from toolkit.provision.report import ProvisionReport
from toolkit.scale import ScaleError, ScaleRequest, journal, resume, run, scale, steps

THREE = COMMENTED.replace(
    "    - {name: cp1, address: 172.30.9.11}\n",
    "    - {name: cp1, address: 172.30.9.11}\n"
    "    - {name: cp2, address: 172.30.9.12}\n"
    "    - {name: cp3, address: 172.30.9.13}\n",
)


class Fakes:
    """Every host and cluster action, recorded as (action, node, nodes of the lab it got)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, str, tuple[str, ...]]] = []
        self.fail: dict[str, int] = {}
        self.unhealthy: list[str] = []
        monkeypatch.setattr(run, "health_problems", lambda lab: list(self.unhealthy))
        monkeypatch.setattr(run, "check_bundle", lambda lab: None)
        monkeypatch.setattr(run, "provision", self.provision)
        monkeypatch.setattr(lifecycle, "up_nodes", self.up_nodes)
        monkeypatch.setattr(lifecycle, "destroy_node", self.destroy_node)
        for name in (
            "release_vip",
            "drain",
            "remove_etcd_member",
            "reset_host",
            "delete_node",
            "wait_settled",
        ):
            monkeypatch.setattr(steps, name, self.recorder(name))

    def record(self, action: str, lab: Lab, node: str = "") -> None:
        self.calls.append((action, node, tuple(n.name for n in lab.nodes)))
        if self.fail.get(action, 0) > 0:
            self.fail[action] -= 1
            raise ScaleError(f"{action} failed on purpose")

    def recorder(self, action: str) -> Any:
        def act(lab: Lab, *args: Any, **kwargs: Any) -> str:
            node = next((a for a in args if isinstance(a, Node)), None)
            self.record(action, lab, node.name if node else "")
            return "done"

        return act

    def provision(self, lab: Lab, progress: Any = None) -> ProvisionReport:
        self.record("provision", lab)
        return ProvisionReport(lab.name, changed={n.name: 1 for n in lab.nodes})

    def up_nodes(self, lab: Lab, nodes: list[Node], progress: Any = None) -> None:
        self.record("up_nodes", lab, ",".join(n.name for n in nodes))

    def destroy_node(self, lab: Lab, node: Node, remaining: Lab, progress: Any = None) -> list[str]:
        self.record("destroy_node", remaining, node.name)
        return [f"host {node.name}"]

    def actions(self) -> list[str]:
        return [f"{action} {node}".strip() for action, node, _ in self.calls]


@pytest.fixture
def fakes(isolated_state: Path, monkeypatch: pytest.MonkeyPatch) -> Fakes:
    return Fakes(monkeypatch)


def demo(tmp_path: Path, text: str = COMMENTED) -> Lab:
    return load_lab(write_spec(tmp_path, text))


def test_adding_a_worker_creates_it_converges_then_edits_the_spec(
    tmp_path: Path, fakes: Fakes
) -> None:
    lab = demo(tmp_path)
    result = scale(lab, ScaleRequest(add_workers=("w2",)))
    assert fakes.actions() == ["up_nodes w2", "provision", "wait_settled"]
    assert all(nodes == ("cp1", "w1", "w2") for _, _, nodes in fakes.calls)
    assert result.notes == ["w2: address 172.30.9.22 chosen (the next free one)"]
    text = lab.source.read_text()
    assert "    - name: w2\n      address: 172.30.9.22\n" in text
    assert "# a comment at the end" in text
    assert [n.name for n in load_lab(lab.source).workers] == ["w1", "w2"]
    record = journal.load(lab.name)
    assert record is not None and record.state == "finished"
    assert record.done == ["hosts-created", "converged", "ready", "spec-written"]
    assert stat.S_IMODE(journal.journal_path(lab.name).stat().st_mode) == 0o600


def test_removing_two_stacked_control_planes_goes_node_by_node_in_kubeadm_order(
    tmp_path: Path, fakes: Fakes
) -> None:
    lab = demo(tmp_path, THREE)
    scale(lab, ScaleRequest(remove=("cp2", "cp3")))
    per_node = ["release_vip", "drain", "remove_etcd_member", "reset_host", "delete_node"]
    assert fakes.actions() == [
        *(f"{a} cp2" for a in per_node),
        "destroy_node cp2",
        *(f"{a} cp3" for a in per_node),
        "destroy_node cp3",
        "provision",
        "wait_settled",
    ]
    # Cluster requests go to the lab without the leaving node; kubeadm reset reaches it.
    staying = {(a, n): nodes for a, n, nodes in fakes.calls}
    assert staying[("drain", "cp2")] == ("cp1", "cp3", "w1")
    assert staying[("remove_etcd_member", "cp3")] == ("cp1", "w1")
    assert staying[("reset_host", "cp3")] == ("cp1", "cp3", "w1")
    assert [n.name for n in load_lab(lab.source).control_planes] == ["cp1"]


def test_removing_a_worker_has_no_vip_or_etcd_step(tmp_path: Path, fakes: Fakes) -> None:
    lab = demo(tmp_path)
    scale(lab, ScaleRequest(remove=("w1",)))
    assert fakes.actions() == [
        "drain w1",
        "reset_host w1",
        "delete_node w1",
        "destroy_node w1",
        "provision",
        "wait_settled",
    ]
    assert "  workers: []\n" in lab.source.read_text()


def test_a_run_cut_short_is_resumed_from_its_step_and_blocks_other_scales(
    tmp_path: Path, fakes: Fakes
) -> None:
    lab = demo(tmp_path, THREE)
    fakes.fail["reset_host"] = 1
    with pytest.raises(ScaleError, match=r"(?s)stopped in step host-reset:cp3.*--resume"):
        scale(lab, ScaleRequest(remove=("cp3", "cp2")))
    assert lab.source.read_text() == THREE  # the spec changes only at the end
    record = journal.load(lab.name)
    assert record is not None and (record.state, record.step) == ("failed", "host-reset:cp3")
    with pytest.raises(ScaleError, match=r"unfinished .*finish it first with"):
        scale(lab, ScaleRequest(add_workers=("w2",)))
    fakes.calls.clear()
    result = scale(lab, ScaleRequest(remove=("cp2", "cp3")))  # the same request again
    assert result.resumed
    assert fakes.actions()[:4] == [
        "reset_host cp3",
        "delete_node cp3",
        "destroy_node cp3",
        "release_vip cp2",  # in the first run's order, through the lab without cp3
    ]
    assert "drain cp3" not in fakes.actions()
    assert {(a, n): nodes for a, n, nodes in fakes.calls}[("drain", "cp2")] == ("cp1", "w1")
    assert [n.name for n in load_lab(lab.source).control_planes] == ["cp1"]


def test_a_run_killed_after_the_spec_was_written_resumes_from_the_edited_spec(
    tmp_path: Path, fakes: Fakes
) -> None:
    lab = demo(tmp_path)
    scale(lab, ScaleRequest(add_workers=("w2",)))
    record = journal.load(lab.name)
    assert record is not None
    record.done.remove("spec-written")
    record.close("running")  # as if killed between writing the spec and the journal
    fakes.calls.clear()
    result = resume(load_lab(lab.source))
    assert result.resumed and fakes.actions() == []
    assert journal.load(lab.name).state == "finished"  # type: ignore[union-attr]


def test_resume_refuses_a_spec_changed_meanwhile(tmp_path: Path, fakes: Fakes) -> None:
    lab = demo(tmp_path)
    fakes.fail["provision"] = 1
    with pytest.raises(ScaleError):
        scale(lab, ScaleRequest(add_workers=("w2",)))
    lab.source.write_text(COMMENTED.replace("# a comment at the end", "# edited by hand"))
    with pytest.raises(ScaleError, match="changed since the scale begun"):
        resume(lab)


def test_an_unhealthy_lab_is_not_scaled_and_nothing_is_journaled(
    tmp_path: Path, fakes: Fakes
) -> None:
    lab = demo(tmp_path)
    fakes.unhealthy = ["node w1 is not Ready"]
    with pytest.raises(ScaleError, match=r"not healthy.*node w1 is not Ready"):
        scale(lab, ScaleRequest(add_workers=("w2",)))
    assert journal.load(lab.name) is None and fakes.calls == []
    with pytest.raises(ScaleError, match="no unfinished scale to resume"):
        resume(lab)


def test_a_journal_whose_fields_could_reach_a_shell_is_refused(
    tmp_path: Path, fakes: Fakes
) -> None:
    lab = demo(tmp_path)
    fakes.fail["provision"] = 1
    with pytest.raises(ScaleError):
        scale(lab, ScaleRequest(add_workers=("w2",)))
    path = journal.journal_path(lab.name)
    data = json.loads(path.read_text())
    for field, bad, message in [
        ("nodes", ["w2; rm -rf /"], "are not all node names"),
        ("done", ["drained:$(reboot)"], "done must list steps"),
        ("state", "paused", "state 'paused'"),
        ("lab", "other", "lab 'other' is not 'demo'"),
    ]:
        path.write_text(json.dumps({**data, field: bad}))
        with pytest.raises(journal.ScaleJournalError, match=message):
            journal.load(lab.name)


def test_the_command_refuses_bad_input_on_one_line(tmp_path: Path, fakes: Fakes) -> None:
    lab = demo(tmp_path)
    runner = CliRunner()
    nothing = runner.invoke(main, ["scale", str(lab.source)])
    assert nothing.exit_code == 1
    assert "error: nothing to do: give --add-worker" in nothing.output
    both = runner.invoke(main, ["scale", str(lab.source), "--resume", "--remove", "w1"])
    assert both.exit_code == 2 and "--resume takes no nodes" in both.output
    added = runner.invoke(main, ["scale", str(lab.source), "--add-worker", "w2"])
    assert added.exit_code == 0, added.output
    assert "lab demo: added w2 in" in added.output
    assert "w2: address 172.30.9.22 chosen" in added.output
    assert "changed per host: cp1=1, w1=1, w2=1" in added.output
