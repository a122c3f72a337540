"""What every drill does to a lab besides talking to its API (that is :mod:`toolkit.kube`):
the health gate, stopping and starting a whole host, the probes on lab nodes, and the
drill's own namespaces and ConfigMaps."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable

from toolkit import kube
from toolkit.constants import DRILL_DIR
from toolkit.drills import probes
from toolkit.drills.report import DrillResult
from toolkit.errors import HostError, K8slabError
from toolkit.etcd import cluster
from toolkit.etcd.status import EtcdError
from toolkit.etcd.topology import Topology
from toolkit.hosts import remote
from toolkit.hosts.engine import DockerNames
from toolkit.hosts.ssh import wait_until_ready
from toolkit.hosts.vagrant import Vagrant
from toolkit.lab.spec import Lab, Node
from toolkit.lab.state import LabState
from toolkit.poll import PollTimeout, problems_gone, wait_until
from toolkit.progress import SILENT, Progress
from toolkit.shell import run


class DrillError(K8slabError):
    """A drill could not start or could not go on."""


# --- the health gate ----------------------------------------------------------------------------


def health_problems(lab: Lab) -> list[str]:
    """The drill's own gate: API answering through the VIP, every API server's own /readyz,
    every node Ready, etcd healthy with one leader and every member in the member list.
    Empty when healthy."""
    problems = []
    probe_from = lab.workers[0] if lab.workers else lab.control_planes[0]
    try:
        if not kube.api_answers(lab, probe_from):
            problems.append(f"the API at {lab.api_vip}:{lab.api_port} does not answer /readyz")
        problems += kube.apiservers_not_ready(lab)
        problems += [f"node {name} is not Ready" for name in kube.not_ready_nodes(lab)]
        topo = Topology(lab)
        found = cluster.health(topo)
        problems += [f"etcd: {p}" for p in found.problems]
        names = sorted(m.name for m in cluster.members(topo))
        if names != sorted(m.name for m in topo.members):
            problems.append(f"etcd member list is {names}")
    except (HostError, kube.ClusterError, EtcdError) as exc:
        problems.append(str(exc))
    return problems


def wait_healthy(lab: Lab, timeout_s: float = 300, interval_s: float = 5) -> float:
    """Wait (bounded) until the gate finds nothing wrong; return the seconds waited."""
    try:
        return wait_until(
            lambda: health_problems(lab),
            problems_gone,
            timeout_s=timeout_s,
            interval_s=interval_s,
            what=f"lab {lab.name} healthy",
        )
    except PollTimeout as exc:
        raise DrillError(
            f"lab {lab.name} is not healthy (for {timeout_s:.0f}s): {exc.last}"
        ) from exc


# --- whole hosts -------------------------------------------------------------------------------


def check_host_power(lab: Lab, what: str) -> None:
    """Stopping and starting a whole host: k8slab knows how on hosts it made; on existing
    hosts only with the lab's own commands for it (host_power in the spec)."""
    if lab.existing and lab.host_power is None:
        raise DrillError(
            f"{what} needs a way to stop and start a whole host, and lab {lab.name}'s hosts "
            f"were not made by k8slab: say how in {lab.source}, e.g. host_power: {{stop: 'virsh "
            "destroy lab-{name}', start: 'virsh start lab-{name}'} (commands run on this "
            "machine, without a shell; {name} and {address} become the node's)"
        )


def stop_host(lab: Lab, node: Node) -> None:
    """Stop the whole host (container or VM), as a power loss would."""
    if lab.existing:
        check_host_power(lab, f"stopping {node.name}")
        assert lab.host_power is not None
        run(lab.host_power.argv("stop", node), timeout=300)
    elif lab.provider == "docker":
        run(["docker", "stop", "--time", "10", DockerNames(lab.name).container(node)], timeout=120)
    else:
        vagrant = Vagrant(LabState.of(lab.name))
        run(["vagrant", "halt", "--force", node.name], env=vagrant.env(lab.provider), timeout=300)


def start_host(lab: Lab, node: Node, progress: Progress = SILENT) -> float:
    """Start the host again and wait until systemd has booted; return seconds."""
    started = time.monotonic()
    if lab.existing:
        check_host_power(lab, f"starting {node.name}")
        assert lab.host_power is not None
        run(lab.host_power.argv("start", node), timeout=300)
    elif lab.provider == "docker":
        run(["docker", "start", DockerNames(lab.name).container(node)], timeout=120)
    else:
        vagrant = Vagrant(LabState.of(lab.name))
        run(["vagrant", "up", node.name], env=vagrant.env(lab.provider), timeout=600)
    # A machine boots slower than a container.
    wait_until_ready(remote.target(lab, node), deadline_s=600 if lab.existing else 180)
    progress.say("host", "booted", node.name)
    return time.monotonic() - started


def services_active(lab: Lab, node: Node, units: list[str]) -> dict[str, str]:
    _, output = remote.try_root(
        lab, node, f"systemctl is-active {' '.join(map(shlex.quote, units))}"
    )
    return dict(zip(units, output.split(), strict=False))


# --- probes on lab nodes ------------------------------------------------------------------------


def install_admin_credentials(lab: Lab, node: Node) -> None:
    """Decode admin.conf's client certificate into the probes' directory, for curl."""
    remote.root(lab, node, f"umask 077; mkdir -p {DRILL_DIR}; {probes.admin_credentials_command()}")


def start_probe(lab: Lab, node: Node, name: str, script: str) -> None:
    remote.root(lab, node, probes.start_command(name, script))


def stop_probe(
    lab: Lab, node: Node, name: str, wait_s: int = 60, ask: bool = True
) -> list[probes.Sample]:
    output = remote.root(lab, node, probes.stop_command(name, wait_s, ask), timeout=wait_s + 30)
    return probes.parse_samples(output)


def wait_for_samples(
    lab: Lab,
    node: Node,
    name: str,
    accept: Callable[[list[probes.Sample]], bool],
    timeout_s: float,
    what: str,
) -> float:
    """Wait (bounded) until the running probe's log so far satisfies ``accept``; seconds.
    :class:`PollTimeout` names the last samples seen."""
    return wait_until(
        lambda: probes.parse_samples(remote.root(lab, node, probes.read_command(name))),
        accept,
        timeout_s=timeout_s,
        interval_s=1,
        what=what,
        retry_on=(HostError,),
    )


def remove_probe_files(lab: Lab) -> list[str]:
    """Remove the probes' logs and the admin credentials they decoded from every node;
    the nodes it could not reach (a later ``k8slab reset`` removes it there too)."""
    unreached = []
    for node in lab.control_planes + lab.workers:
        try:
            remote.root(lab, node, f"rm -rf {DRILL_DIR}", timeout=30)
        except HostError:
            unreached.append(node.name)
    return unreached


# --- the drills' own objects -------------------------------------------------------------------


def delete_namespace(lab: Lab, namespace: str) -> None:
    args = ["delete", "namespace", namespace, "--ignore-not-found", "--wait", "--timeout=120s"]
    kube.kubectl(lab, args, timeout=150)


def configmaps(lab: Lab, namespace: str) -> dict[str, dict[str, str]]:
    items = kube.kubectl_json(lab, ["get", "configmaps", "-n", namespace])["items"]
    return {item["metadata"]["name"]: item.get("data") or {} for item in items}


def check_comes_true(result: DrillResult, name: str, wait: Callable[[], float]) -> bool:
    """Record check ``name``: passed when ``wait`` (a bounded :func:`wait_until`) returns,
    failed with the last state it saw when it runs out of time."""
    try:
        wait()
    except PollTimeout as exc:
        return result.check(name, False, f"last seen: {exc.last}")
    return result.check(name, True)
