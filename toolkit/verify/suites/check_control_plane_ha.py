"""Control-plane HA: the VIP, held by one control plane and answering, still answering with
one API server frozen; and on every control plane the standby parts that take over when
the one serving fails: keepalived ready to take the VIP, its track script passing, haproxy
balancing to every API server, the standby scheduler and controller-manager connected.

Its own group, run right after control-plane: `k8slab verify LAB --only control-plane-ha`
checks a lab's failover without the per-server checks. Each check but the last reads state
(configuration, sockets, haproxy's own view); the last, disruptive, freezes an API server
for a while.
"""

from __future__ import annotations

import pytest

from toolkit.constants import APISERVER_PORT
from toolkit.kube import APISERVER_CLIENT_CERT
from toolkit.lab.spec import Lab, Node
from toolkit.verify import redundancy
from toolkit.verify.checks import (
    HEALTH_ATTEMPTS,
    HEALTH_RETRY_S,
    RecordProperty,
    asked_again,
    expect,
    running_command,
)
from toolkit.verify.cluster import Cluster, Run, eventually
from toolkit.verify.report import NOTE_PROPERTY
from toolkit.verify.vip import (
    api_answered,
    haproxy_state,
    read_through_vip,
    vip_holders,
    vip_read_url,
)

VIP_REQUESTS = 10
BACKENDS_UP_TIMEOUT_S = 20
CONNECTED_TIMEOUT_S = 15


def prefetch(lab: Lab, node: Node) -> list[str]:
    """The read-only commands this suite runs on a node (run ahead, all nodes at once)."""
    if node not in lab.control_planes:
        return []
    return [
        "systemctl is-active keepalived",
        f"cat {redundancy.KEEPALIVED_CONF}",
        "ip -o -4 addr show",
        "systemctl is-active haproxy",
        f"cat {redundancy.HAPROXY_CFG}",
        redundancy.HAPROXY_STAT,
        redundancy.ESTABLISHED_WITH_PROCESSES,
        *(f"cat {conf}" for conf in redundancy.COMPONENT_KUBECONFIGS.values()),
    ]


def test_vip_held_by_one_control_plane_and_answering(lab: Lab, cluster: Cluster) -> None:
    # keepalived may be moving the VIP right now: give VRRP a bounded moment to settle.
    settled, holders = eventually(lambda: vip_holders(lab, cluster), lambda h: len(h) == 1, 15)
    expect(settled, f"the VIP {lab.api_vip} is held by {holders or 'no control plane'}")
    run = read_through_vip(lab, cluster)
    expect(api_answered(run), f"the API does not answer through {vip_read_url(lab)}", run.evidence)


# --- the standby parts of HA: every control plane able to take over, not only the one
# serving now.


def test_keepalived_ready_to_take_vip(lab: Lab, cluster: Cluster, control_plane: Node) -> None:
    """keepalived on this control plane runs, in the same VRRP group as every other control
    plane's (router id, authentication), with the lab's VIP, a priority of its own, on the
    interface that carries the node's lab address: if the VIP's holder fails, it can take
    the VIP."""
    active = cluster.run(control_plane, "systemctl is-active keepalived")
    conf = cluster.run(control_plane, f"cat {redundancy.KEEPALIVED_CONF}")
    mine = redundancy.parse_keepalived(conf.stdout)
    peers = {
        cp.name: redundancy.parse_keepalived(
            cluster.run(cp, f"cat {redundancy.KEEPALIVED_CONF}").stdout
        )
        for cp in lab.control_planes
        if cp != control_plane
    }
    addresses = cluster.run(control_plane, "ip -o -4 addr show")
    problems = []
    if active.stdout.strip() != "active":
        problems.append(f"keepalived is {active.stdout.strip() or 'unknown'}")
    problems += redundancy.keepalived_problems(
        control_plane.name,
        str(control_plane.address),
        str(lab.api_vip),
        mine,
        peers,
        redundancy.interface_addresses(addresses.stdout),
    )
    expect(
        not problems,
        f"keepalived on {control_plane.name} could not take the VIP {lab.api_vip} over from "
        f"{', '.join(sorted(peers)) or 'no peer'}: " + "; ".join(problems),
        active.evidence,
        conf.evidence,
        "peers: "
        + "; ".join(f"{n}: {p.describe() if p else 'no vrrp_instance'}" for n, p in peers.items()),
        addresses.evidence,
        cluster.journal(control_plane, "keepalived", 10),
    )


def test_keepalived_track_script_passes(
    cluster: Cluster, control_plane: Node, record_property: RecordProperty
) -> None:
    """The scripts keepalived tracks on this control plane, as its configuration names
    them, pass (the loadbalancer role's asks whether haproxy runs): with one failing,
    keepalived there is in FAULT, and releases the VIP or cannot take it. Asked again after
    a failed answer, as the API server checks are."""
    conf = cluster.run(control_plane, f"cat {redundancy.KEEPALIVED_CONF}")
    scripts = redundancy.track_scripts(conf.stdout)
    undefined = sorted(name for name, command in scripts.items() if not command)
    expect(
        scripts and not undefined,
        f"{control_plane.name}: keepalived tracks "
        + (f"scripts it does not define: {undefined}" if undefined else "no script")
        + ", so nothing takes the VIP away from a holder that cannot serve it",
        conf.evidence,
    )
    command = " && ".join(scripts.values())
    runs = asked_again(cluster, control_plane, command, lambda run: run.ok)
    if runs[-1].ok and len(runs) > 1:
        record_property(
            NOTE_PROPERTY,
            f"ok on attempt {len(runs)} of {HEALTH_ATTEMPTS}\n\n"
            + "\n\n".join(r.evidence for r in runs[:-1]),
        )
    expect(
        runs[-1].ok,
        f"{control_plane.name}: keepalived's track script(s) {', '.join(scripts)} failed "
        f"{len(runs)} times {HEALTH_RETRY_S}s apart",
        *(r.evidence for r in runs),
        cluster.run(control_plane, "systemctl is-active haproxy").evidence,
        conf.evidence,
    )


def test_haproxy_backends_every_apiserver_up(
    lab: Lab, cluster: Cluster, control_plane: Node
) -> None:
    """haproxy on this control plane runs, has every API server of the lab as a server of
    its backend, and sees each one UP from here (its own health checks reach it): whichever
    control plane holds the VIP next balances to all of them."""
    wanted = {cp.name: f"{cp.address}:{APISERVER_PORT}" for cp in lab.control_planes}
    active = cluster.run(control_plane, "systemctl is-active haproxy")
    config = cluster.run(control_plane, f"cat {redundancy.HAPROXY_CFG}")
    configured = redundancy.haproxy_servers(config.stdout, redundancy.HAPROXY_BACKEND)

    def problems(stat: Run) -> list[str]:
        found = [] if active.stdout.strip() == "active" else [f"haproxy is {active.stdout.strip()}"]
        return found + redundancy.backend_problems(
            wanted, configured, redundancy.haproxy_status(stat.stdout, redundancy.HAPROXY_BACKEND)
        )

    # A server a moment ago slow to answer /readyz comes back after `rise` checks.
    stat = cluster.run_until(
        control_plane, redundancy.HAPROXY_STAT, lambda s: not problems(s), BACKENDS_UP_TIMEOUT_S
    )
    found = problems(stat)
    expect(
        not found,
        f"haproxy on {control_plane.name} -> API servers "
        f"{', '.join(f'{n} {a}' for n, a in wanted.items())}: expected every one configured "
        "and UP; " + "; ".join(found),
        active.evidence,
        config.evidence,
        stat.evidence,
        cluster.journal(control_plane, "haproxy", 10),
    )


def expect_connected_to_apiserver(cluster: Cluster, control_plane: Node, component: str) -> None:
    """The component (leader or standby) holds a connection to the API server its kubeconfig
    names: a standby polls the Lease through it, and takes over through it."""
    kubeconfig = redundancy.COMPONENT_KUBECONFIGS[component]
    conf = cluster.run(control_plane, f"cat {kubeconfig}")
    server = redundancy.kubeconfig_server(conf.stdout)
    expect(server, f"{control_plane.name}: no server in {kubeconfig}", conf.evidence)
    host, port = redundancy.server_endpoint(server)

    def connected(run: Run) -> bool:
        return run.ok and redundancy.connected_to(
            redundancy.established(run.stdout), component, host, port
        )

    sockets = cluster.run_until(
        control_plane, redundancy.ESTABLISHED_WITH_PROCESSES, connected, CONNECTED_TIMEOUT_S
    )
    expect(
        connected(sockets),
        f"{component} on {control_plane.name} -> API server {host}:{port} (from {kubeconfig}): "
        "expected an established connection, found none",
        conf.evidence,
        sockets.evidence,
        cluster.run(control_plane, running_command(component)).evidence,
    )


def test_scheduler_connected_to_apiserver(cluster: Cluster, control_plane: Node) -> None:
    expect_connected_to_apiserver(cluster, control_plane, "kube-scheduler")


def test_controller_manager_connected_to_apiserver(cluster: Cluster, control_plane: Node) -> None:
    expect_connected_to_apiserver(cluster, control_plane, "kube-controller-manager")


@pytest.mark.disruptive
def test_api_through_vip_survives_one_apiserver_stopped(lab: Lab, cluster: Cluster) -> None:
    """Freeze one API server (SIGSTOP: it stops answering, like a dead one), check that
    haproxy takes it out and the VIP keeps answering, then thaw it (SIGCONT), which
    brings it back at once, without the cold start of a restarted server."""
    if len(lab.control_planes) < 2:
        pytest.skip("one control plane: nothing to fail over to")
    victim = lab.control_planes[-1]
    holders = vip_holders(lab, cluster)
    expect(len(holders) == 1, f"the VIP is held by {holders}; cannot test fail-over")
    balancer = lab.node(holders[0])
    direct = f"https://{victim.address}:{APISERVER_PORT}/readyz"
    pids = "$(pgrep -x kube-apiserver)"
    stop = cluster.run(victim, f"kill -STOP {pids}", fresh=True)
    try:
        expect(stop.ok, f"could not stop the API server on {victim.name}", stop.evidence)
        down, state = eventually(
            lambda: haproxy_state(cluster, balancer, victim.name), lambda s: s == "DOWN", 40, 1
        )
        expect(down, f"haproxy on {balancer.name} still sees {victim.name} as {state}")
        stopped = cluster.run(
            cluster.first, f"curl -sS --max-time 3 {APISERVER_CLIENT_CERT} {direct}", fresh=True
        )
        answers = [read_through_vip(lab, cluster) for _ in range(VIP_REQUESTS)]
        failed = [a for a in answers if not api_answered(a)]
        expect(not stopped.ok, f"{victim.name}'s API server still answers", stopped.evidence)
        expect(
            not failed,
            f"with {victim.name}'s API server stopped, {len(failed)} of {len(answers)} "
            "requests through the VIP failed",
            *(a.evidence for a in failed[:2]),
        )
    finally:
        cluster.run(victim, f"kill -CONT {pids}", fresh=True)
        up, state = eventually(
            lambda: haproxy_state(cluster, balancer, victim.name), lambda s: s == "UP", 60, 1
        )
    expect(up, f"{victim.name}'s API server is {state} in haproxy after it was thawed")
