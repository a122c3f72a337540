"""Shared fixtures of the end-to-end tests: each lab comes up once per session and every
module that asks for it shares it, since bringing one up costs minutes."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from toolkit.cli import main
from toolkit.lab.spec import Lab, load_lab
from toolkit.lab.state import LabState
from toolkit.paths import state_root

# Lab names or lab.yml paths: of the e2e tests, and of the etcd drills.
LABS = os.environ.get("K8SLAB_E2E_LABS", "ha-stacked").split()
DRILL_LABS = os.environ.get("K8SLAB_DRILL_LABS", "ha-stacked").split()
# A destroyed lab takes its state directory along: its reports are copied here first.
KEPT_REPORTS_DIR = state_root().with_name("k8slab-e2e-reports")
# One line per drill run, printed at the end of the session (CI's log keeps the numbers).
DRILL_SUMMARIES: list[str] = []


class LabPool:
    """Labs brought up from nothing on first use (K8SLAB_E2E_REUSE=1: taken as they are),
    destroyed when the session ends (K8SLAB_KEEP_LABS=1: left up). A test lab's etcd
    backups go with it (`destroy --purge`), so one run's snapshots never reach the next."""

    def __init__(self) -> None:
        self._labs: dict[str, Lab] = {}

    def get(self, name_or_path: str) -> Lab:
        model = load_lab(name_or_path)
        if model.name not in self._labs:
            if not os.environ.get("K8SLAB_E2E_REUSE"):
                CliRunner().invoke(main, ["destroy", "--purge", name_or_path])
                result = CliRunner().invoke(main, ["up", name_or_path])
                assert result.exit_code == 0, result.output
            self._labs[model.name] = model
        return self._labs[model.name]

    def release(self, name_or_path: str) -> None:
        """Destroy a lab no later test needs (K8SLAB_KEEP_LABS=1: leave it up)."""
        model = load_lab(name_or_path)
        lab = self._labs.pop(model.name, None)
        if lab is not None and not os.environ.get("K8SLAB_KEEP_LABS"):
            reports = LabState.of(lab.name).root / "reports"
            if reports.is_dir():
                shutil.copytree(reports, KEPT_REPORTS_DIR / lab.name, dirs_exist_ok=True)
            # By the spec's path: a lab given as a lab.yml path has no name under inventories/.
            CliRunner().invoke(main, ["destroy", "--purge", str(lab.source)])

    def close(self) -> None:
        for lab in list(self._labs.values()):
            self.release(str(lab.source))


POOL = LabPool()
# Every lab a test may take from the pool, in the order the session brings them up.
LAB_ORDER = list(dict.fromkeys(LABS + DRILL_LABS))
E2E_DIR = Path(__file__).parent


def lab_of(item: pytest.Item) -> str | None:
    """The lab (name or lab.yml path) an e2e test is parametrized with, if any.

    Only e2e tests have one: the session may hold other tests (a unit test parametrized
    with lab names), which must keep their place and never release a lab.
    """
    callspec = getattr(item, "callspec", None)
    if callspec is None or E2E_DIR not in item.path.parents:
        return None
    return next((value for value in callspec.params.values() if value in LAB_ORDER), None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab_teardown: destroys its lab; runs last on it")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """One lab at a time: every test of a lab, then its CI drills, then the tests that
    take the lab down (``lab_teardown``), then the next lab.

    The drills break and restore the lab that the other e2e tests check, so those see it as
    `k8slab up` left it; a lab is destroyed after its last test, so two labs never share
    this machine's two cores.
    """

    def order(item: pytest.Item) -> tuple[int, bool, bool]:
        lab = lab_of(item)
        return (
            -1 if lab is None else LAB_ORDER.index(lab),
            item.get_closest_marker("lab_teardown") is not None,
            item.get_closest_marker("ci_drill") is not None,
        )

    items.sort(key=order)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    yield
    lab = lab_of(item)
    if lab is not None and (nextitem is None or lab_of(nextitem) != lab):
        POOL.release(lab)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if DRILL_SUMMARIES:
        terminalreporter.section("etcd drills")
        for line in DRILL_SUMMARIES:
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"reports of destroyed labs: {KEPT_REPORTS_DIR}")


@pytest.fixture(scope="session")
def lab_pool() -> Iterator[LabPool]:
    yield POOL
    POOL.close()


@pytest.fixture(scope="module", params=LABS)
def provisioned_lab(request: pytest.FixtureRequest, lab_pool: LabPool) -> Lab:
    """A Ready lab of $K8SLAB_E2E_LABS, shared with the session's other modules."""
    return lab_pool.get(request.param)
