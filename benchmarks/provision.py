"""Benchmark provisioning with the node image and the bundle cached.

For each lab: time from `k8slab up LAB` to every node Ready, a no-op re-provision, the
time inside kubeadm against the total, and the machine's peak memory use. With
--scale, also `single` with 1, 2 and 4 workers, to show how time grows per worker.
Updates benchmarks/results/provision.json: the labs measured replace their earlier entries,
the others stay.

    .venv/bin/python benchmarks/provision.py [--labs ha-stacked] [--scale] [--keep]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from toolkit.lab.spec import spec_path
from toolkit.lab.state import LabState

RESULTS = Path(__file__).parent / "results" / "provision.json"
K8SLAB = str(Path(sys.executable).parent / "k8slab")


class PeakMemory:
    """Samples the machine's used memory (MemTotal - MemAvailable) once a second."""

    def __init__(self) -> None:
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            info = dict(
                line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines()
            )
            used_kib = int(info["MemTotal"].split()[0]) - int(info["MemAvailable"].split()[0])
            self.peak_mib = max(self.peak_mib, used_kib / 1024)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def k8slab(*args: str) -> float:
    started = time.monotonic()
    subprocess.run([K8SLAB, *args], check=True, stdout=subprocess.DEVNULL)
    return round(time.monotonic() - started, 1)


def measure(lab: str, spec: str | None = None, keep: bool = False) -> dict[str, Any]:
    target = spec or lab
    k8slab("destroy", lab)
    with PeakMemory() as memory:
        up_s = k8slab("up", target)
    first = json.loads((LabState.of(lab).root / "timings" / "provision.json").read_text())
    noop_s = k8slab("provision", target)
    noop = json.loads((LabState.of(lab).root / "timings" / "provision.json").read_text())
    if not keep:
        k8slab("destroy", lab)
    return {
        "up_to_ready_s": up_s,
        "provision_s": first["seconds"],
        "kubeadm_s": first["kubeadm_seconds"],
        "noop_provision_s": noop_s,
        "noop_idempotent": noop["idempotent"],
        "peak_machine_memory_mib": round(memory.peak_mib),
    }


def scale_spec(workers: int, folder: Path) -> str:
    base = yaml.safe_load(spec_path("single").read_text())
    name = f"scale-w{workers}"
    base["name"] = name
    base["network"]["subnet"] = "172.30.9.0/24"
    base["api_endpoint"]["vip"] = "172.30.9.100"
    base["nodes"]["control_planes"][0]["address"] = "172.30.9.11"
    base["nodes"]["workers"] = [
        {"name": f"w{i}", "address": f"172.30.9.{20 + i}", "memory_mb": 1536}
        for i in range(1, workers + 1)
    ]
    path = folder / name / "lab.yml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(base, sort_keys=False))
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--labs", nargs="*", default=["ha-stacked"])
    parser.add_argument("--scale", action="store_true")
    parser.add_argument("--keep", action="store_true", help="leave the last of --labs up")
    options = parser.parse_args()
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.setdefault("labs", {})
    recorded_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for lab in options.labs:
        keep = options.keep and lab == options.labs[-1]
        results["labs"][lab] = {"recorded_at": recorded_at, **measure(lab, keep=keep)}
    if options.scale:
        with tempfile.TemporaryDirectory() as folder:
            for workers in (1, 2, 4):
                spec = scale_spec(workers, Path(folder))
                results["labs"][f"single+{workers}w"] = {
                    "recorded_at": recorded_at,
                    **measure(f"scale-w{workers}", spec),
                }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
