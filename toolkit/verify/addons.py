"""Reaching the add-ons from this machine, as a person does: their HTTP APIs and their web
UIs rendered by a headless Chromium, on a NodePort of the lab's first worker (a lab
address: nothing else is dialled)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from toolkit.lab.addons import LOGS_UI, PROMETHEUS_UI, Ui
from toolkit.lab.spec import Lab
from toolkit.verify.cluster import Cluster

PROMETHEUS = PROMETHEUS_UI
LOGS = LOGS_UI
# Where verify's log-writing Pods run (removed at the end of the run).
LOG_NAMESPACE = "k8slab-verify-logs"
HTTP_TIMEOUT_S = 10
RENDER_TIMEOUT_S = 90
# What each UI shows once its scripts have run and its API has answered, read from real
# renders (Chromium 156, --dump-dom) of the addons part's images: text the page's HTML
# lacks before then (a metric name in Prometheus' expression menu; VictoriaLogs' query form
# and its version), so an error page or a page whose scripts failed has none of it.
UI_MARKERS = {
    "prometheus": (
        "Prometheus Time Series Collection and Processing Server",
        "insert metric at cursor",
        "prometheus_build_info",
    ),
    "logs": ("Query - UI for VictoriaLogs", "Stream fields", "Execute", "v1.52.1"),
}
CHROMIUM_NAMES = ("chromium", "chromium-browser")


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: its JSON (None when there was none) or what went wrong."""

    url: str
    data: Any = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def evidence(self) -> str:
        return f"GET {self.url}: " + (self.error or json.dumps(self.data)[:2000])


def get_json(ui: Ui, lab: Lab, path: str, lines: bool = False, **query: str) -> Answer:
    """GET ``path`` of ``ui``'s server with ``query``, parsed as JSON, or with ``lines`` as
    one JSON object per line (a list, however many lines: VictoriaLogs' answers)."""
    url = ui.base(lab) + path + ("?" + urllib.parse.urlencode(query) if query else "")
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
            body = response.read().decode("utf-8", "replace")
    except OSError as exc:
        return Answer(url, error=f"{type(exc).__name__}: {exc}")
    try:
        if lines:
            return Answer(url, [json.loads(line) for line in body.splitlines() if line.strip()])
        return Answer(url, json.loads(body))
    except json.JSONDecodeError as exc:
        return Answer(url, error=f"not JSON ({exc}): {body[:300]}")


def prometheus_query(lab: Lab, promql: str) -> Answer:
    return get_json(PROMETHEUS, lab, "/api/v1/query", query=promql)


def logs_query(lab: Lab, logsql: str, limit: int = 50) -> Answer:
    return get_json(LOGS, lab, "/select/logsql/query", lines=True, query=logsql, limit=str(limit))


def shell_image(cluster: Cluster) -> str:
    """An image with a shell that every node has: kube-proxy's (the bundle's Debian base),
    for the Pods that write a log line, crash or burn CPU on purpose."""
    daemonset = cluster.kubectl_json("get", "daemonset", "-n", "kube-system", "kube-proxy")
    return str(daemonset["spec"]["template"]["spec"]["containers"][0]["image"])


def chromium() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return ""


def render(url: str) -> tuple[str, str]:
    """The DOM a headless Chromium builds for ``url`` once its scripts have run, and what
    went wrong (empty: nothing)."""
    browser = chromium()
    if not browser:
        return "", "no Chromium on this machine: install Debian's chromium (scripts/setup)"
    with tempfile.TemporaryDirectory(prefix="k8slab-chromium-") as profile:
        try:
            done = subprocess.run(
                [
                    browser,
                    "--headless",
                    "--no-sandbox",  # root, in a machine of its own
                    "--disable-gpu",
                    "--no-first-run",
                    f"--user-data-dir={profile}",
                    "--virtual-time-budget=15000",
                    "--dump-dom",
                    url,
                ],
                capture_output=True,
                text=True,
                timeout=RENDER_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return "", f"Chromium did not finish rendering {url} in {RENDER_TIMEOUT_S} s"
    if done.returncode != 0 or not done.stdout.strip():
        return done.stdout, f"Chromium exited {done.returncode}: {done.stderr.strip()[-500:]}"
    return done.stdout, ""


def missing_markers(ui: Ui, dom: str) -> list[str]:
    return [m for m in UI_MARKERS[ui.name] if m not in dom]
