"""End to end: `k8slab certs` on the stage's lab lists every certificate with at least 30
days left; `--renew` leaves every certificate but the CAs valid for a year (kubeadm's and
the etcd role's 365 days) and later than before, and `k8slab verify` green.

Destructive (every control plane's static Pods restart, external etcd members restart),
so only `scripts/test --full` runs it, in each lab's e2e stage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from toolkit.certs import certificates
from toolkit.cli import main
from toolkit.lab.spec import Lab
from toolkit.progress import Progress
from toolkit.verify import run_verify
from toolkit.verify.report import render_table

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.destructive]

A_YEAR_LESS_A_DAY = timedelta(days=364)


def test_every_certificate_is_listed_with_its_expiry(provisioned_lab: Lab) -> None:
    result = CliRunner().invoke(main, ["certs", str(provisioned_lab.source)])
    assert result.exit_code == 0, result.output
    found = certificates(provisioned_lab)
    hosts = {c.host for c in found}
    assert {n.name for n in provisioned_lab.control_planes} <= hosts
    assert {n.name for n in provisioned_lab.etcd_hosts} <= hosts
    assert any(c.name == "apiserver" for c in found)


def test_renewal_leaves_a_year_on_every_certificate_and_verify_green(
    provisioned_lab: Lab,
) -> None:
    before = {(c.host, c.name): c.not_after for c in certificates(provisioned_lab)}
    result = CliRunner().invoke(main, ["certs", str(provisioned_lab.source), "--renew"])
    assert result.exit_code == 0, result.output
    now = datetime.now(UTC)
    after = certificates(provisioned_lab)
    renewable = [c for c in after if not c.authority and c.managed_by != "external"]
    assert renewable
    short = [
        f"{c.host}/{c.name} {c.left(now)}" for c in renewable if c.left(now) < A_YEAR_LESS_A_DAY
    ]
    assert not short, short
    older = [f"{c.host}/{c.name}" for c in renewable if c.not_after <= before[(c.host, c.name)]]
    assert not older, older
    report = run_verify(provisioned_lab, progress=Progress())
    assert report.passed, render_table(report.results)
