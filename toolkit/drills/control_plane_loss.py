"""The control-plane-loss drill: stop a whole control-plane host (the VIP holder); the API
through the VIP stays available; the host comes back and every node is Ready again."""

from __future__ import annotations

import time
from contextlib import suppress

from toolkit import kube
from toolkit.drills import probes
from toolkit.drills.lab_ops import (
    DrillError,
    check_comes_true,
    services_active,
    start_host,
    start_probe,
    stop_host,
    stop_probe,
    wait_for_samples,
    wait_healthy,
)
from toolkit.drills.report import DrillResult
from toolkit.errors import K8slabError
from toolkit.hosts import remote
from toolkit.lab.spec import Lab, Node
from toolkit.poll import PollTimeout, problems_gone, wait_until
from toolkit.progress import Progress

# The longest gap a client polling the VIP may see when a whole control plane goes away:
# keepalived moves the VIP in a few seconds, haproxy drops a dead backend after 3 x 2 s.
API_GAP_BUDGET_S = 20.0
POLLER, POLL_INTERVAL_S, POLL_REQUEST_TIMEOUT_S = "api-gap", 0.1, 2
# Answers the poller has before the host stops (its baseline), and for how long the API
# must have answered through the VIP on its new holder before the host comes back.
ANSWERS_BEFORE_STOP = 10
ANSWERING_WITHOUT_HOST_S = 10.0
VIP_MOVE_TIMEOUT_S = 60
SERVICES_TIMEOUT_S = 120
PODS_BACK_TIMEOUT_S = 180
UNITS = ["containerd", "kubelet", "haproxy", "keepalived"]
KUBE_PROXY_HEALTHZ = "http://127.0.0.1:10256/healthz"


def _vip_holder_name(lab: Lab) -> str:
    holder = kube.vip_holder(lab)
    return holder.name if holder else ""


def _not_back(lab: Lab, node: Node) -> list[str]:
    """What has not come back on ``node``: its Pods not Running and Ready, and kube-proxy's
    rules. The node is Ready as soon as its kubelet is back, before the kubelet has
    restarted its Pods (kube-proxy, the CNI's, the static Pods), and kube-proxy's Pod is
    Ready before it has written the Services' rules (its healthz says when): verify would
    catch either missing."""
    missing = kube.pods_not_ready_on(lab, node)
    status, _ = remote.try_root(
        lab, node, f"curl -sf --max-time 5 {KUBE_PROXY_HEALTHZ}", timeout=20
    )
    if status != 0:
        missing.append("kube-proxy's healthz (rules not synced yet)")
    return missing


def _start_poller(lab: Lab, poller: Node) -> None:
    request = probes.readyz_request(lab, timeout_s=POLL_REQUEST_TIMEOUT_S)
    start_probe(lab, poller, POLLER, probes.loop_script(POLLER, request, 9000, 900, 0.1))
    wait_for_samples(
        lab,
        poller,
        POLLER,
        lambda samples: probes.acknowledged_after(samples, 0) >= ANSWERS_BEFORE_STOP,
        30,
        f"{ANSWERS_BEFORE_STOP} answers of the API poller before the host stops",
    )


def _stop_poller(lab: Lab, result: DrillResult, poller: Node) -> None:
    samples = stop_probe(lab, poller, POLLER)
    gap = probes.longest_gap(samples)
    result.timings["longest_api_gap_s"] = gap
    result.data["api_probes"] = {
        "requests": len(samples),
        "failed": sum(1 for s in samples if not s.ok),
        "interval_s": POLL_INTERVAL_S,
        "per_request_timeout_s": POLL_REQUEST_TIMEOUT_S,
    }
    result.check(
        f"the API through the VIP stayed available (longest gap {gap:.1f}s <= "
        f"{API_GAP_BUDGET_S:.0f}s)",
        bool(samples) and gap <= API_GAP_BUDGET_S,
    )


def run(lab: Lab, result: DrillResult, progress: Progress) -> None:
    """Stop a whole control-plane host (the VIP holder); the API through the VIP stays
    available; the host comes back and every node is Ready again."""
    if len(lab.control_planes) < 2:
        raise DrillError(f"lab {lab.name} has one control plane; losing it loses the API")
    victim = kube.vip_holder(lab) or lab.control_planes[-1]
    poller = (
        lab.workers[0] if lab.workers else next(cp for cp in lab.control_planes if cp != victim)
    )
    _start_poller(lab, poller)
    result.data.update({"stopped_host": victim.name, "poller_on": poller.name})
    progress.say("drill", "stopping the whole host (it holds the VIP)", victim.name)
    stopped_at = time.time()
    stop_host(lab, victim)
    result.timings["host_stop_s"] = time.time() - stopped_at
    check_comes_true(
        result,
        "the VIP moved to another control plane",
        lambda: wait_until(
            lambda: _vip_holder_name(lab),
            lambda name: name not in ("", victim.name),
            timeout_s=VIP_MOVE_TIMEOUT_S,
            interval_s=1,
            what="the VIP on another control plane",
            retry_on=(K8slabError,),
        ),
    )
    result.timings["vip_moved_s"] = time.time() - stopped_at
    # The host stays down while the API answers through the VIP on its new holder for a
    # while; the poller's longest gap, checked at the end, tells whether it ever did.
    with suppress(PollTimeout):
        wait_for_samples(
            lab,
            poller,
            POLLER,
            lambda found: probes.answered_for(found, stopped_at) >= ANSWERING_WITHOUT_HOST_S,
            ANSWERING_WITHOUT_HOST_S + VIP_MOVE_TIMEOUT_S,
            f"the API answering through the VIP for {ANSWERING_WITHOUT_HOST_S:.0f}s without "
            f"{victim.name}",
        )
    back_started = time.monotonic()
    result.timings["host_boot_s"] = start_host(lab, victim, progress)
    check_comes_true(
        result,
        f"{', '.join(UNITS)} active again on {victim.name}",
        lambda: wait_until(
            lambda: services_active(lab, victim, UNITS),
            lambda state: set(state.values()) == {"active"},
            timeout_s=SERVICES_TIMEOUT_S,
            interval_s=1,
            what=f"{', '.join(UNITS)} active on {victim.name}",
            retry_on=(K8slabError,),
        ),
    )
    wait_healthy(lab, 300)
    result.timings["back_to_healthy_s"] = time.monotonic() - back_started
    check_comes_true(
        result,
        f"every Pod on {victim.name} Running and Ready again, kube-proxy's rules synced",
        lambda: wait_until(
            lambda: _not_back(lab, victim),
            problems_gone,
            timeout_s=PODS_BACK_TIMEOUT_S,
            interval_s=2,
            what=f"every Pod on {victim.name} back",
            retry_on=(K8slabError,),
        ),
    )
    result.timings["pods_back_s"] = time.monotonic() - back_started
    _stop_poller(lab, result, poller)
