"""The lab's state directory is private to its user (0700) from the moment it exists, and
one left open by an older toolkit is tightened (issue 11, finding 5)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolkit.lab.state import LabState


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The common umask 022, under which a plain mkdir makes a folder 0755."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.mark.usefixtures("loose_umask")
def test_a_new_state_directory_is_private_from_the_start(isolated_state: Path) -> None:
    state = LabState.of("demo")
    state.write_text(state.inventory, "all: {}\n")
    assert mode_of(state.root) == 0o700


@pytest.mark.usefixtures("loose_umask")
@pytest.mark.parametrize("first_write", ["ensure_key_pair", "write_json", "write_text"])
def test_an_existing_open_state_directory_is_tightened(
    isolated_state: Path, first_write: str
) -> None:
    state = LabState.of("demo")
    state.root.mkdir(parents=True)
    state.root.chmod(0o755)
    if first_write == "ensure_key_pair":
        state.ensure_key_pair()
    elif first_write == "write_json":
        state.write_json(state.machines, {})
    else:
        state.write_text(state.ssh_config, "")
    assert mode_of(state.root) == 0o700


@pytest.mark.usefixtures("loose_umask")
def test_tightening_happens_even_when_the_key_pair_exists(isolated_state: Path) -> None:
    state = LabState.of("demo")
    state.ensure_key_pair()
    state.root.chmod(0o755)
    state.ensure_key_pair()
    assert mode_of(state.root) == 0o700
    assert mode_of(state.private_key) == 0o600
