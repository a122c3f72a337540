"""The ``k8slab`` command: thin click commands over the toolkit's library."""

from __future__ import annotations

import importlib
import sys
from typing import Any, cast

import click

from toolkit import __version__
from toolkit.errors import K8slabError

# Each command and the module that defines it, in the order --help lists them. A command's
# module is imported only when that command runs, so `k8slab validate` does not load
# paramiko, pytest or ansible-runner.
COMMANDS = {
    "validate": "toolkit.cli.spec:validate",
    "labs": "toolkit.cli.spec:labs",
    "up": "toolkit.cli.lab:up",
    "preflight": "toolkit.cli.lab:preflight",
    "provision": "toolkit.cli.cluster:provision_command",
    "reset": "toolkit.cli.cluster:reset_command",
    "kubectl": "toolkit.cli.cluster:kubectl",
    "status": "toolkit.cli.lab:status",
    "ssh": "toolkit.cli.lab:ssh",
    "destroy": "toolkit.cli.lab:destroy",
    "scale": "toolkit.cli.scale:scale_command",
    "verify": "toolkit.cli.verify:verify",
    "doctor": "toolkit.cli.doctor:doctor",
    "image": "toolkit.cli.image:image",
    "bundle": "toolkit.cli.bundle:bundle",
    "etcd": "toolkit.cli.etcd:etcd_group",
    "drill": "toolkit.cli.drill:drill",
    "upgrade": "toolkit.cli.upgrade:upgrade_command",
    "certs": "toolkit.cli.certs:certs",
    "conformance": "toolkit.cli.conformance:conformance",
    "open": "toolkit.cli.access:open_command",
    "kubeconfig": "toolkit.cli.access:kubeconfig_command",
    "k9s": "toolkit.cli.access:k9s_command",
}


class ErrorReportingGroup(click.Group):
    """Loads each command when it is used, and turns a K8slabError into its message and
    exit status 1; the traceback only with --debug."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute = COMMANDS[cmd_name].split(":")
        return cast(click.Command, getattr(importlib.import_module(module), attribute))

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
