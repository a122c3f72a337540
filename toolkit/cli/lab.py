"""Commands about one lab's hosts: up, preflight, status, ssh, destroy."""

from __future__ import annotations

import contextlib
import json
import os

import click

from toolkit.cli.cluster import print_summary
from toolkit.cli.params import LAB, changes_lab
from toolkit.errors import HostError, LabNotFoundError
from toolkit.hosts import lifecycle
from toolkit.hosts.preflight import run_preflight
from toolkit.lab import spec
from toolkit.lab.state import LabState
from toolkit.progress import SILENT, Progress
from toolkit.provision.run import check_bundle, reset, up_cluster


@click.command()
@click.argument("lab", type=LAB)
@click.option("--hosts-only", is_flag=True, help="Stop once the hosts answer SSH.")
@changes_lab
def up(lab: str, hosts_only: bool) -> None:
    """Create the lab's hosts and provision them into a cluster whose nodes are all Ready."""
    model = spec.load_lab(lab)
    if not hosts_only:
        check_bundle(model)  # before any host exists
    progress = Progress()
    lifecycle.up_hosts(model, progress)
    state = LabState.of(model.name)
    report = None if hosts_only else up_cluster(model, progress)
    phases = ", ".join(f"{name} {took:.1f}s" for name, took in progress.durations.items())
    what = "hosts up" if hosts_only else "cluster Ready"
    click.echo(
        f"lab {model.name}: {len(model.nodes)} {what} in {progress.elapsed():.1f}s ({phases})"
    )
    if report is not None:
        print_summary(report)
    click.echo(f"  inventory:  {state.inventory}")
    click.echo(f"  ssh config: {state.ssh_config}")


@click.command()
@click.argument("lab", type=LAB)
def preflight(lab: str) -> None:
    """Check every host of the lab at once, changing nothing on them (`up` does it first
    on existing hosts); exit 1 listing every problem of every host."""
    model = spec.load_lab(lab)
    result = run_preflight(model, SILENT)
    for check in result.hosts:
        click.echo(f"{check.node.name:<10}{check.node.address!s:<16}{check.summary}")
        if check.new_key:
            click.echo(f"{'':<26}host key trusted on first use: {check.new_key}")
    result.raise_if_failed()
    click.echo(f"lab {model.name}: all {len(result.hosts)} hosts pass the preflight")


@click.command()
@click.argument("lab", type=LAB)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(lab: str, as_json: bool) -> None:
    """Each node of the lab: state, address and whether it answers SSH."""
    model = spec.load_lab(lab)
    statuses = lifecycle.lab_status(model)
    if as_json:
        click.echo(json.dumps(lifecycle.status_rows(statuses), indent=2))
    else:
        click.echo(f"{'NODE':<10}{'ROLE':<15}{'ADDRESS':<16}{'STATE':<13}SSH")
        for node in statuses:
            ssh_state = "reachable" if node.reachable else "unreachable"
            click.echo(
                f"{node.name:<10}{node.role:<15}{node.address:<16}{node.state:<13}{ssh_state}"
            )
    if not all(node.reachable for node in statuses):
        raise SystemExit(1)


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("lab", type=LAB)
@click.argument("node")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ssh(lab: str, node: str, command: tuple[str, ...]) -> None:
    """Open a shell on NODE, or run COMMAND there (after --)."""
    model = spec.load_lab(lab)
    model.node(node)
    state = LabState.of(model.name)
    if not state.ssh_config.exists():
        raise HostError(
            f"lab {model.name} is not up ({state.ssh_config} is missing); "
            f"run `k8slab up {model.name}`"
        )
    os.execvp("ssh", ["ssh", "-F", str(state.ssh_config), node, *command])


@click.command()
@click.argument("lab", type=LAB)
@click.option("--purge", is_flag=True, help="Also delete the lab's etcd backups (kept otherwise).")
@click.option("--yes", is_flag=True, help="Do not ask before resetting existing hosts.")
@changes_lab
def destroy(lab: str, purge: bool, yes: bool) -> None:
    """Remove the lab's hosts, network, volumes and state directory (safe to repeat).

    Hosts k8slab did not make (provider: existing) are never removed: their cluster is
    reset (after asking; --yes does not ask) and the lab's state forgotten. The lab's etcd
    backups are kept in its state directory unless --purge is given.
    """
    name, provider = lab, "docker"
    # A lab whose spec is gone can still have hosts; clean those up too.
    with contextlib.suppress(LabNotFoundError):
        model = spec.load_lab(lab)
        name, provider = model.name, model.provider
        if model.existing:
            _reset_existing(model, yes)
    result = lifecycle.destroy_lab(name, provider, Progress(), purge=purge)
    removed = result.removed
    click.echo(f"lab {name}: removed {len(removed)} objects" + "".join(f"\n  {r}" for r in removed))
    if result.left:
        click.echo(
            f"  left {len(result.left)} docker objects named for {name} that another state "
            "directory owns:" + "".join(f"\n    {o}" for o in result.left)
        )
    if result.kept_backups is not None:
        count = len(list(result.kept_backups.glob("*.db")))
        click.echo(
            f"  kept {count} etcd snapshot(s) in {result.kept_backups} "
            f"(`k8slab etcd backups {name}` lists them; `--purge` deletes them)"
        )


def _reset_existing(model: spec.Lab, yes: bool) -> None:
    """Wipe the cluster from hosts k8slab did not make, which stay up; nothing to do if
    the lab never reached them."""
    if not LabState.of(model.name).inventory.exists():
        return
    if not yes:
        click.confirm(
            f"Lab {model.name}'s hosts were not made by k8slab, so they stay: destroy wipes "
            "the Kubernetes cluster and etcd data from every one of them (`k8slab reset`) and "
            "forgets the lab's state. Go on?",
            abort=True,
        )
    stats = reset(model, Progress())
    changed = ", ".join(f"{host}={n}" for host, n in sorted(stats.changed.items()) if n)
    click.echo(f"lab {model.name}: hosts reset ({changed or 'nothing to change'}), left running")
