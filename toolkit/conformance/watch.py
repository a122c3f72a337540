"""Watching a conformance run: the suite's Pod until go-runner exits, its log read a slice
at a time for progress (logscan.py), a Pod that can never start refused at once."""

from __future__ import annotations

import base64
import binascii
import codecs
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from toolkit import kube
from toolkit.conformance import manifests
from toolkit.conformance.logscan import LogScanner, SuiteProgress
from toolkit.errors import ConformanceError, HostError
from toolkit.lab.spec import Lab
from toolkit.poll import poll, wait_until
from toolkit.progress import Progress

# How often the log is read while the suite runs; a progress line at most every
# REPORT_EVERY_S (a failure and the end are said at once).
POLL_INTERVAL_S = 15
REPORT_EVERY_S = 60
# How long the lab may not answer (SSH, the API) before a run is given up.
UNREACHABLE_S = 600
START_TIMEOUT_S = 300
# A container waiting for one of these will never start.
HOPELESS = ("ErrImageNeverPull", "InvalidImageName", "CreateContainerConfigError")


@dataclass
class PodState:
    phase: str = ""
    exit_code: int | None = None  # the runner container's, once it terminated
    waiting: str = ""  # why a container waits (ErrImageNeverPull...)

    @property
    def finished(self) -> bool:
        return self.exit_code is not None


def pod_state(pod: dict[str, Any]) -> PodState:
    """The run's Pod as kubectl's JSON shows it."""
    status = pod.get("status", {})
    found = PodState(phase=status.get("phase", ""))
    for container in status.get("containerStatuses") or []:
        state = container.get("state", {})
        waiting = state.get("waiting", {}).get("reason", "")
        if waiting:
            found.waiting = f"{container['name']}: {waiting}"
        if container["name"] == manifests.RUNNER and "terminated" in state:
            found.exit_code = int(state["terminated"].get("exitCode", -1))
    return found


class LogFollower:
    """Reads the suite's log a slice at a time (``tail -c +N``, base64 so that no byte is
    lost), feeding the scanner."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.offset = 0
        self.scanner = LogScanner()
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.progress = SuiteProgress()

    def read(self) -> SuiteProgress:
        status, output = kube.kubectl(self.lab, manifests.log_tail_args(self.offset), timeout=120)
        if status != 0:
            return self.progress  # no log yet, or the API hiccuped: the next read catches up
        try:
            data = base64.b64decode("".join(output.split()), validate=True)
        except binascii.Error:
            return self.progress
        self.offset += len(data)
        self.progress = self.scanner.feed(self.decoder.decode(data))
        return self.progress


def follow(
    lab: Lab,
    follower: LogFollower,
    timeout_s: float,
    report: Callable[[SuiteProgress], None],
) -> PodState:
    """Read the log and the Pod until the runner container has exited (bounded)."""

    answered = time.monotonic()

    def step() -> PodState:
        nonlocal answered
        try:
            report(follower.read())
            state = pod_state(
                kube.kubectl_json(lab, ["get", "pod", "-n", manifests.NAMESPACE, manifests.POD])
            )
            if state.finished:
                report(follower.read())
        except (HostError, kube.ClusterError) as exc:
            # A hiccup must not end a run of hours; a lab gone for good must.
            if time.monotonic() - answered > UNREACHABLE_S:
                raise ConformanceError(
                    f"lab {lab.name} has not answered for {UNREACHABLE_S}s: {exc}"
                ) from None
            return PodState()
        answered = time.monotonic()
        return state

    outcome = poll(step, lambda s: s.finished, timeout_s, POLL_INTERVAL_S)
    return outcome.value


def reporter(progress: Progress) -> Callable[[SuiteProgress], None]:
    """Says each new failure at once, and the progress line every REPORT_EVERY_S (at
    once when the suite has just started or finished)."""
    last: dict[str, Any] = {"line": "", "at": -REPORT_EVERY_S, "failed": 0}

    def report(now: SuiteProgress) -> None:
        line = now.line()
        for name in now.failed[last["failed"] :]:
            progress.say("suite", f"FAILED: {name}")
        last["failed"] = len(now.failed)
        due = time.monotonic() - last["at"] >= REPORT_EVERY_S
        milestone = now.ran is not None or (
            now.total is not None and last["line"].startswith("starting")
        )
        if line != last["line"] and (due or milestone):
            progress.say("suite", line)
            last["line"], last["at"] = line, time.monotonic()

    return report


def wait_started(lab: Lab) -> None:
    """Until the Pod runs (or ran); a Pod that can never start fails at once."""

    def state() -> PodState:
        found = pod_state(
            kube.kubectl_json(lab, ["get", "pod", "-n", manifests.NAMESPACE, manifests.POD])
        )
        if found.waiting.endswith(HOPELESS):
            raise ConformanceError(
                f"the conformance Pod cannot start ({found.waiting}): are the part's images "
                "imported? (`k8slab kubectl LAB -- describe pod -n "
                f"{manifests.NAMESPACE} {manifests.POD}`)"
            )
        return found

    wait_until(
        state,
        lambda s: s.phase in ("Running", "Succeeded", "Failed"),
        timeout_s=START_TIMEOUT_S,
        interval_s=3,
        what=f"lab {lab.name}: the conformance Pod running",
        retry_on=(HostError, kube.ClusterError),
    )
