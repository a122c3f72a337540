"""``k8slab conformance LAB``: upstream's conformance suite, run inside the lab."""

from __future__ import annotations

import click

from toolkit.cli.params import LAB, changes_lab
from toolkit.conformance import Options, run_conformance, summary_lines
from toolkit.lab import spec
from toolkit.progress import Progress


@click.command("conformance")
@click.argument("lab", type=LAB)
@click.option("--focus", default=Options.focus, help="Run the specs matching this regex.")
@click.option("--skip", multiple=True, help="Skip the specs matching this regex (repeatable).")
@click.option("--parallel", type=click.IntRange(1, 8), default=1, help="ginkgo processes.")
@click.option("--no-default-skips", is_flag=True, help="Run the specs skipped by default too.")
@click.option("--dry-run", is_flag=True, help="List the specs a run would run, run none.")
@changes_lab
def conformance(
    lab: str,
    focus: str,
    skip: tuple[str, ...],
    parallel: int,
    no_default_skips: bool,
    dry_run: bool,
) -> None:
    """Run the Kubernetes conformance suite in LAB; exit 1 unless every spec passes.

    The specs are the [Conformance] ones unless --focus says otherwise, less those of
    toolkit/conformance/default-skips.txt (--no-default-skips keeps them) and --skip.
    With --parallel N, ginkgo runs N processes, and the [Serial] specs alone at the end.
    Needs the bundle's conformance part (`k8slab bundle build --with conformance`).
    Ctrl-C stops the suite and still collects its reports.
    """
    options = Options(focus, skip, parallel, not no_default_skips, dry_run)
    result = run_conformance(spec.load_lab(lab), options, Progress())
    click.echo("\n".join(summary_lines(result)))
    if not result.passed:
        raise SystemExit(1)
