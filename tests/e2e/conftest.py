"""Shared fixtures of the end-to-end tests: each lab comes up once per session and every
module that asks for it shares it, since bringing one up costs minutes."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from toolkit.cli import main
from toolkit.lab.spec import Lab, load_lab

# Lab names or lab.yml paths.
LABS = os.environ.get("K8SLAB_E2E_LABS", "ha-stacked").split()


class LabPool:
    """Labs brought up from nothing on first use (K8SLAB_E2E_REUSE=1: taken as they are),
    destroyed when the session ends (K8SLAB_KEEP_LABS=1: left up)."""

    def __init__(self) -> None:
        self._labs: dict[str, Lab] = {}

    def get(self, name_or_path: str) -> Lab:
        model = load_lab(name_or_path)
        if model.name not in self._labs:
            if not os.environ.get("K8SLAB_E2E_REUSE"):
                CliRunner().invoke(main, ["destroy", name_or_path])
                result = CliRunner().invoke(main, ["up", name_or_path])
                assert result.exit_code == 0, result.output
            self._labs[model.name] = model
        return self._labs[model.name]

    def close(self) -> None:
        if os.environ.get("K8SLAB_KEEP_LABS"):
            return
        for name in self._labs:
            # By the spec's path: a lab given as a lab.yml path has no name under inventories/.
            CliRunner().invoke(main, ["destroy", str(self._labs[name].source)])


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """CI's drills run last: they break and restore the lab that the session's other
    e2e tests check, so those see it as `k8slab up` left it."""
    items.sort(key=lambda item: item.get_closest_marker("ci_drill") is not None)


@pytest.fixture(scope="session")
def lab_pool() -> Iterator[LabPool]:
    pool = LabPool()
    yield pool
    pool.close()


@pytest.fixture(scope="module", params=LABS)
def provisioned_lab(request: pytest.FixtureRequest, lab_pool: LabPool) -> Lab:
    """A Ready lab of $K8SLAB_E2E_LABS, shared with the session's other modules."""
    return lab_pool.get(request.param)
