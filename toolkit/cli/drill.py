"""``k8slab drill``: break a lab on purpose and prove it recovers."""

from __future__ import annotations

import click

from toolkit.cli.params import LAB, changes_lab
from toolkit.drills import DRILL_NAMES, DrillResult, run_drills
from toolkit.lab import spec
from toolkit.progress import Progress


@click.command("drill")
@click.argument("lab", type=LAB)
@click.argument("name", required=False, type=click.Choice(DRILL_NAMES))
@click.option("--all", "run_all", is_flag=True, help="Run every drill, one after the other.")
def drill(lab: str, name: str | None, run_all: bool) -> None:
    """Run drill NAME (or --all) on LAB; exit 1 unless every drill passes.

    Destructive: the lab's API and etcd go down on purpose.
    """
    if bool(name) == run_all:
        raise click.UsageError(f"name one drill ({', '.join(DRILL_NAMES)}) or give --all")
    _run(lab=lab, names=list(DRILL_NAMES) if run_all else [name or ""])


@changes_lab
def _run(lab: str, names: list[str]) -> None:
    """The drills, under the lab's lock (taken once the command line is known to be right)."""
    model = spec.load_lab(lab)
    results, json_path, md_path = run_drills(model, names, Progress(), on_result=_echo)
    click.echo(f"  report: {md_path}\n  json:   {json_path}")
    if not all(result.passed for result in results):
        raise SystemExit(1)


def _echo(result: DrillResult) -> None:
    timings = ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items())
    verdict = "PASS" if result.passed else "FAIL"
    click.echo(f"{result.drill:<20}{verdict}  {result.seconds:6.1f}s  {timings}")
    for check in result.checks:
        if not check.ok:
            click.echo(f"    failed: {check.name}: {check.detail}")
    if result.error:
        click.echo(f"    error: {result.error}")
