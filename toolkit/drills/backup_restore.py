"""The backup-restore drill: sentinels, a backup, later changes, a restore; the sentinels
come back with their content and the later changes are gone."""

from __future__ import annotations

import base64
import json
import secrets
import time

from toolkit import kube
from toolkit.drills.lab_ops import configmaps, delete_namespace
from toolkit.drills.report import DrillResult
from toolkit.etcd import cluster
from toolkit.etcd.backup import backup
from toolkit.etcd.restore import restore
from toolkit.etcd.topology import Topology
from toolkit.lab.spec import Lab
from toolkit.progress import Progress
from toolkit.versions import release

NAMESPACE, LATER_NAMESPACE = "k8slab-drill-sentinel", "k8slab-drill-later"
SENTINEL = "deployment/sentinel"


def sentinel_manifest(namespace: str, token: str, image: str) -> str:
    docs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}]
    docs += [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"sentinel-{n}", "namespace": namespace},
            "data": {"value": f"sentinel-{n}-{token}", "n": str(n)},
        }
        for n in (1, 2, 3)
    ]
    docs += [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"sentinel-secret-{n}", "namespace": namespace},
            "stringData": {"password": f"secret-{n}-{token}"},
        }
        for n in (1, 2)
    ]
    labels = {"app": "sentinel"}
    container = {"name": "pause", "image": image, "imagePullPolicy": "IfNotPresent"}
    docs.append(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "sentinel", "namespace": namespace},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
            },
        }
    )
    return "\n---\n".join(json.dumps(doc) for doc in docs)


def _secrets(lab: Lab, namespace: str) -> dict[str, dict[str, str]]:
    items = kube.kubectl_json(lab, ["get", "secrets", "-n", namespace])["items"]
    return {
        item["metadata"]["name"]: {
            k: base64.b64decode(v).decode() for k, v in (item.get("data") or {}).items()
        }
        for item in items
    }


def _sentinels(found: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    return {k: v for k, v in found.items() if k.startswith("sentinel")}


def _revision(topo: Topology) -> int:
    found = cluster.health(topo)
    return max((s.revision for s in found.answered.values()), default=0)


def _check_sentinel_runs(
    lab: Lab, result: DrillResult, name: str, timeout_s: float
) -> float | None:
    """Check that the sentinel's Pods all run; the seconds it took, None if they do not."""
    try:
        seconds = kube.wait_rolled_out(lab, SENTINEL, NAMESPACE, timeout_s)
    except kube.ClusterError as exc:
        # Go on: the restore and its data checks still tell something; the drill fails.
        result.check(name, False, str(exc))
        return None
    result.check(name, True)
    return seconds


def _change_after_backup(lab: Lab) -> None:
    for args in (
        ["create", "configmap", "later-1", "-n", NAMESPACE, "--from-literal=v=later"],
        ["create", "namespace", LATER_NAMESPACE],
        ["create", "configmap", "later-2", "-n", LATER_NAMESPACE, "--from-literal=v=later"],
        ["delete", "configmap", "sentinel-2", "-n", NAMESPACE],
        ["delete", "secret", "sentinel-secret-1", "-n", NAMESPACE],
    ):
        kube.kubectl_ok(lab, args)


def run(lab: Lab, result: DrillResult, progress: Progress) -> None:
    """Sentinels, backup, later changes, restore: sentinels back, later changes gone."""
    token = secrets.token_hex(4)
    topo = Topology(lab)
    for ns in (NAMESPACE, LATER_NAMESPACE):
        delete_namespace(lab, ns)
    progress.say("drill", f"sentinels in {NAMESPACE} (token {token})")
    kube.apply(
        lab, sentinel_manifest(NAMESPACE, token, release(lab.kubernetes_version).pause_image)
    )
    _check_sentinel_runs(lab, result, "the sentinel Deployment's Pods ran before the backup", 120)
    expected_maps = _sentinels(configmaps(lab, NAMESPACE))
    expected_secrets = _sentinels(_secrets(lab, NAMESPACE))
    taken = backup(lab, progress=progress)
    backed_up_at = time.time()
    result.timings["backup_s"] = taken.seconds
    result.data["snapshot"] = {
        "file": taken.path.name,
        "revision": taken.manifest.revision,
        "keys": taken.manifest.total_keys,
        "member": taken.manifest.member,
    }
    progress.say("drill", "changes after the backup: 2 new objects, 2 sentinels deleted")
    _change_after_backup(lab)
    revision_before = _revision(topo)
    restore_started = time.monotonic()
    rpo_s = time.time() - backed_up_at
    progress.say("drill", f"restore of {taken.path.name}")
    restored = restore(lab, taken.path, progress)
    result.timings["rto_s"] = time.monotonic() - restore_started
    result.timings.update({f"restore_{k}_s": v for k, v in restored.phases.items()})
    result.data["rpo"] = {
        "revisions_missed": revision_before - taken.manifest.revision,
        "seconds_since_backup": round(rpo_s, 1),
        "objects_lost": [f"{NAMESPACE}/configmap/later-1", LATER_NAMESPACE],
    }
    maps, found_secrets = configmaps(lab, NAMESPACE), _secrets(lab, NAMESPACE)
    for name, data in expected_maps.items():
        result.check(
            f"configmap {name} is back with its content",
            maps.get(name) == data,
            str(maps.get(name)),
        )
    for name, data in expected_secrets.items():
        result.check(
            f"secret {name} is back with its content",
            found_secrets.get(name) == data,
            "content differs" if name in found_secrets else "missing",
        )
    result.check("configmap later-1 (made after the backup) is gone", "later-1" not in maps)
    status, _ = kube.kubectl(lab, ["get", f"namespace/{LATER_NAMESPACE}", "-o", "name"])
    result.check(f"namespace {LATER_NAMESPACE} (made after the backup) is gone", status != 0)
    ready_s = _check_sentinel_runs(lab, result, "the sentinel Deployment's Pods run", 180)
    if ready_s is not None:
        result.timings["deployment_ready_s"] = ready_s
    delete_namespace(lab, NAMESPACE)
