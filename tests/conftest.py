"""Shared fixtures: every test gets its own state and cache directories."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def isolated_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Lab state under a temporary folder, so tests never touch a user's labs."""
    state = tmp_path / "state"
    monkeypatch.setenv("K8SLAB_STATE_DIR", str(state))
    yield state
