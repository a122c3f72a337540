"""``k8slab upgrade``: kubeadm's upgrade of a lab, its disruption measured."""

from __future__ import annotations

import click

from toolkit.cli.params import LAB, changes_lab
from toolkit.lab import spec
from toolkit.progress import Progress
from toolkit.upgrade import upgrade
from toolkit.upgrade.report import UpgradeResult, report_paths


@click.command("upgrade")
@click.argument("lab", type=LAB)
@click.option(
    "--to", "target", required=True, metavar="VERSION", help="The Kubernetes version, e.g. v1.35.4."
)
@changes_lab
def upgrade_command(lab: str, target: str) -> None:
    """Upgrade LAB's cluster to VERSION (one minor version up at most), one node at a time.

    Shows `kubeadm upgrade plan` first; measures the API through the VIP and a Service
    during every stage; records VERSION in the spec; ends with `k8slab verify`. A run cut
    short goes on from where it was when run again. Exit 1 unless every check passes.
    """
    model = spec.load_lab(lab)
    result = upgrade(model, target, Progress(), on_plan=_show_plan)
    if result.nothing_to_do:
        click.echo(f"lab {model.name} already runs {target} (the spec says so too); nothing to do")
        return
    _echo(result)
    if not result.passed:
        raise SystemExit(1)


def _show_plan(text: str) -> None:
    click.echo(text.rstrip())


def _echo(result: UpgradeResult) -> None:
    click.echo(f"{'STAGE':<26}{'TIME':>7}  {'API req/failed/gap':<22}{'SERVICE req/failed/gap'}")
    for name, stage in result.stages.items():
        cells = []
        for probe in ("api", "service"):
            found = stage.get(probe)
            cells.append(
                f"{found['requests']}/{found['failed']}/{found['longest_gap_s']:.1f}s"
                if found
                else "-"
            )
        click.echo(f"{name:<26}{stage.get('seconds', 0):>6.0f}s  {cells[0]:<22}{cells[1]}")
    verdict = "PASS" if result.passed else "FAIL"
    click.echo(
        f"lab {result.lab}: {result.from_version} -> {result.to_version} {verdict} in "
        f"{result.seconds:.0f}s"
    )
    for check in result.checks:
        if not check.ok:
            click.echo(f"    failed: {check.name}: {check.detail}")
    json_path, md_path = report_paths(result.lab, result.started)
    click.echo(f"  report: {md_path}\n  json:   {json_path}")
