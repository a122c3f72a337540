"""The verify suites' access layer without a lab: the batch of read-only commands run in
one shell (here testinfra's local backend stands in for a node's SSH session), and the
errors when a lab has no state."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import testinfra

from toolkit.lab.spec import load_lab
from toolkit.lab.state import LabState
from toolkit.verify.cluster import Cluster, Run, VerifyError


@pytest.fixture
def cluster(isolated_state: Path, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    lab = load_lab("single")
    state = LabState.of(lab.name)
    state.write_text(state.ssh_config, "# no hosts: commands run locally in this test\n")
    state.write_text(
        state.inventory,
        "all:\n  children:\n    kube_control_plane:\n      hosts:\n"
        + "".join(f"        {n.name}: {{k8slab_node_address: {n.address}}}\n" for n in lab.nodes),
    )
    local: Any = testinfra.get_host("local://")
    monkeypatch.setattr(Cluster, "host", lambda self, name: local)
    return Cluster(lab)


def test_a_lab_without_state_is_refused_with_the_fix(isolated_state: Path) -> None:
    with pytest.raises(VerifyError, match=r"ssh_config is missing; .*k8slab up single"):
        Cluster(load_lab("single"))


def test_batch_answers_each_command_with_its_own_status_and_streams(cluster: Cluster) -> None:
    commands = [
        "echo out; echo err >&2",
        'printf \'%s\\n\' "it\'s \\"quoted\\" $HOME"; exit 3',
        "sleep 1; echo slow",
        "echo fast",
        "true",
    ]
    cluster.prefetch({"cp1": commands})
    out_and_err = cluster.run("cp1", commands[0])
    assert (out_and_err.exit_status, out_and_err.stdout) == (0, "out\n")
    assert out_and_err.output == "out\nerr\n"
    quoted = cluster.run("cp1", commands[1])
    assert quoted.exit_status == 3
    assert quoted.stdout.startswith('it\'s "quoted" /')
    assert cluster.run("cp1", commands[2]).stdout == "slow\n"
    assert cluster.run("cp1", commands[3]).stdout == "fast\n"
    assert cluster.run("cp1", commands[4]).output == ""


def test_prefetched_answers_are_reused_unless_fresh(cluster: Cluster, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    command = f"echo x >> {counter}; wc -l < {counter}"
    cluster.prefetch({"cp1": [command]})
    assert cluster.run("cp1", command).stdout.strip() == "1"
    assert cluster.run("cp1", command).stdout.strip() == "1"
    assert cluster.run("cp1", command, fresh=True).stdout.strip() == "2"


def test_run_until_takes_the_prefetched_answer_else_asks_again(
    cluster: Cluster, tmp_path: Path
) -> None:
    counter = tmp_path / "count"
    command = f"echo x >> {counter}; wc -l < {counter}"
    cluster.prefetch({"cp1": [command]})

    def count(wanted: str) -> Callable[[Run], bool]:
        return lambda run: run.stdout.strip() == wanted

    assert cluster.run_until("cp1", command, count("1"), 5, 0).stdout.strip() == "1"
    assert cluster.run_until("cp1", command, count("3"), 5, 0).stdout.strip() == "3"
    # Never accepted: bounded, and the last answer is what the check shows.
    last = cluster.run_until("cp1", command, count("never"), 0.3, 0.1)
    assert 4 <= int(last.stdout) <= 8


def test_commands_are_bounded_in_time(cluster: Cluster) -> None:
    cluster.prefetch({"cp1": ["sleep 30; echo never"]}, timeout=1)
    slow = cluster.run("cp1", "sleep 30; echo never")
    assert slow.exit_status == 124
    assert "never" not in slow.output
    assert cluster.run("cp1", "sleep 30", timeout=1).exit_status == 124
