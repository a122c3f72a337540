"""The add-ons' faults for tests/e2e/test_verify_faults.py: the log collector frozen on a
node, Prometheus stopped, a Pod crash-looping. A fault Prometheus can see must fire its
alert within the rule's `for:` plus one evaluation interval, read from Prometheus' own
ALERTS series (pending, then firing)."""

from __future__ import annotations

import time
from typing import Any, Protocol

from toolkit.lab.addons import NAMESPACE
from toolkit.lab.spec import Lab, Node
from toolkit.poll import poll
from toolkit.verify import addons as reach
from toolkit.verify.cluster import Cluster

# The addons role's defaults (roles/addons/defaults/main.yml): addons_alert_for and
# addons_evaluation_interval.
ALERT_FOR_S = 60
EVALUATION_S = 15
# Long enough for the condition to show in a scrape, hold for `for:` and be evaluated.
ALERT_TIMEOUT_S = 300
CRASH_NAMESPACE = "k8slab-fault-crash"
NODE_CHECKS = (
    "prometheus_scrapes_every_kubelet",
    "prometheus_scrapes_every_cadvisor",
    "prometheus_scrapes_node_exporter_on_every_node",
    "container_metrics_answer_for_every_node",
)
CLUSTER_SERVICES = ("prometheus", "coredns", "kube-state-metrics")
ALERT_RULES = ("TargetDown", "NodeNotReady", "EtcdNoLeader", "PodCrashLooping")


class Scene(Protocol):
    """What of test_verify_faults.Scene these faults use."""

    @property
    def lab(self) -> Lab: ...

    @property
    def cluster(self) -> Cluster: ...

    @property
    def worker(self) -> Node: ...


def without(addon: str) -> Any:
    """An ``unfit`` rule: the lab does not ask for ``addon``."""
    return lambda lab: "" if addon in lab.addons else f"the lab has no {addon} add-on"


def _kubectl(scene: Scene, *args: str, timeout: float = 120) -> None:
    result = scene.cluster.kubectl(*args, timeout=timeout)
    assert result.ok, result.evidence


def alert_fired_in_time(scene: Scene, alert: str, since: float, **labels: str) -> None:
    """Wait until ``alert`` (with ``labels``) fires, then check from the ALERTS series that
    it went from pending to firing within `for:` plus one evaluation interval."""
    matchers = ",".join([f'alertname="{alert}"', *(f'{k}="{v}"' for k, v in labels.items())])

    def firing() -> reach.Answer:
        return reach.prometheus_query(scene.lab, f'ALERTS{{{matchers},alertstate="firing"}}')

    outcome = poll(firing, lambda a: a.ok and bool(a.data["data"]["result"]), ALERT_TIMEOUT_S, 5)
    assert outcome.ok, (
        f"{alert} {labels} did not fire in {ALERT_TIMEOUT_S}s: {outcome.value.evidence}"
    )
    series = reach.get_json(
        reach.PROMETHEUS,
        scene.lab,
        "/api/v1/query_range",
        query=f"ALERTS{{{matchers}}}",
        start=f"{since - 60:.0f}",
        end=f"{time.time():.0f}",
        step="1",
    )
    assert series.ok, series.evidence
    first = {
        r["metric"]["alertstate"]: float(r["values"][0][0]) for r in series.data["data"]["result"]
    }
    assert {"pending", "firing"} <= set(first), f"ALERTS of {alert}: {series.evidence}"
    took = first["firing"] - first["pending"]
    assert took <= ALERT_FOR_S + EVALUATION_S + 1, (
        f"{alert} took {took:.0f}s from pending to firing; `for:` is {ALERT_FOR_S}s and one "
        f"evaluation {EVALUATION_S}s"
    )


# --- vlagent frozen on a worker ------------------------------------------------------------


def _vlagent_pid(scene: Scene) -> str:
    node = scene.worker
    found = scene.cluster.run(
        node,
        "crictl inspect --output go-template --template '{{.info.pid}}' "
        "$(crictl ps --name '^vlagent$' --state running -q | head -n 1)",
    )
    assert found.ok and found.stdout.strip().isdigit(), found.evidence
    return found.stdout.strip()


def freeze_vlagent(scene: Scene) -> None:
    """SIGSTOP: the collector stays in place but reads and ships nothing (a hung process)."""
    since = time.time()
    scene.cluster.run(scene.worker, f"kill -STOP {_vlagent_pid(scene)}")
    alert_fired_in_time(scene, "TargetDown", since, job="vlagent", node=scene.worker.name)


def thaw_vlagent(scene: Scene) -> None:
    result = scene.cluster.run(scene.worker, f"kill -CONT {_vlagent_pid(scene)}")
    assert result.ok, result.evidence


def vlagent_expected(scene: Scene) -> set[str]:
    node = scene.worker.name
    return {
        f"addons/a_line_logged_on_every_node_reaches_victoria_logs[{node}]",
        f"addons/prometheus_scrapes_vlagent_on_every_node[{node}]",
        "addons/alert_rule_is_loaded_and_not_firing[TargetDown]",
    }


# --- Prometheus stopped ---------------------------------------------------------------------


def stop_prometheus(scene: Scene) -> None:
    _kubectl(scene, "-n", NAMESPACE, "scale", "deployment/prometheus", "--replicas=0")

    def pods() -> list[Any]:
        found = scene.cluster.kubectl_json(
            "get", "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/name=prometheus"
        )
        return list(found["items"])

    outcome = poll(pods, lambda found: not found, 120, 3)
    assert outcome.ok, (
        f"Prometheus' Pods still there: {[p['metadata']['name'] for p in outcome.value]}"
    )


def start_prometheus(scene: Scene) -> None:
    _kubectl(scene, "-n", NAMESPACE, "scale", "deployment/prometheus", "--replicas=1")
    _kubectl(
        scene,
        "-n",
        NAMESPACE,
        "rollout",
        "status",
        "deployment/prometheus",
        "--timeout=180s",
        timeout=200,
    )


def prometheus_expected(scene: Scene) -> set[str]:
    """Every check that asks Prometheus: all of monitoring's."""
    lab = scene.lab
    kube = [n.name for n in lab.control_planes + lab.workers]
    expected = {f"addons/{check}[{n}]" for check in NODE_CHECKS for n in kube}
    expected |= {
        f"addons/prometheus_scrapes_every_api_server[{n.name}]" for n in lab.control_planes
    }
    expected |= {f"addons/prometheus_scrapes_every_etcd_member[{n.name}]" for n in lab.etcd_members}
    expected |= {f"addons/prometheus_scrapes_the_cluster_services[{j}]" for j in CLUSTER_SERVICES}
    expected |= {f"addons/alert_rule_is_loaded_and_not_firing[{r}]" for r in ALERT_RULES}
    expected.add("addons/web_ui_renders_in_a_browser[monitoring]")
    if "logging" in lab.addons:
        expected |= {f"addons/prometheus_scrapes_vlagent_on_every_node[{n}]" for n in kube}
    return expected


# --- a Pod crash-looping --------------------------------------------------------------------


def crash_loop_a_pod(scene: Scene) -> None:
    image = reach.shell_image(scene.cluster)
    since = time.time()
    manifest = f"""apiVersion: v1
kind: Namespace
metadata: {{name: {CRASH_NAMESPACE}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: crasher, namespace: {CRASH_NAMESPACE}}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
    - name: crasher
      image: {image}
      imagePullPolicy: Never
      command: [/bin/sh, -c, "echo crashing; exit 1"]
"""
    result = scene.cluster.apply(manifest)
    assert result.ok, result.evidence
    alert_fired_in_time(scene, "PodCrashLooping", since, namespace=CRASH_NAMESPACE)


def stop_crash_loop(scene: Scene) -> None:
    _kubectl(scene, "delete", "namespace", CRASH_NAMESPACE, "--timeout=120s")
    # The rule looks back two minutes: the alert clears once that window has passed.
    outcome = poll(
        lambda: reach.prometheus_query(
            scene.lab, f'ALERTS{{alertname="PodCrashLooping",namespace="{CRASH_NAMESPACE}"}}'
        ),
        lambda a: a.ok and not a.data["data"]["result"],
        ALERT_TIMEOUT_S,
        5,
    )
    assert outcome.ok, f"PodCrashLooping still active: {outcome.value.evidence}"
