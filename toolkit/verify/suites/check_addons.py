"""Add-ons: each one does its job, seen as a person sees it. metrics-server: `kubectl top`
gives figures for every node. Monitoring: Prometheus scrapes every target the lab has and
answers a query on container metrics for every node, its alerting rules are loaded and
none fires, its UI renders. Logging: a line with a unique token written by a Pod on each
node is found in VictoriaLogs with its Pod, namespace and node, its UI renders.

Checks of an add-on the lab does not ask for are skipped. Prometheus, VictoriaLogs and the
UIs are reached from this machine, on the lab's first worker (toolkit/verify/addons.py)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from toolkit.constants import APISERVER_PORT, ETCD_METRICS_PORT
from toolkit.lab.addons import ADDONS
from toolkit.lab.spec import Lab, Node
from toolkit.verify import addons as reach
from toolkit.verify.addons import LOG_NAMESPACE
from toolkit.verify.checks import expect
from toolkit.verify.cluster import Cluster, eventually

TOP_TIMEOUT_S = 120
SCRAPE_TIMEOUT_S = 120
LOGS_TIMEOUT_S = 90
# Every rule of the monitoring add-on (roles/addons/templates/monitoring.yaml.j2).
ALERT_RULES = ("TargetDown", "NodeNotReady", "EtcdNoLeader", "PodCrashLooping")
CLUSTER_JOBS = ("prometheus", "coredns", "kube-state-metrics")
CONTAINER_CPU = 'sum by (node) (rate(container_cpu_usage_seconds_total{container!=""}[2m]))'
FIGURE = re.compile(r"^[0-9]+(m|Mi|Ki|Gi)?$")


def needs(lab: Lab, *addons: str) -> None:
    missing = [a for a in addons if a not in lab.addons]
    if missing:
        pytest.skip(f"lab {lab.name} does not ask for {', '.join(missing)} (addons: in its spec)")


def test_kubectl_top_gives_a_figure_for_every_node(
    lab: Lab, cluster: Cluster, kube_node: Node
) -> None:
    needs(lab, "metrics-server")

    def figures(out: str) -> list[str]:
        rows = [line.split() for line in out.splitlines()]
        return next((row[1:] for row in rows if row and row[0] == kube_node.name), [])

    ok, run = eventually(
        lambda: cluster.kubectl("top", "nodes", "--no-headers"),
        lambda run: (
            run.ok
            and all(FIGURE.match(f.rstrip("%")) for f in figures(run.stdout)[:3])
            and len(figures(run.stdout)) >= 3
        ),
        TOP_TIMEOUT_S,
    )
    expect(
        ok,
        f"`kubectl top nodes` gives no CPU and memory figures for {kube_node.name}",
        run.evidence,
    )


def test_kubectl_top_gives_figures_for_pods(lab: Lab, cluster: Cluster) -> None:
    needs(lab, "metrics-server")
    ok, run = eventually(
        lambda: cluster.kubectl("top", "pods", "--namespace", "kube-system", "--no-headers"),
        lambda run: (
            run.ok
            and any(
                line.split()[1:2] and FIGURE.match(line.split()[1])
                for line in run.stdout.splitlines()
            )
        ),
        TOP_TIMEOUT_S,
    )
    expect(ok, "`kubectl top pods -n kube-system` gives no figures", run.evidence)


@pytest.fixture(scope="module")
def targets(lab: Lab) -> reach.Answer:
    """Prometheus' active targets, once every one is up (or the bound has passed)."""
    needs(lab, "monitoring")

    def all_up(answer: reach.Answer) -> bool:
        active = answer.data["data"]["activeTargets"] if answer.ok else []
        return bool(active) and all(t["health"] == "up" for t in active)

    _, answer = eventually(
        lambda: reach.get_json(reach.PROMETHEUS, lab, "/api/v1/targets", state="active"),
        all_up,
        SCRAPE_TIMEOUT_S,
        interval_s=5,
    )
    return answer


def _matching(targets: reach.Answer, job: str, **labels: str) -> list[dict[str, Any]]:
    active = targets.data["data"]["activeTargets"] if targets.ok else []
    return [
        t
        for t in active
        if t["labels"].get("job") == job and all(t["labels"].get(k) == v for k, v in labels.items())
    ]


def _expect_up(found: list[dict[str, Any]], what: str, targets: reach.Answer) -> None:
    down = [
        f"{t['scrapeUrl']}: {t['health']} ({t.get('lastError', '')})"
        for t in found
        if t["health"] != "up"
    ]
    expect(
        found and not down,
        f"Prometheus: {what} " + ("is down" if found else "is no target"),
        "\n".join(down) or targets.evidence,
    )


def test_prometheus_scrapes_every_kubelet(kube_node: Node, targets: reach.Answer) -> None:
    found = _matching(targets, "kubelet", node=kube_node.name)
    _expect_up(found, f"the kubelet of {kube_node.name}", targets)


def test_prometheus_scrapes_every_cadvisor(kube_node: Node, targets: reach.Answer) -> None:
    found = _matching(targets, "cadvisor", node=kube_node.name)
    _expect_up(found, f"cAdvisor of {kube_node.name}", targets)


def test_prometheus_scrapes_node_exporter_on_every_node(
    kube_node: Node, targets: reach.Answer
) -> None:
    found = _matching(targets, "node-exporter", node=kube_node.name)
    _expect_up(found, f"node_exporter of {kube_node.name}", targets)


def test_prometheus_scrapes_every_api_server(control_plane: Node, targets: reach.Answer) -> None:
    instance = f"{control_plane.address}:{APISERVER_PORT}"
    _expect_up(
        _matching(targets, "apiserver", instance=instance), f"API server {instance}", targets
    )


def test_prometheus_scrapes_every_etcd_member(etcd_member: Node, targets: reach.Answer) -> None:
    instance = f"{etcd_member.address}:{ETCD_METRICS_PORT}"
    _expect_up(_matching(targets, "etcd", instance=instance), f"etcd {instance}", targets)


@pytest.mark.parametrize("job", CLUSTER_JOBS)
def test_prometheus_scrapes_the_cluster_services(job: str, targets: reach.Answer) -> None:
    _expect_up(_matching(targets, job), job, targets)


def test_prometheus_scrapes_vlagent_on_every_node(
    lab: Lab, kube_node: Node, targets: reach.Answer
) -> None:
    needs(lab, "logging")
    _expect_up(
        _matching(targets, "vlagent", node=kube_node.name), f"vlagent of {kube_node.name}", targets
    )


def test_container_metrics_answer_for_every_node(lab: Lab, kube_node: Node) -> None:
    needs(lab, "monitoring")

    def has_node(answer: reach.Answer) -> bool:
        results = answer.data["data"]["result"] if answer.ok else []
        return any(r["metric"].get("node") == kube_node.name for r in results)

    ok, answer = eventually(
        lambda: reach.prometheus_query(lab, CONTAINER_CPU), has_node, SCRAPE_TIMEOUT_S, 5
    )
    expect(
        ok,
        f"Prometheus has no container CPU sample of {kube_node.name}: {CONTAINER_CPU}",
        answer.evidence,
    )


@pytest.mark.parametrize("rule", ALERT_RULES)
def test_alert_rule_is_loaded_and_not_firing(lab: Lab, rule: str) -> None:
    needs(lab, "monitoring")
    rules = reach.get_json(reach.PROMETHEUS, lab, "/api/v1/rules", type="alert")
    loaded = [
        r
        for g in (rules.data["data"]["groups"] if rules.ok else [])
        for r in g["rules"]
        if r["name"] == rule
    ]
    expect(
        loaded and loaded[0].get("health") == "ok",
        f"alerting rule {rule} is not loaded",
        rules.evidence,
    )
    firing = [a for a in loaded[0].get("alerts", []) if a["state"] == "firing"]
    expect(
        not firing,
        f"alert {rule} fires: "
        + "; ".join(a["annotations"].get("summary", str(a["labels"])) for a in firing),
    )


@pytest.fixture(scope="module")
def log_tokens(lab: Lab, cluster: Cluster) -> Iterator[dict[str, str]]:
    """A Pod on each Kubernetes node that writes one line with a token of its own."""
    needs(lab, "logging")
    image = reach.shell_image(cluster)
    tokens = {n.name: f"k8slab-log-{secrets.token_hex(8)}" for n in cluster.kube_nodes}
    pods = "".join(_log_pod(node, token, image) for node, token in tokens.items())
    cluster.apply(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {LOG_NAMESPACE}}}\n{pods}")
    try:
        yield tokens
    finally:
        cluster.kubectl("delete", "namespace", LOG_NAMESPACE, "--wait=false")


def _log_pod(node: str, token: str, image: str) -> str:
    return f"""---
apiVersion: v1
kind: Pod
metadata: {{name: log-{node}, namespace: {LOG_NAMESPACE}}}
spec:
  nodeName: {node}
  tolerations: [{{operator: Exists}}]
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  containers:
    - name: writer
      image: {image}
      imagePullPolicy: Never
      command: [/bin/sh, -c, "echo {token}; exec sleep 900"]
"""


def test_a_line_logged_on_every_node_reaches_victoria_logs(
    lab: Lab, kube_node: Node, log_tokens: dict[str, str]
) -> None:
    token = log_tokens[kube_node.name]
    wanted = {
        "kubernetes.pod_name": f"log-{kube_node.name}",
        "kubernetes.pod_namespace": LOG_NAMESPACE,
        "kubernetes.pod_node_name": kube_node.name,
    }

    def found(answer: reach.Answer) -> bool:
        entries = answer.data if answer.ok and isinstance(answer.data, list) else []
        return any(all(e.get(k) == v for k, v in wanted.items()) for e in entries)

    ok, answer = eventually(
        lambda: reach.logs_query(lab, f'"{token}"'), found, LOGS_TIMEOUT_S, interval_s=3
    )
    expect(
        ok, f"VictoriaLogs has no line {token} from {kube_node.name} with {wanted}", answer.evidence
    )


@pytest.mark.parametrize("addon", [a.name for a in ADDONS.values() if a.ui])
def test_web_ui_renders_in_a_browser(lab: Lab, addon: str) -> None:
    needs(lab, addon)
    ui = ADDONS[addon].ui
    assert ui is not None
    dom, error = reach.render(ui.url(lab))
    missing = reach.missing_markers(ui, dom)
    expect(
        not error and not missing,
        f"{ui.url(lab)} does not render the {ui.name} UI: " + (error or f"no {missing}"),
        dom[:1500],
    )
