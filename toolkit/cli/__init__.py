"""The ``k8slab`` command: thin click commands over the toolkit's library."""

from __future__ import annotations

import sys
from typing import Any

import click

from toolkit import __version__
from toolkit.cli.bundle import bundle
from toolkit.cli.cluster import kubectl, provision_command, reset_command
from toolkit.cli.doctor import doctor
from toolkit.cli.drill import drill
from toolkit.cli.etcd import etcd_group
from toolkit.cli.image import image
from toolkit.cli.lab import destroy, labs, ssh, status, up, validate
from toolkit.cli.verify import verify
from toolkit.errors import K8slabError


class ErrorReportingGroup(click.Group):
    """Turns a K8slabError into its message and exit status 1; the traceback only with --debug."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except K8slabError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=ErrorReportingGroup)
@click.version_option(__version__, prog_name="k8slab")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Build Kubernetes lab clusters on real hosts and prove they work."""
    ctx.obj = {"debug": debug}


for command in (
    validate,
    labs,
    up,
    provision_command,
    reset_command,
    kubectl,
    status,
    ssh,
    destroy,
    verify,
    doctor,
    image,
    bundle,
    etcd_group,
    drill,
):
    main.add_command(command)
