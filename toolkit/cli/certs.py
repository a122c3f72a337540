"""``k8slab certs``: when the lab's certificates expire, and their renewal."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from toolkit.certs import Certificate, certificates, expiring, renew
from toolkit.cli.params import LAB, changes_lab
from toolkit.lab import spec
from toolkit.progress import Progress

# Within this many days a certificate counts as expiring (exit 1).
WARN_DAYS = 30


@click.command("certs")
@click.argument("lab", type=LAB)
@click.option("--renew", "do_renew", is_flag=True, help="Renew them, one host at a time.")
def certs(lab: str, do_renew: bool) -> None:
    """Every certificate of LAB and when it expires; exit 1 if any does within 30 days.

    --renew: kubeadm's on each control plane, one at a time (static Pods restarted), and
    each external etcd member's, one member at a time (the member restarted).
    """
    if do_renew:
        _renew(lab=lab)
        return
    _show(certificates(spec.load_lab(lab)))


@changes_lab
def _renew(lab: str) -> None:
    _show(renew(spec.load_lab(lab), Progress()))


def _show(found: list[Certificate]) -> None:
    now = datetime.now(UTC)
    click.echo(f"{'HOST':<10}{'CERTIFICATE':<34}{'EXPIRES (UTC)':<22}{'LEFT':>8}  BY")
    for cert in sorted(found, key=lambda c: (c.host, not c.authority, c.name)):
        name = f"{cert.name} (CA)" if cert.authority else cert.name
        click.echo(
            f"{cert.host:<10}{name:<34}{cert.not_after:%Y-%m-%d %H:%M}{'':<6}"
            f"{cert.left(now).days:>7}d  {cert.managed_by}"
        )
    soon = expiring(found, now, WARN_DAYS)
    if soon:
        names = ", ".join(f"{c.host}/{c.name}" for c in soon)
        click.echo(f"expiring within {WARN_DAYS} days: {names}")
        raise SystemExit(1)
