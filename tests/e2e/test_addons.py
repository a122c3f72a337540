"""End to end, on a lab whose spec asks for add-ons (`single`): a HorizontalPodAutoscaler
scales a Deployment up under bounded load and back down once it stops (metrics-server);
the lab is reached from this machine as its operator does: a plain kubectl with
`k8slab kubeconfig`, the UIs `k8slab open` prints, k9s through `k8slab k9s`. The add-ons'
own checks are verify's group `addons` (test_verify.py), their faults in
test_verify_faults.py; a second provision changing nothing covers their idempotence
(test_cluster.py)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time
import urllib.request
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from toolkit import access
from toolkit.bundle import parts, store
from toolkit.cli import main
from toolkit.lab.spec import Lab
from toolkit.verify import addons as reach
from toolkit.verify.cluster import Cluster, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HPA_NAMESPACE = "k8slab-e2e-hpa"
MAX_REPLICAS = 3
SCALE_TIMEOUT_S = 300
BURN = (
    'while :; do if [ "$(cat /load/state)" = on ]; then '
    "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; else sleep 1; fi; done"
)
# The load: each replica burns CPU while the ConfigMap says "on", up to its limit (200m);
# the HPA aims at 50% of the 100m request, with a 30 s scale-down window instead of 5 min.
HPA_MANIFEST = f"""apiVersion: v1
kind: Namespace
metadata: {{name: {HPA_NAMESPACE}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: load, namespace: {HPA_NAMESPACE}}}
data: {{state: "off"}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: burner, namespace: {HPA_NAMESPACE}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: burner}}}}
  template:
    metadata: {{labels: {{app: burner}}}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
        - name: burner
          image: IMAGE
          imagePullPolicy: Never
          command:
            - /bin/sh
            - -c
            - '{BURN}'
          resources:
            requests: {{cpu: 100m, memory: 16Mi}}
            limits: {{cpu: 200m, memory: 32Mi}}
          volumeMounts: [{{name: load, mountPath: /load}}]
      volumes: [{{name: load, configMap: {{name: load}}}}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: burner, namespace: {HPA_NAMESPACE}}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: burner}}
  minReplicas: 1
  maxReplicas: {MAX_REPLICAS}
  metrics:
    - type: Resource
      resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 50}}}}
  behavior:
    scaleDown: {{stabilizationWindowSeconds: 30}}
"""


def _needs(lab: Lab, addon: str) -> None:
    if addon not in lab.addons:
        pytest.skip(f"lab {lab.name} does not ask for {addon}")


@pytest.fixture
def cluster(provisioned_lab: Lab) -> Iterator[Cluster]:
    cluster = Cluster(provisioned_lab)
    yield cluster
    cluster.close()


def _replicas(cluster: Cluster) -> int:
    hpa = cluster.kubectl_json("get", "hpa", "burner", "-n", HPA_NAMESPACE)
    return int(hpa.get("status", {}).get("currentReplicas") or 0)


def _load(cluster: Cluster, state: str) -> None:
    patch = f'{{"data": {{"state": "{state}"}}}}'
    result = cluster.kubectl("patch", "configmap", "load", "-n", HPA_NAMESPACE, "-p", patch)
    assert result.ok, result.evidence


def test_an_hpa_scales_up_under_load_and_back_down(provisioned_lab: Lab, cluster: Cluster) -> None:
    _needs(provisioned_lab, "metrics-server")
    image = reach.shell_image(cluster)
    applied = cluster.apply(HPA_MANIFEST.replace("IMAGE", image))
    assert applied.ok, applied.evidence
    try:
        idle, _ = eventually(
            lambda: cluster.kubectl_json("get", "hpa", "burner", "-n", HPA_NAMESPACE),
            lambda hpa: any(
                m.get("resource", {}).get("current", {}).get("averageUtilization") is not None
                for m in hpa.get("status", {}).get("currentMetrics") or []
            ),
            SCALE_TIMEOUT_S,
            5,
        )
        assert idle, "the HPA never read the Deployment's CPU from metrics-server"
        _load(cluster, "on")
        up, seen = eventually(lambda: _replicas(cluster), lambda n: n > 1, SCALE_TIMEOUT_S, 5)
        assert up, f"no scale-up under load in {SCALE_TIMEOUT_S}s (replicas {seen})"
        assert seen <= MAX_REPLICAS
        _load(cluster, "off")
        down, seen = eventually(lambda: _replicas(cluster), lambda n: n == 1, SCALE_TIMEOUT_S, 5)
        assert down, f"no scale-down once the load stopped in {SCALE_TIMEOUT_S}s (replicas {seen})"
    finally:
        cluster.kubectl("delete", "namespace", HPA_NAMESPACE, "--wait=false")


def test_a_plain_kubectl_here_reaches_the_lab_with_its_kubeconfig(provisioned_lab: Lab) -> None:
    printed = CliRunner().invoke(main, ["kubeconfig", str(provisioned_lab.source)])
    assert printed.exit_code == 0, printed.output
    base = store.load(provisioned_lab.kubernetes_version)
    (kubectl,) = [a for a in base.artifacts if a.name == "kubectl"]
    program = store.bundle_dir(provisioned_lab.kubernetes_version) / kubectl.path
    nodes = subprocess.run(
        [str(program), "get", "nodes", "-o", "name"],
        env={"PATH": "/usr/bin:/bin", "KUBECONFIG": printed.output.strip()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert nodes.returncode == 0, nodes.stderr
    kube = {n.name for n in provisioned_lab.control_planes + provisioned_lab.workers}
    assert {line.removeprefix("node/") for line in nodes.stdout.split()} == kube


def test_every_ui_open_prints_answers_from_this_machine(provisioned_lab: Lab) -> None:
    if not {"monitoring", "logging"} & set(provisioned_lab.addons):
        pytest.skip(f"lab {provisioned_lab.name} has no add-on with a web UI")
    printed = CliRunner().invoke(main, ["open", str(provisioned_lab.source)])
    assert printed.exit_code == 0, printed.output
    for line in printed.output.splitlines():
        name, url = line.split()
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200, f"{name}: {url} answered {response.status}"


def test_k9s_shows_the_lab_s_nodes(provisioned_lab: Lab) -> None:
    if "k9s" not in parts.present(provisioned_lab.kubernetes_version):
        pytest.skip(
            f"no k9s part: {parts.build_command(provisioned_lab.kubernetes_version, 'k9s')}"
        )
    argv, env = access.k9s(provisioned_lab)
    screen = _screen_of([*argv, "--readonly", "--command", "nodes"], env, seconds=20)
    for node in provisioned_lab.control_planes + provisioned_lab.workers:
        assert node.name in screen, f"k9s did not show {node.name}:\n{screen[-2000:]}"


def _own_terminal() -> None:
    """In the child: a session of its own whose controlling terminal is the pty on its stdin,
    since k9s opens /dev/tty (which a test run without a terminal has not got)."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _screen_of(argv: list[str], env: dict[str, str], seconds: float) -> str:
    """What a program shows in a terminal of its own (a pty) within ``seconds``."""
    leader, follower = pty.openpty()
    # A terminal of 50 rows by 160 columns: k9s draws to the size the pty reports.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    process = subprocess.Popen(
        argv,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**env, "TERM": "xterm-256color"},
        preexec_fn=_own_terminal,
    )
    os.close(follower)
    shown = b""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1)
            if ready:
                try:
                    shown += os.read(leader, 65536)
                except OSError:
                    break
    finally:
        process.terminate()
        process.wait(timeout=10)
        os.close(leader)
    return shown.decode("utf-8", "replace")
