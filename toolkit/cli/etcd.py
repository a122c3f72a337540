"""Commands about a lab's etcd: backup, backups, restore."""

from __future__ import annotations

import time

import click

from toolkit import etcd
from toolkit.cli.params import LAB, changes_lab
from toolkit.lab import spec
from toolkit.progress import Progress


@click.group("etcd")
def etcd_group() -> None:
    """Back up and restore a lab's etcd."""


@etcd_group.command("backup")
@click.argument("lab", type=LAB)
@click.option("--keep", type=click.IntRange(min=1), help="Then keep only the newest N snapshots.")
@click.option("--member", help="Snapshot this member (default: a follower).")
@changes_lab
def backup_command(lab: str, keep: int | None, member: str | None) -> None:
    """Snapshot etcd over TLS, check it and copy it into the lab's backup directory."""
    model = spec.load_lab(lab)
    result = etcd.backup(model, keep=keep, member=member, progress=Progress())
    m = result.manifest
    click.echo(
        f"lab {model.name}: snapshot of {m.member} at revision {m.revision}, {m.total_keys} keys, "
        f"{m.size / 1e6:.1f} MB in {result.seconds:.1f}s\n  {result.path}"
    )
    for path in result.pruned:
        click.echo(f"  pruned {path.name}")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


@etcd_group.command("backups")
@click.argument("lab", type=LAB)
def backups_command(lab: str) -> None:
    """List the lab's snapshots: revision, keys, size and age."""
    model = spec.load_lab(lab)
    entries = etcd.list_backups(model.name)
    if not entries:
        click.echo(f"lab {model.name}: no snapshots; run `k8slab etcd backup {model.name}`")
        return
    now = time.time()
    click.echo(f"{'SNAPSHOT':<44}{'REVISION':>10}{'KEYS':>8}{'SIZE':>10}{'AGE':>6}  MEMBER")
    for entry in entries:
        m = entry.manifest
        revision, keys, member = (
            (str(m.revision), str(m.total_keys), m.member) if m else ("?", "?", "no manifest")
        )
        click.echo(
            f"{entry.path.name:<44}{revision:>10}{keys:>8}{entry.size / 1e6:>8.1f}MB"
            f"{_age(entry.age_s(now)):>6}  {member}"
        )


@etcd_group.command("restore")
@click.argument("lab", type=LAB)
@click.argument("snapshot", required=False)
@click.option("--resume", is_flag=True, help="Finish the restore that was cut short.")
@click.option("--rollback", is_flag=True, help="Undo the restore that was cut short.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@changes_lab
def restore_command(
    lab: str, snapshot: str | None, resume: bool, rollback: bool, yes: bool
) -> None:
    """Restore SNAPSHOT (a path, a name from `backups`, or `latest`) onto every member.

    A restore cut short (a failure, Ctrl-C, SIGTERM) leaves a journal in the lab's state
    directory: --resume finishes it, --rollback undoes what each host went through.
    """
    if resume and rollback:
        raise click.UsageError("--resume and --rollback exclude each other")
    if (resume or rollback) == (snapshot is not None):
        raise click.UsageError(
            "give a SNAPSHOT to restore, or --resume or --rollback (without a SNAPSHOT)"
        )
    model = spec.load_lab(lab)
    if rollback:
        took = etcd.rollback(model, Progress())
        click.echo(
            f"lab {model.name}: rolled back to the data from before the restore in {took:.1f}s"
        )
        return
    if resume:
        result = etcd.resume(model, Progress())
    else:
        assert snapshot is not None
        path = etcd.resolve(model.name, snapshot)
        if not yes:
            click.confirm(
                f"Restore {path.name} onto lab {model.name}? The API is down during the restore "
                "and everything written since the snapshot is lost",
                abort=True,
            )
        result = etcd.restore(model, path, Progress())
    phases = ", ".join(f"{name} {took:.1f}s" for name, took in result.phases.items())
    click.echo(
        f"lab {model.name}: restored revision {result.revision} from {result.snapshot.name} in "
        f"{result.seconds:.1f}s ({phases})"
    )
    click.echo(
        f"  old data directories kept: {sorted(set(result.old_dirs.values()))[0]} on "
        + ", ".join(result.old_dirs)
    )
