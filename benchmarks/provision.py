"""Benchmark provisioning with the node image and the bundle cached.

For each lab: time from `k8slab up LAB` to every node Ready, a no-op re-provision, the
time inside kubeadm against the total, and the machine's peak memory use. With
--scale, also `single` with 1, 2 and 4 workers, to show how time grows per worker. With
--addons LAB, what the add-ons cost: LAB as it is, then LAB with every add-on (its workers
given the memory they need), and the difference in time to Ready and in peak memory, with
the addons phase's own time (the issue's goal: under 60 s and 1.5 GiB more).
Updates benchmarks/results/provision.json: the labs measured replace their earlier entries,
the others stay.

    .venv/bin/python benchmarks/provision.py [--labs ha-stacked] [--scale] [--keep]
    .venv/bin/python benchmarks/provision.py --labs --addons ha-stacked
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

from toolkit.lab import addons
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
    # The cost of workers alone: no add-ons (--addons measures theirs) and no cloud (whose
    # zones the copy's workers would need).
    base.pop("addons", None)
    base.pop("cloud_provider", None)
    base["nodes"]["control_planes"][0].pop("zone", None)
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


# What each worker gets in the add-ons' copy of a lab: enough for toolkit/lab/addons.py's
# rules whatever the lab's worker count (one worker holds them all).
ADDONS_WORKER_MB = 2560


def addons_spec(lab: str, folder: Path) -> str:
    """``lab``'s spec with every add-on, under its own name (so its state is the lab's)."""
    spec = yaml.safe_load(spec_path(lab).read_text())
    spec["addons"] = list(addons.NAMES)
    for worker in spec["nodes"].get("workers", []):
        worker["memory_mb"] = max(worker.get("memory_mb", 0), ADDONS_WORKER_MB)
    path = folder / lab / "lab.yml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return str(path)


def measure_addons(lab: str) -> dict[str, Any]:
    """LAB without add-ons, then with all of them: each run, the difference, and the
    addons phase's own seconds."""
    plain = yaml.safe_load(spec_path(lab).read_text())
    assert not plain.get("addons"), f"{lab} already has add-ons; measure one without"
    without = measure(lab)
    with tempfile.TemporaryDirectory() as folder:
        with_all = measure(lab, addons_spec(lab, Path(folder)), keep=True)
        report = json.loads((LabState.of(lab).root / "timings" / "provision.json").read_text())
    k8slab("destroy", lab)
    phase = next((p["seconds"] for p in report["phases"] if p["name"] == "addons"), None)
    return {
        "addons": list(addons.NAMES),
        "without": without,
        "with": with_all,
        "extra_up_to_ready_s": round(with_all["up_to_ready_s"] - without["up_to_ready_s"], 1),
        "extra_peak_machine_memory_mib": with_all["peak_machine_memory_mib"]
        - without["peak_machine_memory_mib"],
        "addons_phase_s": phase,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--labs", nargs="*", default=["ha-stacked"])
    parser.add_argument("--scale", action="store_true")
    parser.add_argument("--keep", action="store_true", help="leave the last of --labs up")
    parser.add_argument("--addons", metavar="LAB", help="what every add-on costs on LAB")
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
    if options.addons:
        results.setdefault("addons", {})[options.addons] = {
            "recorded_at": recorded_at,
            **measure_addons(options.addons),
        }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
