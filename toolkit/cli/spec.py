"""Commands that only read lab specs: validate, labs. They import nothing that reaches a
host, so a bad spec is refused as fast as Python starts."""

from __future__ import annotations

import json

import click

from toolkit.cli.params import LAB
from toolkit.errors import SpecError
from toolkit.lab import spec
from toolkit.lab.state import LabState, is_lab_name


@click.command()
@click.argument("lab", type=LAB)
def validate(lab: str) -> None:
    """Check a lab spec (a lab name or a path to a lab.yml); nothing is created."""
    model = spec.load_lab(lab)
    click.echo(
        f"{model.source}: valid ({len(model.control_planes)} control planes, "
        f"{len(model.etcd_hosts)} etcd hosts, {len(model.workers)} workers, "
        f"{model.etcd_topology} etcd, {model.provider})"
    )


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def labs(as_json: bool) -> None:
    """List the labs under inventories/."""
    rows = []
    for name in spec.available_labs():
        try:
            row: dict[str, object] = spec.labs_summary([spec.load_lab(name)])[0]
        except SpecError as exc:
            row = {"name": name, "error": str(exc).splitlines()[0]}
        row["state"] = _state_word(name)
        rows.append(row)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'LAB':<14}{'TOPOLOGY':<10}{'CP':>3}{'ETCD':>5}{'WORKERS':>8}  {'K8S':<9}STATE")
    for row in rows:
        if "error" in row:
            click.echo(f"{row['name']:<14}invalid: {row['error']}")
            continue
        click.echo(
            f"{row['name']:<14}{row['topology']:<10}{row['control_planes']:>3}{row['etcd']:>5}"
            f"{row['workers']:>8}  {row['kubernetes']:<9}{row['state']}"
        )


def _state_word(name: str) -> str:
    """present, absent, or backups (a destroyed lab whose etcd snapshots were kept)."""
    if not is_lab_name(name):
        return "absent"
    state = LabState.of(name)
    if not state.exists():
        return "absent"
    return "backups" if state.only_backups() else "present"
