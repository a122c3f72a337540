"""``k8slab doctor``: what is missing on this machine and how to install it."""

from __future__ import annotations

import click

from toolkit.doctor import run_checks


@click.command()
def doctor() -> None:
    """Check the engine, Vagrant and its plugins, debootstrap, Python deps, memory, disk."""
    checks = run_checks()
    width = max(len(check.name) for check in checks)
    for check in checks:
        mark = "ok  " if check.ok else "MISS"
        line = f"[{mark}] {check.name:<{width}} {check.detail}"
        if check.fix:
            line += f"\n       fix: {check.fix}"
        click.echo(line)
    missing = [check for check in checks if not check.ok]
    click.echo(f"{len(checks) - len(missing)} ok, {len(missing)} to fix")
    if missing:
        raise SystemExit(1)
