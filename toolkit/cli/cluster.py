"""Commands about a lab's cluster: provision, reset, kubectl."""

from __future__ import annotations

import click

from toolkit import kube
from toolkit.cli.params import LAB, changes_lab, only_some
from toolkit.lab import spec
from toolkit.lab.state import LabState
from toolkit.progress import Progress
from toolkit.provision.report import ProvisionReport
from toolkit.provision.run import PHASE_NAMES, provision_cluster, reset


def print_summary(report: ProvisionReport) -> None:
    click.echo(
        f"lab {report.lab}: provisioned in {report.seconds:.1f}s "
        f"(kubeadm {report.kubeadm_seconds:.1f}s, everything else "
        f"{report.seconds - report.kubeadm_seconds:.1f}s)"
    )
    for phase in report.phases:
        changed = sum(phase.changed.values())
        click.echo(f"  {phase.name:<14}{phase.seconds:7.1f}s  changed {changed}")
    changed_hosts = {host: n for host, n in report.changed.items() if n}
    if report.idempotent:
        click.echo("  no host changed anything: the lab had already converged (changed=0)")
    else:
        click.echo(
            "  changed per host: " + ", ".join(f"{h}={n}" for h, n in sorted(changed_hosts.items()))
        )


@click.command("provision")
@click.argument("lab", type=LAB)
@only_some("--phase", "phases", PHASE_NAMES, "phase")
@changes_lab
def provision_command(lab: str, phases: tuple[str, ...]) -> None:
    """Install the cluster onto the lab's hosts (idempotent: run it again to check)."""
    model = spec.load_lab(lab)
    progress = Progress()
    report = provision_cluster(model, list(phases), progress)
    print_summary(report)
    click.echo(f"  report: {LabState.of(model.name).root / 'timings' / 'provision.json'}")


@click.command("reset")
@click.argument("lab", type=LAB)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@changes_lab
def reset_command(lab: str, yes: bool) -> None:
    """Wipe the cluster from the lab's hosts (they stay up, ready to provision again)."""
    model = spec.load_lab(lab)
    if not yes:
        click.confirm(
            f"This wipes the Kubernetes cluster and etcd data of every host of {model.name}. "
            "Go on?",
            abort=True,
        )
    stats = reset(model, Progress())
    changed = ", ".join(f"{host}={n}" for host, n in sorted(stats.changed.items()) if n)
    click.echo(f"lab {model.name}: reset ({changed or 'nothing to change'})")


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("lab", type=LAB)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def kubectl(lab: str, args: tuple[str, ...]) -> None:
    """Run kubectl against the lab (on its first control plane): k8slab kubectl LAB -- ARGS."""
    model = spec.load_lab(lab)
    status, output = kube.kubectl(model, args, timeout=120)
    click.echo(output, nl=False)
    if status != 0:
        raise SystemExit(status)
