"""Bounded probes that run inside lab nodes during a drill, and what their logs mean.

Each probe is a shell loop started in the background on a lab node, bounded in count and
time, that stops early when its stop file appears. It logs one line per request:
``<unix time> <seq> <HTTP code>`` (000: no HTTP answer, whatever the reason).

Timed writes run in the foreground instead and tell why a request got no HTTP answer:
``<route> <seq> <HTTP code> <seconds> <curl's exit status>``.
"""

from __future__ import annotations

import itertools
import json
import shlex
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import TypeVar

from toolkit.constants import DRILL_DIR
from toolkit.kube import ADMIN_KUBECONFIG
from toolkit.lab.spec import Lab

CURL_TIMED_OUT = 28  # curl's exit status when --max-time ran out
T = TypeVar("T")


@dataclass(frozen=True)
class Sample:
    at: float
    seq: int
    code: str

    @property
    def ok(self) -> bool:
        return self.code.startswith("2")


def _parse_lines(text: str, width: int, build: Callable[[list[str]], T]) -> list[T]:
    """One record per line of ``width`` fields whose second is a sequence number; any
    other line (a probe's "done", a half-written line) is skipped."""
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == width and fields[1].isdigit():
            with suppress(ValueError):
                found.append(build(fields))
    return found


def parse_samples(text: str) -> list[Sample]:
    return _parse_lines(text, 3, lambda f: Sample(float(f[0]), int(f[1]), f[2]))


@dataclass(frozen=True)
class Answer:
    """What one timed write got: an HTTP code (000: none), how long it took, and curl's
    exit status (CURL_TIMED_OUT: the client's own bound ran out, the request hung)."""

    route: str
    seq: int
    code: str
    seconds: float
    curl_exit: int

    @property
    def http_error(self) -> bool:
        return self.code[:1] in ("4", "5")

    @property
    def ok(self) -> bool:
        return self.code.startswith("2")

    @property
    def hung(self) -> bool:
        return self.curl_exit == CURL_TIMED_OUT

    def __str__(self) -> str:
        return f"{self.route}#{self.seq} {self.code} {self.seconds:.1f}s curl={self.curl_exit}"


def parse_answers(text: str) -> list[Answer]:
    return _parse_lines(text, 5, lambda f: Answer(f[0], int(f[1]), f[2], float(f[3]), int(f[4])))


def timed_writes_script(requests: dict[str, str], count: int, interval: float) -> str:
    """Shell running ``count`` times each request (route -> a curl printing
    ``%{http_code} %{time_total}``), route after route, one Answer line per request."""
    return "; ".join(
        f"for i in $(seq 1 {count}); do out=$({request}); rc=$?; "
        f'echo "{route} $i ${{out:-000 0}} $rc"; sleep {interval}; done'
        for route, request in requests.items()
    )


def longest_gap(samples: list[Sample], since: float | None = None) -> float:
    """The longest time between two consecutive successful requests (after ``since``).

    A client that polls every 100 ms sees no answer for at most this long. With no success
    at all it is the whole span observed.
    """
    ok = [s.at for s in samples if s.ok and (since is None or s.at >= since)]
    if not ok:
        return samples[-1].at - samples[0].at if len(samples) > 1 else 0.0
    gaps = [b - a for a, b in itertools.pairwise(ok)]
    return max(gaps, default=0.0)


def acknowledged_after(samples: list[Sample], at: float) -> int:
    """How many requests succeeded after ``at``."""
    return sum(1 for s in samples if s.ok and s.at > at)


def answered_for(samples: list[Sample], since: float) -> float:
    """For how long (first to last success after ``since``) the requests have succeeded."""
    ok = [s.at for s in samples if s.ok and s.at > since]
    return ok[-1] - ok[0] if ok else 0.0


def gap_around(samples: list[Sample], at: float) -> float:
    """From the last success before ``at`` to the first success after it."""
    before = [s.at for s in samples if s.ok and s.at <= at]
    after = [s.at for s in samples if s.ok and s.at > at]
    if not before or not after:
        return float("inf")
    return after[0] - before[-1]


def loop_script(name: str, request: str, max_count: int, max_seconds: int, interval: float) -> str:
    """A bounded loop running ``request`` (which prints the HTTP code) and logging samples."""
    log, stop = f"{DRILL_DIR}/{name}.log", f"{DRILL_DIR}/{name}.stop"
    return (
        f"end=$(( $(date +%s) + {max_seconds} )); i=0; "
        f"while [ $i -lt {max_count} ] && [ $(date +%s) -lt $end ] && [ ! -e {stop} ]; do "
        f"i=$((i+1)); t=$(date +%s.%N); code=$({request}); "
        f'echo "$t $i ${{code:-000}}" >> {log}; sleep {interval}; done; '
        f"echo done >> {log}.done"
    )


def start_command(name: str, script: str) -> str:
    """Shell (run as root) that starts ``script`` detached from the SSH session."""
    log, stop = f"{DRILL_DIR}/{name}.log", f"{DRILL_DIR}/{name}.stop"
    return (
        f"umask 077; mkdir -p {DRILL_DIR}; rm -f {log} {log}.done {stop}; "
        f"setsid nohup sh -c {shlex.quote(script)} >/dev/null 2>&1 </dev/null &"
    )


def stop_command(name: str, wait_s: int = 30, ask: bool = True) -> str:
    """Shell that asks the probe to stop (unless ``ask`` is false: it runs to its own
    bounds), waits (bounded) until it has, and prints its log."""
    log, stop = f"{DRILL_DIR}/{name}.log", f"{DRILL_DIR}/{name}.stop"
    return (
        f"{'touch ' + stop + '; ' if ask else ''}for i in $(seq 1 {wait_s * 5}); do "
        f"[ -e {log}.done ] && break; sleep 0.2; done; cat {log} 2>/dev/null; true"
    )


def read_command(name: str) -> str:
    """Shell that prints the probe's log so far, leaving the probe running."""
    return f"cat {DRILL_DIR}/{name}.log 2>/dev/null; true"


def readyz_request(lab: Lab, timeout_s: float) -> str:
    return (
        f"curl -sk -o /dev/null -w '%{{http_code}}' --max-time {timeout_s} "
        f"https://{lab.api_vip}:{lab.api_port}/readyz"
    )


def admin_credentials_command() -> str:
    """Shell (root) that writes the admin client certificate from admin.conf for curl."""
    return "; ".join(
        f"grep '{key}:' {ADMIN_KUBECONFIG} | awk '{{print $2}}' | base64 -d > {DRILL_DIR}/{out}"
        for key, out in (
            ("certificate-authority-data", "ca.crt"),
            ("client-certificate-data", "admin.crt"),
            ("client-key-data", "admin.key"),
        )
    )


def configmap_body(name: str, seq: str) -> str:
    return json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"seq": seq}}
    )


def write_request(
    lab: Lab,
    namespace: str,
    prefix: str,
    timeout_s: float,
    endpoint: str = "",
    server_timeout_s: int = 0,
    write_out: str = "%{http_code}",
) -> str:
    """A curl that creates ConfigMap ``<prefix>-$i`` (data seq=$i) at ``endpoint`` (host:port,
    default the VIP) and prints ``write_out`` (default the HTTP code).

    ``?timeout=`` (default: a second less than the client's ``timeout_s``) asks the API
    server to give up on its own before the client does.
    """
    body = configmap_body(f"{prefix}-$i", "$i").replace('"', '\\"')
    server_timeout = server_timeout_s or max(1, int(timeout_s) - 1)
    target = endpoint or f"{lab.api_vip}:{lab.api_port}"
    return (
        f"curl -s -o /dev/null -w '{write_out}' --max-time {timeout_s} "
        f"--cacert {DRILL_DIR}/ca.crt --cert {DRILL_DIR}/admin.crt --key {DRILL_DIR}/admin.key "
        f"-H 'Content-Type: application/json' -X POST "
        f'-d "{body}" '
        f"'https://{target}/api/v1/namespaces/{namespace}/configmaps?timeout={server_timeout}s'"
    )
