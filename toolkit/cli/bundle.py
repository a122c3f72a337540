"""``k8slab bundle``: build, verify and list artifact bundles."""

from __future__ import annotations

import click

from toolkit import bundle as core
from toolkit.bundle import parts, upstream
from toolkit.progress import Progress
from toolkit.versions import DEFAULT_KUBERNETES_VERSION, supported_versions


def _size(n: int) -> str:
    return f"{n / 1e6:,.0f} MB"


@click.group()
def bundle() -> None:
    """Versioned bundles of the Kubernetes binaries and images a lab installs."""


@bundle.command("build")
@click.option(
    "--kubernetes",
    "version",
    default=DEFAULT_KUBERNETES_VERSION,
    show_default=True,
    help=f"Kubernetes version; one of {', '.join(supported_versions())}.",
)
@click.option(
    "--source",
    type=click.Choice(core.SOURCES),
    default="gomod",
    show_default=True,
    help="gomod: compile from the Go module proxy; upstream: official release files.",
)
@click.option(
    "--kubernetes-url",
    default=upstream.KUBERNETES_BASE,
    show_default=True,
    help="With --source upstream: where /release/<version>/bin/linux/amd64/ is served.",
)
@click.option(
    "--github-url",
    default=upstream.GITHUB_BASE,
    show_default=True,
    help="With --source upstream: where the other components' releases are served.",
)
@click.option(
    "--with",
    "with_parts",
    multiple=True,
    type=click.Choice(parts.NAMES),
    help="Also build this optional part into the bundle (repeatable): "
    + "; ".join(f"{part.name}, {part.what}" for part in parts.PARTS.values())
    + ".",
)
@click.option("--force", is_flag=True, help="Rebuild even if the bundle is complete.")
def build(
    version: str,
    source: str,
    kubernetes_url: str,
    github_url: str,
    with_parts: tuple[str, ...],
    force: bool,
) -> None:
    """Build the bundle of one Kubernetes version (a no-op when it is complete), and the
    optional parts asked for with --with."""
    progress = Progress()
    result = core.build(
        version,
        source,
        force=force,
        kubernetes_base=kubernetes_url,
        github_base=github_url,
        progress=progress,
    )
    _report(result, progress.elapsed())
    for name in dict.fromkeys(with_parts):
        started = progress.elapsed()
        built = parts.build_part(version, name, force=force, progress=progress)
        _report(built, progress.elapsed() - started)


def _report(result: core.BuildResult, seconds: float) -> None:
    size = sum(a.size for a in result.manifest.artifacts)
    verb = "already built" if result.reused else f"built in {seconds:.0f}s"
    click.echo(f"{result.path}: {verb}, {len(result.manifest.artifacts)} artifacts, {_size(size)}")


@bundle.command("verify")
@click.argument("version", default=DEFAULT_KUBERNETES_VERSION)
def verify(version: str) -> None:
    """Re-check every artifact's sha256 and every binary's reported version, the optional
    parts' too."""
    verified = parts.verify_all(version, Progress())
    manifest = core.load(version)
    noun = "part" if len(verified) == 1 else "parts"
    with_parts = f" and its {' and '.join(verified)} {noun}" if verified else ""
    click.echo(
        f"bundle {manifest.kubernetes}: {len(manifest.artifacts)} artifacts{with_parts} verified"
    )


@bundle.command("list")
def list_() -> None:
    """The bundles in the cache, their size and whether they are complete."""
    found = core.list_bundles()
    if not found:
        click.echo("no bundles; build one with `k8slab bundle build`")
        return
    click.echo(f"{'VERSION':<10} {'STATE':<10} {'ARTIFACTS':>9} {'SIZE':>9}  NOTE")
    for b in found:
        state = "complete" if b.complete else "INCOMPLETE"
        note = f"{b.note}, with {', '.join(b.parts)}" if b.parts else b.note
        stale = parts.older_recipes(b.version) if b.complete else []
        if stale:
            note += f"; older recipe: {', '.join(stale)} (`bundle build` rebuilds)"
        click.echo(f"{b.version:<10} {state:<10} {b.artifacts:>9} {_size(b.size):>9}  {note}")
