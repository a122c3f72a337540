"""The Kubernetes objects of a conformance run, as hydrophone and sonobuoy run the suite:
a namespace, a service account bound to a cluster role that may do anything (the suite
creates and deletes every kind of object, cluster-wide ones included), the repo list in
a ConfigMap, and one Pod.

The Pod runs upstream's conformance image (go-runner, which runs ginkgo, which runs
e2e.test against the in-cluster API) beside a busybox container that keeps the results
volume readable once go-runner has exited, and from which they are copied. It is pinned
to one node (the lab's first control plane: the workers' capacity stays the specs'),
tolerates every taint (the taint specs put NoExecute taints on nodes), and runs as
nobody with no privileges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

NAMESPACE = "k8slab-conformance"
SERVICE_ACCOUNT = "conformance"
CLUSTER_ROLE = "k8slab-conformance"
REPO_LIST_CONFIGMAP = "repo-list"
POD = "e2e-conformance"
RUNNER = "conformance"
OUTPUT = "output"
RESULTS_DIR = "/tmp/results"
REPO_LIST_DIR = "/tmp/repo-list"
REPO_LIST_KEY = "repo-list.yaml"
LABELS = {"app.kubernetes.io/name": "k8slab-conformance"}
# go-runner's own default focus (test/conformance/image/go-runner/const.go).
CONFORMANCE_FOCUS = r"\[Conformance\]"
NOBODY = 65534


@dataclass(frozen=True)
class RunSpec:
    """What one run asks of go-runner, and where it runs."""

    runner_image: str
    output_image: str  # a busybox: sh, cat, tar, sleep
    node: str
    repo_list: str  # the YAML e2e.test reads as KUBE_TEST_REPO_LIST
    focus: str = CONFORMANCE_FOCUS
    skip: str = ""
    parallel: int = 1
    dry_run: bool = False


def _security_context() -> dict[str, Any]:
    return {
        "runAsUser": NOBODY,
        "runAsGroup": NOBODY,
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def runner_env(spec: RunSpec) -> list[dict[str, str]]:
    """go-runner's environment (test/conformance/image/go-runner/env.go)."""
    env = {
        "E2E_FOCUS": spec.focus,
        "E2E_SKIP": spec.skip,
        # No cloud: the suite takes the cluster as it is (kind and hydrophone do the same).
        "E2E_PROVIDER": "skeleton",
        "RESULTS_DIR": RESULTS_DIR,
        "KUBE_TEST_REPO_LIST": f"{REPO_LIST_DIR}/{REPO_LIST_KEY}",
    }
    # go-runner reads E2E_PARALLEL as a yes/no that also skips [Serial] specs; a number
    # of processes goes to ginkgo itself, which runs [Serial] specs last, on one process.
    # ginkgo refuses a dry run in parallel ("only performs -dryRun in serial mode").
    if spec.dry_run:
        env["E2E_DRYRUN"] = "true"
    elif spec.parallel > 1:
        env["E2E_EXTRA_GINKGO_ARGS"] = f"--procs={spec.parallel}"
    return [{"name": k, "value": v} for k, v in env.items()]


def objects(spec: RunSpec) -> list[dict[str, Any]]:
    meta = {"labels": LABELS}
    subject = {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}
    results = {"name": "results", "mountPath": RESULTS_DIR}
    # Sleeps in short steps so that TERM ends it at once (a shell as PID 1 ignores it).
    keep_open = "trap 'exit 0' TERM; while true; do sleep 5 & wait $!; done"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": POD, "namespace": NAMESPACE, **meta},
        "spec": {
            "serviceAccountName": SERVICE_ACCOUNT,
            "restartPolicy": "Never",
            "nodeName": spec.node,
            "tolerations": [{"operator": "Exists"}],
            "terminationGracePeriodSeconds": 30,
            "volumes": [
                {"name": "results", "emptyDir": {}},
                {"name": "repo-list", "configMap": {"name": REPO_LIST_CONFIGMAP}},
            ],
            "containers": [
                {
                    "name": RUNNER,
                    "image": spec.runner_image,
                    "imagePullPolicy": "Never",
                    "env": runner_env(spec),
                    "volumeMounts": [
                        results,
                        {"name": "repo-list", "mountPath": REPO_LIST_DIR, "readOnly": True},
                    ],
                    "securityContext": _security_context(),
                },
                {
                    "name": OUTPUT,
                    "image": spec.output_image,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", keep_open],
                    "volumeMounts": [results],
                    "securityContext": _security_context(),
                },
            ],
        },
    }
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, **meta}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": SERVICE_ACCOUNT, "namespace": NAMESPACE, **meta},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": CLUSTER_ROLE, **meta},
            "rules": [
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                {"nonResourceURLs": ["/metrics", "/logs", "/logs/*"], "verbs": ["get"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": CLUSTER_ROLE, **meta},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": CLUSTER_ROLE,
            },
            "subjects": [subject],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": REPO_LIST_CONFIGMAP, "namespace": NAMESPACE, **meta},
            "data": {REPO_LIST_KEY: spec.repo_list},
        },
        pod,
    ]


def render(spec: RunSpec) -> str:
    """The objects as one YAML stream, for ``kubectl apply`` and the report folder."""
    return yaml.safe_dump_all(objects(spec), sort_keys=False)


def exec_args(container: str, *command: str) -> list[str]:
    """kubectl's arguments to run ``command`` in one of the Pod's containers."""
    return ["exec", "-n", NAMESPACE, POD, "-c", container, "--", *command]


def interrupt_args() -> list[str]:
    """SIGINT to go-runner (PID 1 of the runner container): it passes it on to ginkgo,
    which stops the specs and reports, and then go-runner writes its tarball and ``done``.
    Deleting the Pod instead would end in SIGKILL: go-runner ignores SIGTERM as PID 1."""
    return exec_args(RUNNER, "sh", "-c", "kill -INT 1")


def log_tail_args(offset: int) -> list[str]:
    """The log's bytes from ``offset`` on, base64 (the output container outlives go-runner)."""
    script = f"tail -c +{int(offset) + 1} {RESULTS_DIR}/e2e.log | base64"
    return exec_args(OUTPUT, "sh", "-c", script)
