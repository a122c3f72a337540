"""``k8slab verify LAB``: check every part of a lab's cluster and report check by check."""

from __future__ import annotations

import click

from toolkit.cli.params import LAB, changes_lab, only_some
from toolkit.lab import spec
from toolkit.progress import Progress
from toolkit.verify import GROUPS, run_verify
from toolkit.verify.report import render_table


@click.command("verify")
@click.argument("lab", type=LAB)
@only_some("--only", "groups", GROUPS, "group of checks")
@click.option("--quiet", is_flag=True, help="No progress lines, only the table.")
@changes_lab
def verify(lab: str, groups: tuple[str, ...], quiet: bool) -> None:
    """Run the verification suites against a lab; exit 1 if any check fails."""
    model = spec.load_lab(lab)
    report = run_verify(model, list(groups) or None, Progress(quiet=quiet))
    click.echo(render_table(report.results))
    counts = ", ".join(f"{n} {outcome}" for outcome, n in report.counts().items() if n)
    click.echo(
        f"\nlab {report.lab}: {'PASSED' if report.passed else 'FAILED'} ({counts}) "
        f"in {report.seconds:.1f}s"
    )
    click.echo(f"  reports: {report.markdown}\n           {report.junit_xml}")
    if not report.passed:
        raise SystemExit(1)
