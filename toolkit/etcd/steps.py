"""What a restore (and the drills) do on the hosts: stop and start etcd and the control
plane, stage a snapshot, swap data directories. Each action is safe to run again on a host
that already went through it, which is what makes ``--resume`` and ``--rollback`` work.
The shell programs are the packaged scripts in ``scripts/``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from types import FrameType

from toolkit.constants import ETCD_DATA_DIR, MANIFESTS_DIR
from toolkit.errors import HostError
from toolkit.etcd.topology import (
    RUNTIME_ENDPOINT,
    SCRIPTS,
    Topology,
    park_manifests_command,
    unpark_manifests_command,
)
from toolkit.hosts import remote
from toolkit.lab.spec import Lab, Node
from toolkit.progress import SILENT, Progress

STOP_DEADLINE_S = 120
STOP_GRACE_S = 10
# How long etcd may take to elect one leader once every member is started.
ETCD_HEALTHY_DEADLINE_S = 180
# What "control-plane-stopped" stops: every component that talks to the API server or
# caches its state, so that none runs on with state from before the snapshot.
CONTROL_PLANE_PODS = ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM, taken at a point where the journal is up to date."""


_interrupt = threading.Event()
_interrupt_name: list[str] = []


@contextmanager
def interruptible(progress: Progress = SILENT) -> Iterator[None]:
    """Within this block (main thread only), a first SIGINT or SIGTERM asks to stop:
    ``on_each`` and ``check_interrupted`` raise ``Interrupted`` once what is under way on
    the hosts has ended. A second one raises at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def asked(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if _interrupt.is_set():
            raise Interrupted(name)
        _interrupt_name[:] = [name]
        _interrupt.set()
        progress.say(
            "interrupt",
            f"{name}: stopping once what is under way has ended (again to leave at once)",
        )

    previous = {sig: signal.signal(sig, asked) for sig in (signal.SIGINT, signal.SIGTERM)}
    _interrupt.clear()
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _interrupt.clear()


def check_interrupted() -> None:
    if _interrupt.is_set():
        raise Interrupted(_interrupt_name[0] if _interrupt_name else "SIGINT")


def on_each(
    nodes: list[Node],
    action: Callable[[Node], object],
    done: Callable[[str], None] | None = None,
    progress: Progress = SILENT,
) -> None:
    """Run ``action`` on every node at once, calling ``done`` with a node's name as soon
    as it succeeds; raise one error naming each node that failed.

    Inside ``interruptible``, a Ctrl-C or SIGTERM cancels the actions not yet begun and
    waits for those under way, so ``done`` was called for exactly the hosts that finished.
    """

    def one(node: Node) -> None:
        check_interrupted()
        action(node)
        if done is not None:
            done(node.name)

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(nodes)))) as pool:
        futures = {node.name: pool.submit(one, node) for node in nodes}
        while wait(futures.values(), timeout=0.2).not_done:
            if _interrupt.is_set():
                under_way = [name for name, future in futures.items() if future.running()]
                if under_way:
                    progress.say("interrupt", f"waiting for {', '.join(under_way)}")
                pool.shutdown(wait=True, cancel_futures=True)
                break
    check_interrupted()
    failures = [
        f"{name}: {future.exception()}"
        for name, future in futures.items()
        if future.exception() is not None
    ]
    if failures:
        raise HostError("; ".join(failures))


def check_reachable(lab: Lab) -> None:
    unreachable = []
    for node in dict.fromkeys([*lab.etcd_members, *lab.control_planes]):
        try:
            remote.root(lab, node, "true", timeout=15)
        except HostError as exc:
            unreachable.append(str(exc))
    if unreachable:
        raise HostError(
            "every etcd member and control plane must answer before a restore: "
            + "; ".join(sorted(unreachable))
        )


def wait_stopped(lab: Lab, node: Node, pods: list[str]) -> None:
    """Wait until the kubelet has stopped these static Pods, whose manifests are parked."""
    remote.run_script(
        lab,
        node,
        SCRIPTS / "wait-stopped.sh",
        RUNTIME_ENDPOINT,
        STOP_GRACE_S,
        STOP_DEADLINE_S,
        *pods,
        timeout=STOP_DEADLINE_S + 30,
    )


def stop_static_pods(lab: Lab, node: Node, pods: list[str]) -> None:
    remote.root(lab, node, park_manifests_command(pods))
    wait_stopped(lab, node, pods)


def start_static_pods(lab: Lab, node: Node, pods: list[str]) -> None:
    remote.root(lab, node, unpark_manifests_command(pods))


def stop_etcd_on(topo: Topology, node: Node) -> None:
    if topo.stacked:
        stop_static_pods(topo.lab, node, ["etcd"])
    else:
        remote.root(topo.lab, node, "systemctl stop etcd", timeout=STOP_DEADLINE_S)


def start_etcd_on(topo: Topology, node: Node) -> None:
    # --no-block: etcd.service is Type=notify and reports ready only once it has quorum,
    # which needs the other members started too.
    if topo.stacked:
        start_static_pods(topo.lab, node, ["etcd"])
    else:
        remote.root(topo.lab, node, "systemctl start --no-block etcd")


def stop_etcd(topo: Topology, nodes: list[Node] | None = None) -> None:
    on_each(nodes or member_nodes(topo), lambda node: stop_etcd_on(topo, node))


def start_etcd(topo: Topology, nodes: list[Node] | None = None) -> None:
    on_each(nodes or member_nodes(topo), lambda node: start_etcd_on(topo, node))


def member_nodes(topo: Topology) -> list[Node]:
    return [m.node for m in topo.members]


def pin_static_pod_images(lab: Lab, pods: list[str]) -> None:
    """Pin the images of the static Pods the restore stops, on every control plane.

    A stopped Pod's image is unused, and a kubelet under disk pressure garbage-collects
    unused images; with no registry to pull from, etcd and the API server could then not
    start again (seen on a lab whose machine's disk was 85 % full). A missing image is
    refused here, before anything stops.
    """
    on_each(
        lab.control_planes,
        lambda node: remote.run_script(lab, node, SCRIPTS / "pin-images.sh", MANIFESTS_DIR, *pods),
    )


def swap_data_dir(lab: Lab, node: Node, restored: str, old: str, staged: str) -> None:
    remote.run_script(lab, node, SCRIPTS / "swap-data-dir.sh", ETCD_DATA_DIR, restored, old, staged)


def unswap_data_dir(
    lab: Lab, node: Node, old: str, failed: str, restored: str, staged: str
) -> None:
    remote.run_script(
        lab, node, SCRIPTS / "unswap-data-dir.sh", ETCD_DATA_DIR, old, failed, restored, staged
    )
