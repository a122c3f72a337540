"""`k8slab destroy`: it deletes only its own lab's state, and keeps the lab's etcd backups.

Every lab here has a state directory and no hosts; the engine and Vagrant are replaced by
recorders, so nothing outside the temporary folder runs or changes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.unit.test_etcd import make_snapshot
from toolkit.cli import main
from toolkit.errors import LabNameError
from toolkit.hosts import engine, lifecycle
from toolkit.hosts.vagrant import Vagrant
from toolkit.lab.state import LabState

LAB = "single"  # a shipped spec, so `etcd backups` can load it


@pytest.fixture
def no_hosts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Neither docker nor Vagrant runs; returns the labs whose engine objects were asked for."""
    asked: list[str] = []

    def remove_lab_objects(lab_name: str, state_root: Path) -> list[str]:
        asked.append(lab_name)
        return []

    @contextlib.contextmanager
    def networks_lock(progress: object = None) -> Iterator[None]:
        yield

    monkeypatch.setattr(engine, "remove_lab_objects", remove_lab_objects)
    monkeypatch.setattr(engine, "foreign_objects", lambda lab_name, state_root: [])
    monkeypatch.setattr(engine, "networks_lock", networks_lock)
    monkeypatch.setattr(Vagrant, "destroy", lambda self, provider: None)
    return asked


@pytest.fixture
def sentinels(tmp_path: Path, isolated_state: Path) -> list[Path]:
    """Another lab's key and backup under the state root, and a folder beside the root."""
    other = isolated_state / "other"
    paths = [
        other / "keys" / "id_ed25519",
        other / "backups" / "other-etcd-20261118T110640Z.db",
        tmp_path / "outside" / "keep.txt",
    ]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("keep")
    (isolated_state / "mylab").mkdir()
    return paths


def lab_state(root: Path, lab: str) -> Path:
    """A lab that was up: keys, access files, logs and two etcd snapshots."""
    state = root / lab
    for name in ("keys/id_ed25519", "inventory.yml", "ssh_config", "logs/vagrant-up.log"):
        (state / name).parent.mkdir(parents=True, exist_ok=True)
        (state / name).write_text("x")
    make_snapshot(state / "backups", lab, 1_795_000_000)
    make_snapshot(state / "backups", lab, 1_795_000_600)
    return state


# --- finding 1: nothing outside the lab is deleted ---------------------------------------

BAD_LABS = ["mylab/..", "mylab/../..", "mylab\n", "../x", "..", ".", "", "MyLab", "lab-"]


@pytest.mark.parametrize("bad", BAD_LABS, ids=repr)
def test_destroy_refuses_what_is_not_a_lab_name_and_deletes_nothing(
    bad: str, sentinels: list[Path], isolated_state: Path, no_hosts: list[str]
) -> None:
    result = CliRunner().invoke(main, ["destroy", bad])
    for path in sentinels:
        assert path.is_file(), f"{path} must survive"
    assert (isolated_state / "mylab").is_dir()
    assert no_hosts == [], "refused before any host is touched"
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"error: LAB {bad!r} is neither a lab name")
    assert result.output.count("\n") == 1, "one line"
    assert "lowercase letters, digits and '-'" in result.output
    assert "path to a lab.yml" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "argv",
    [
        ["validate"],
        ["up"],
        ["status"],
        ["provision"],
        ["reset", "--yes"],
        ["verify"],
        ["drill"],
        ["etcd", "backups"],
        ["etcd", "backup"],
    ],
    ids=" ".join,
)
def test_every_command_taking_a_lab_refuses_a_path_that_is_not_a_spec(
    argv: list[str], isolated_state: Path
) -> None:
    result = CliRunner().invoke(main, [*argv, "single/.."])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: LAB 'single/..' is neither a lab name")
    assert result.output.count("\n") == 1
    assert not isolated_state.exists()


def test_a_state_dir_that_is_a_symlink_out_of_the_root_is_refused(
    sentinels: list[Path], isolated_state: Path, no_hosts: list[str]
) -> None:
    outside = sentinels[-1].parent
    (isolated_state / "evil").symlink_to(outside, target_is_directory=True)
    result = CliRunner().invoke(main, ["destroy", "evil"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: refusing to delete ")
    assert "Traceback" not in result.output
    assert no_hosts == [], "refused before any host is touched"
    assert sentinels[-1].read_text() == "keep"


def test_the_state_layer_refuses_bad_names_whoever_calls_it(isolated_state: Path) -> None:
    for bad in BAD_LABS:
        with pytest.raises(LabNameError):
            LabState.of(bad)
    with pytest.raises(LabNameError):
        lifecycle.destroy_lab("mylab/..", "libvirt")


def test_a_spec_path_is_still_a_valid_lab_argument(
    isolated_state: Path, no_hosts: list[str]
) -> None:
    result = CliRunner().invoke(main, ["destroy", "inventories/single/lab.yml"])
    assert result.exit_code == 0, result.output
    assert no_hosts == ["single"]


# --- finding 2: backups are kept unless --purge ------------------------------------------


def test_destroy_keeps_the_backups_and_says_where(
    isolated_state: Path, no_hosts: list[str]
) -> None:
    state = lab_state(isolated_state, LAB)
    snapshots = sorted(p.name for p in (state / "backups").iterdir())
    result = CliRunner().invoke(main, ["destroy", LAB])
    assert result.exit_code == 0, result.output
    assert f"kept 2 etcd snapshot(s) in {state / 'backups'}" in result.output
    assert sorted(p.name for p in (state / "backups").iterdir()) == snapshots
    assert [p.name for p in state.iterdir()] == ["backups"], "everything else is gone"

    listed = CliRunner().invoke(main, ["etcd", "backups", LAB])
    assert listed.exit_code == 0, listed.output
    assert sum(".db" in line for line in listed.output.splitlines()) == 2

    labs = CliRunner().invoke(main, ["labs", "--json"])
    assert '"state": "backups"' in labs.output

    again = CliRunner().invoke(main, ["destroy", LAB])
    assert again.exit_code == 0, again.output
    assert f"lab {LAB}: removed 0 objects" in again.output
    assert "kept 2 etcd snapshot(s)" in again.output


def test_up_regenerates_the_state_around_kept_backups(
    isolated_state: Path, no_hosts: list[str]
) -> None:
    from toolkit.lab.spec import load_lab

    state_dir = lab_state(isolated_state, LAB)
    assert CliRunner().invoke(main, ["destroy", LAB]).exit_code == 0
    # What `up` writes into the state directory before Vagrant runs.
    model = load_lab(LAB)
    state = LabState.of(LAB)
    state.ensure_key_pair()
    lifecycle.write_access_files(model, state)
    assert state.private_key.is_file() and state.inventory.is_file()
    assert len(list((state_dir / "backups").glob("*.db"))) == 2


def test_destroy_purge_removes_the_backups_too(isolated_state: Path, no_hosts: list[str]) -> None:
    state = lab_state(isolated_state, LAB)
    result = CliRunner().invoke(main, ["destroy", LAB, "--purge"])
    assert result.exit_code == 0, result.output
    assert "kept" not in result.output
    assert not state.exists()


def test_a_lab_without_backups_leaves_no_state_dir(
    isolated_state: Path, no_hosts: list[str]
) -> None:
    state = lab_state(isolated_state, LAB)
    for path in (state / "backups").iterdir():
        path.unlink()
    result = CliRunner().invoke(main, ["destroy", LAB])
    assert result.exit_code == 0, result.output
    assert "kept" not in result.output
    assert not state.exists()
