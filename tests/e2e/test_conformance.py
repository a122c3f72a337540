"""End to end: upstream's sig-network [Conformance] specs, run by `k8slab conformance` inside
the first e2e lab, all pass; the reports land in the lab's state directory. The whole
[Conformance] focus takes hours: benchmarks/conformance.py runs it (scripts/test --full)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.e2e.conftest import LABS, LabPool
from toolkit.cli import main
from toolkit.lab.state import LabState

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SIG_NETWORK = r"\[sig-network\].*\[Conformance\]"
SPECS = (
    Path(__file__).parents[1]
    / "unit"
    / "fixtures"
    / "conformance"
    / "conformance-specs-v1.34.4.txt"
)


@pytest.mark.parametrize("lab_name", LABS[:1])
def test_the_sig_network_conformance_specs_pass(lab_name: str, lab_pool: LabPool) -> None:
    lab = lab_pool.get(lab_name)
    expected = [n for n in SPECS.read_text().splitlines() if re.search(SIG_NETWORK, n)]
    result = CliRunner().invoke(main, ["conformance", str(lab.source), "--focus", SIG_NETWORK])
    assert result.exit_code == 0, result.output
    reports = sorted((LabState.of(lab.name).root / "reports").glob("conformance-*"))[-1]
    summary = json.loads((reports / "summary.json").read_text())
    assert summary["summary"]["failed"] == [], result.output
    assert summary["specs"]["will_run"] == len(expected), result.output
    assert summary["summary"]["passed"] + len(summary["summary"]["skipped"]) == len(expected)
    assert (reports / "junit_01.xml").is_file() and (reports / "e2e.log").is_file()
