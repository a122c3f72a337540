"""What drills do to a lab: kubectl on a chosen control plane, the health gate, and stopping
and starting a whole host."""

from __future__ import annotations

import json
import shlex
import time
from typing import Any

from toolkit.drills.probes import PROBE_DIR
from toolkit.errors import HostError, K8slabError
from toolkit.etcd import cluster, remote
from toolkit.etcd.status import EtcdError
from toolkit.etcd.topology import Topology
from toolkit.hosts.engine import DockerNames
from toolkit.hosts.ssh import wait_until_ready
from toolkit.hosts.vagrant import Vagrant
from toolkit.lab.spec import APISERVER_PORT, Lab, Node
from toolkit.lab.state import LabState
from toolkit.progress import SILENT, Progress
from toolkit.provision.cluster import is_ready
from toolkit.shell import run

ADMIN = "kubectl --kubeconfig /etc/kubernetes/admin.conf"


class DrillError(K8slabError):
    """A drill could not start or could not go on."""


def kubectl(lab: Lab, args: str, on: Node | None = None, timeout: float = 60) -> tuple[int, str]:
    """kubectl (admin) on ``on`` (default: the first control plane), through the VIP."""
    return remote.try_root(lab, on or lab.control_planes[0], f"{ADMIN} {args}", timeout=timeout)


def kubectl_ok(lab: Lab, args: str, on: Node | None = None, timeout: float = 60) -> str:
    return remote.root(lab, on or lab.control_planes[0], f"{ADMIN} {args}", timeout=timeout)


def kubectl_json(lab: Lab, args: str, on: Node | None = None) -> Any:
    return json.loads(kubectl_ok(lab, f"{args} -o json", on))


def apply(lab: Lab, manifest: str, on: Node | None = None) -> str:
    return remote.root(
        lab, on or lab.control_planes[0], f"{ADMIN} apply -f - <<'EOF'\n{manifest}\nEOF"
    )


def api_answers(lab: Lab, on: Node) -> bool:
    """``/readyz`` through the VIP answers ``ok``, asked from inside ``on``."""
    url = f"https://{lab.api_vip}:{lab.api_port}/readyz"
    status, output = remote.try_root(lab, on, f"curl -sk --max-time 5 {url}", timeout=20)
    return status == 0 and output.strip() == "ok"


# Each API server's own readiness, asked of its address with a client certificate of the
# cluster CA (as verify asks it): through the VIP, haproxy hides a server that is not ready.
APISERVER_CLIENT_CERT = (
    "--cacert /etc/kubernetes/pki/ca.crt --cert /etc/kubernetes/pki/apiserver-kubelet-client.crt "
    "--key /etc/kubernetes/pki/apiserver-kubelet-client.key"
)


def apiservers_not_ready(lab: Lab) -> list[str]:
    """Each control plane's API server whose own ``/readyz`` is not ok, with the checks it
    fails (e.g. ``[-]etcd failed``); asked from the first control plane in one command."""
    urls = {
        cp.name: f"https://{cp.address}:{APISERVER_PORT}/readyz?verbose"
        for cp in lab.control_planes
    }
    script = " ; ".join(
        f"echo '=== {name}'; curl -sS --max-time 10 {APISERVER_CLIENT_CERT} {shlex.quote(url)}"
        for name, url in urls.items()
    )
    _, output = remote.try_root(lab, lab.control_planes[0], script, timeout=20 + 12 * len(urls))
    answers: dict[str, list[str]] = {}
    current = ""
    for line in output.splitlines():
        if line.startswith("=== "):
            current = line[4:].strip()
            answers[current] = []
        elif current:
            answers[current].append(line.strip())
    problems = []
    for name in urls:
        lines = answers.get(name, [])
        if "readyz check passed" not in lines:
            failing = (
                ", ".join(line for line in lines if line.startswith(("[-]", "curl:")))
                or "no answer"
            )
            problems.append(f"the API server on {name} is not ready: {failing}")
    return problems


def not_ready_nodes(lab: Lab) -> list[str]:
    status, output = kubectl(lab, "get nodes -o json", timeout=30)
    if status != 0:
        return [f"kubectl get nodes failed: {output.strip()[-200:]}"]
    ready = {node["metadata"]["name"] for node in json.loads(output)["items"] if is_ready(node)}
    return sorted({n.name for n in lab.control_planes + lab.workers} - ready)


def pods_not_ready_on(lab: Lab, node: Node) -> list[str]:
    """The Pods (any namespace) scheduled on ``node`` that are not Running and Ready."""
    pods = kubectl_json(lab, f"get pods -A --field-selector spec.nodeName={node.name}")
    return sorted(
        f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        for pod in pods["items"]
        if pod["status"].get("phase") != "Running" or not is_ready(pod)
    )


def health_problems(lab: Lab) -> list[str]:
    """The drill's own gate: API answering through the VIP, every API server's own /readyz,
    every node Ready, etcd healthy with one leader and every member in the member list.
    Empty when healthy."""
    problems = []
    probe_from = lab.workers[0] if lab.workers else lab.control_planes[0]
    try:
        if not api_answers(lab, probe_from):
            problems.append(f"the API at {lab.api_vip}:{lab.api_port} does not answer /readyz")
        problems += apiservers_not_ready(lab)
        problems += [f"node {name} is not Ready" for name in not_ready_nodes(lab)]
        topo = Topology(lab)
        found = cluster.health(topo)
        problems += [f"etcd: {p}" for p in found.problems]
        names = sorted(m.name for m in cluster.members(topo))
        if names != sorted(m.name for m in topo.members):
            problems.append(f"etcd member list is {names}")
    except (HostError, EtcdError) as exc:
        problems.append(str(exc))
    return problems


def wait_healthy(lab: Lab, deadline_s: float = 300, interval_s: float = 5) -> float:
    started = time.monotonic()
    problems = ["not checked yet"]
    while time.monotonic() - started < deadline_s:
        problems = health_problems(lab)
        if not problems:
            return time.monotonic() - started
        time.sleep(interval_s)
    raise DrillError(
        f"lab {lab.name} is not healthy (for {deadline_s:.0f}s): {'; '.join(problems)}"
    )


def vip_holder(lab: Lab) -> Node | None:
    for node in lab.control_planes:
        try:
            status, _ = remote.try_root(
                lab, node, f"ip -o -4 addr show | grep -qw {lab.api_vip}", timeout=15
            )
        except HostError:
            continue
        if status == 0:
            return node
    return None


def stop_host(lab: Lab, node: Node) -> None:
    """Stop the whole host (container or VM), as a power loss would."""
    if lab.provider == "docker":
        run(["docker", "stop", "--time", "10", DockerNames(lab.name).container(node)], timeout=120)
    else:
        vagrant = Vagrant(LabState.of(lab.name))
        run(["vagrant", "halt", "--force", node.name], env=vagrant.env(lab.provider), timeout=300)


def start_host(lab: Lab, node: Node, progress: Progress = SILENT) -> float:
    """Start the host again and wait until systemd has booted; return seconds."""
    started = time.monotonic()
    if lab.provider == "docker":
        run(["docker", "start", DockerNames(lab.name).container(node)], timeout=120)
    else:
        vagrant = Vagrant(LabState.of(lab.name))
        run(["vagrant", "up", node.name], env=vagrant.env(lab.provider), timeout=600)
    wait_until_ready(remote.target(lab, node), deadline_s=180)
    progress.say("host", "booted", node.name)
    return time.monotonic() - started


def remove_probe_files(lab: Lab) -> list[str]:
    """Remove the probes' logs and the admin credentials they decoded from every node;
    the nodes it could not reach (a later ``k8slab reset`` removes it there too)."""
    unreached = []
    for node in lab.control_planes + lab.workers:
        try:
            remote.root(lab, node, f"rm -rf {PROBE_DIR}", timeout=30)
        except HostError:
            unreached.append(node.name)
    return unreached


def services_active(lab: Lab, node: Node, units: list[str]) -> dict[str, str]:
    _, output = remote.try_root(
        lab, node, f"systemctl is-active {' '.join(map(shlex.quote, units))}"
    )
    return dict(zip(units, output.split(), strict=False))
