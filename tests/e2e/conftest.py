"""Shared fixtures of the end-to-end tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from toolkit.cli import main
from toolkit.lab.spec import Lab, load_lab

LABS = os.environ.get("K8SLAB_E2E_LABS", "ha-stacked").split()


@pytest.fixture(scope="module", params=LABS)
def provisioned_lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A lab of $K8SLAB_E2E_LABS brought up from nothing (K8SLAB_E2E_REUSE=1: as it is),
    destroyed after the module (K8SLAB_KEEP_LABS=1: left up)."""
    name = request.param
    if not os.environ.get("K8SLAB_E2E_REUSE"):
        CliRunner().invoke(main, ["destroy", name])
        result = CliRunner().invoke(main, ["up", name])
        assert result.exit_code == 0, result.output
    yield load_lab(name)
    if not os.environ.get("K8SLAB_KEEP_LABS"):
        CliRunner().invoke(main, ["destroy", name])
