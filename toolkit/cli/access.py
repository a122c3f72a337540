"""Commands that reach a lab from this machine: open, kubeconfig, k9s."""

from __future__ import annotations

import subprocess
import webbrowser

import click

from toolkit import access
from toolkit.cli.params import LAB
from toolkit.lab import spec


@click.command("open")
@click.argument("lab", type=LAB)
@click.argument("ui", required=False, default="")
@click.option("--browser", is_flag=True, help="Also open each URL in this machine's browser.")
def open_command(lab: str, ui: str, browser: bool) -> None:
    """The web UIs of the lab's add-ons (prometheus, logs), or the one named: their URLs."""
    for name, url in access.ui_urls(spec.load_lab(lab), ui).items():
        click.echo(f"{name:<12}{url}")
        if browser:
            webbrowser.open(url)


@click.command("kubeconfig")
@click.argument("lab", type=LAB)
def kubeconfig_command(lab: str) -> None:
    """The path of the lab's admin kubeconfig: KUBECONFIG=$(k8slab kubeconfig LAB) kubectl ..."""
    click.echo(access.kubeconfig(spec.load_lab(lab)))


@click.command("k9s")
@click.argument("lab", type=LAB)
def k9s_command(lab: str) -> None:
    """k9s, the terminal UI, against the lab (needs `k8slab bundle build --with k9s`)."""
    argv, env = access.k9s(spec.load_lab(lab))
    raise SystemExit(subprocess.run(argv, env=env, check=False).returncode)
