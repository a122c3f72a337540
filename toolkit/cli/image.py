"""``k8slab image``: the node image."""

from __future__ import annotations

import click

from toolkit.hosts.image import build_node_image
from toolkit.progress import Progress


@click.group()
def image() -> None:
    """The node image lab hosts boot from."""


@image.command("build")
@click.option("--force", is_flag=True, help="Rebuild even if an image of this recipe exists.")
def build(force: bool) -> None:
    """Build the Debian node image (a no-op when the recipe's image exists)."""
    progress = Progress()
    built = build_node_image(progress, force=force)
    click.echo(f"{built.tag} ready in {progress.elapsed():.1f}s")
