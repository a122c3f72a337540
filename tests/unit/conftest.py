"""Fixtures shared by the unit tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from toolkit.bundle import recipe


@pytest.fixture
def recipe_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The bundle's recipe folders copied, so files can be added to them."""
    root = tmp_path / "bundle"
    shutil.copytree(recipe.RECIPE_DIR, root)
    monkeypatch.setattr(recipe, "RECIPE_DIR", root)
    monkeypatch.setattr(recipe, "GOMOD_DIR", root / "gomod")
    monkeypatch.setattr(recipe, "OWN_SOURCES_DIR", root / "src")
    monkeypatch.setattr(recipe, "IMAGES_DIR", root / "images")
    monkeypatch.setattr(recipe, "PAUSE_SOURCE", root / "pause" / "pause.c")
    return root
