"""End to end: `k8slab upgrade` v1.34.4 -> v1.35.4 on a renamed copy of each drill lab
(ha-stacked and ha-external, tests/e2e/spec_copies.py: a name and a subnet of its own), so
the labs the other tests check are never disturbed.

The first run is killed (SIGKILL, its whole process group) while it drains the first
worker, and running it again finishes the upgrade from its journal. Then: every kubelet
and every API server runs the target, the spec says the target with its comments kept,
the report's disruption figures are within issue 16's bounds (the API's longest gap
through the VIP under 5 s, no failed request to the Service), a provision changes nothing
(Ansible's per-host stats), and a second upgrade is a no-op.

Destructive and long (a lab up, then upgraded node by node), so only `scripts/test --full`
runs it, in a stage of its own (`e2e-upgrade`) after the target bundle's (`bundle-upgrade`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.e2e.spec_copies import up_copy
from tests.helpers.processes import killed_when
from toolkit.cli import main
from toolkit.lab.spec import Lab, load_lab
from toolkit.lab.state import LabState
from toolkit.provision.run import provision
from toolkit.upgrade import actions, journal
from toolkit.upgrade.report import API_GAP_BUDGET_S

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.destructive]

SOURCE_VERSION, TARGET = "v1.34.4", "v1.35.4"
UPGRADED = os.environ.get("K8SLAB_UPGRADE_LABS", "ha-stacked ha-external").split()
COPIES = [f"{lab}-upgrade" for lab in UPGRADED]
# The first run is killed this long after it starts draining the first worker.
KILL_AFTER_S = 5
FIRST_RUN_TIMEOUT_S = 3600


@pytest.fixture(scope="module", params=COPIES)
def copy(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    source = request.param.removesuffix("-upgrade")
    assert load_lab(source).kubernetes_version == SOURCE_VERSION
    yield from up_copy(source, tmp_path_factory.mktemp("specs"), "upgrade")


@pytest.fixture(scope="module")
def upgraded(copy: Lab) -> Lab:
    """The copy upgraded: a first run killed in the middle, a second that finishes it."""
    spec = str(copy.source)
    worker = copy.workers[0].name
    seen = killed_when(
        ["upgrade", spec, "--to", TARGET],
        lambda line: f"{worker}:drain" in line and "done in" not in line,
        FIRST_RUN_TIMEOUT_S,
        then_s=KILL_AFTER_S,
    )
    cut = journal.load(copy.name)
    assert cut is not None and cut.is_open, "".join(seen)
    assert f"{worker}:drain" not in cut.done and "cp1:apply" in cut.done
    result = CliRunner().invoke(main, ["upgrade", spec, "--to", TARGET])
    assert result.exit_code == 0, result.output
    assert "resume" in result.output
    done = journal.load(copy.name)
    assert done is not None and done.state == "finished" and not done.pending()
    return load_lab(copy.source)


def test_every_kubelet_and_api_server_runs_the_target(upgraded: Lab) -> None:
    kubelets = actions.kubelet_versions(upgraded)
    assert sorted(kubelets) == sorted(n.name for n in upgraded.control_planes + upgraded.workers)
    assert set(kubelets.values()) == {TARGET}, kubelets
    apiservers = actions.apiserver_versions(upgraded)
    assert len(apiservers) == len(upgraded.control_planes)
    assert set(apiservers.values()) == {TARGET}, apiservers
    assert actions.cluster_version(upgraded) == TARGET


def test_the_spec_records_the_target_with_its_comments(upgraded: Lab, copy: Lab) -> None:
    text = Path(upgraded.source).read_text(encoding="utf-8")
    assert upgraded.kubernetes_version == TARGET
    assert f"kubernetes_version: {TARGET}\n" in text
    assert [line for line in text.splitlines() if line.startswith("#")], "comments lost"


def test_the_disruption_is_within_the_bounds(upgraded: Lab) -> None:
    reports = sorted((LabState.of(upgraded.name).root / "reports").glob("upgrade-*.json"))
    assert reports
    report = json.loads(reports[-1].read_text())
    assert report["passed"], json.dumps(report["checks"], indent=2)
    assert report["api"]["longest_gap_s"] < API_GAP_BUDGET_S, report["stages"]
    assert report["service"]["failed"] == 0, report["stages"]
    stages = report["stages"]
    for node in upgraded.control_planes + upgraded.workers:
        role = "control-plane" if node in upgraded.control_planes else "worker"
        assert stages[f"{role} {node.name}"]["api"]["requests"] > 0
        assert stages[f"{role} {node.name}"]["service"]["requests"] > 0


def test_a_provision_afterwards_changes_nothing(upgraded: Lab) -> None:
    report = provision(upgraded)
    assert report.idempotent, report.changed


def test_a_second_upgrade_is_a_no_op(upgraded: Lab) -> None:
    result = CliRunner().invoke(main, ["upgrade", str(upgraded.source), "--to", TARGET])
    assert result.exit_code == 0, result.output
    assert "nothing to do" in result.output
