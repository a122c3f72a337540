"""``k8slab scale``: add or remove nodes; the spec is edited once the lab has converged."""

from __future__ import annotations

import click

from toolkit.cli.cluster import print_summary
from toolkit.cli.params import LAB, changes_lab
from toolkit.lab import spec
from toolkit.progress import Progress
from toolkit.scale import ScaleRequest, resume, scale


@click.command("scale")
@click.argument("lab", type=LAB)
@click.option(
    "--add-worker", "add_workers", multiple=True, metavar="NAME", help="Add a worker (repeatable)."
)
@click.option(
    "--add-control-plane",
    "add_control_planes",
    multiple=True,
    metavar="NAME",
    help="Add a control plane (repeatable; stacked etcd: two at a time).",
)
@click.option(
    "--address",
    "addresses",
    multiple=True,
    metavar="A",
    help=(
        "An added node's address, one per added node: control planes first, then workers, "
        "each in the order given (default: the next free ones)."
    ),
)
@click.option("--remove", multiple=True, metavar="NODE", help="Remove a node (repeatable).")
@click.option("--resume", "resume_only", is_flag=True, help="Finish the scale that was cut short.")
@changes_lab
def scale_command(
    lab: str,
    add_workers: tuple[str, ...],
    add_control_planes: tuple[str, ...],
    addresses: tuple[str, ...],
    remove: tuple[str, ...],
    resume_only: bool,
) -> None:
    """Grow or shrink LAB: the whole change is checked first, the lab converges, then its
    spec is edited in place (comments kept). A run cut short resumes when run again."""
    model = spec.load_lab(lab)
    request = ScaleRequest(add_workers, add_control_planes, addresses, remove)
    progress = Progress()
    if resume_only:
        if request != ScaleRequest():
            raise click.UsageError("--resume takes no nodes: it finishes the journaled scale")
        result = resume(model, progress)
    else:
        result = scale(model, request, progress)
    took = ", ".join(f"{step} {s:.1f}s" for step, s in result.phases.items())
    verb = "added" if result.kind == "add" else "removed"
    click.echo(
        f"lab {result.lab}: {verb} {', '.join(result.nodes)} in {result.seconds:.1f}s"
        + (" (resumed)" if result.resumed else "")
    )
    click.echo(f"  steps: {took or 'none left'}")
    for line in result.notes:
        click.echo(f"  {line}")
    if result.provision is not None:
        print_summary(result.provision)
    click.echo(f"  spec: {model.source} now lists the lab as it is")
