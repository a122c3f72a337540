"""Benchmark the lab foundation: node image build from nothing, and hosts up to SSH-ready.

Writes benchmarks/results/hosts.json. Run as root on a machine with a docker engine:

    .venv/bin/python benchmarks/hosts.py [--skip-cold-image] [--labs single ha-stacked]

- image_build_cold_s: `k8slab image build` with no image and no cached Debian packages.
- image_build_warm_s: the second `image build` (a no-op).
- up_<lab>_s: `k8slab up LAB` with the image cached, until every host answers SSH.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from toolkit import paths
from toolkit.hosts.image import node_image

RESULTS = Path(__file__).parent / "results" / "hosts.json"
K8SLAB = str(Path(sys.executable).parent / "k8slab")


def timed(argv: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return round(time.monotonic() - started, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-cold-image", action="store_true")
    parser.add_argument("--labs", nargs="+", default=["single", "ha-stacked"])
    options = parser.parse_args()

    results: dict[str, object] = {
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release()},
        "image": node_image().tag,
    }
    if not options.skip_cold_image:
        subprocess.run(
            ["docker", "image", "rm", "-f", node_image().tag],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(paths.cache_dir() / "debootstrap-debs", ignore_errors=True)
        results["image_build_cold_s"] = timed([K8SLAB, "image", "build"])
    results["image_build_warm_s"] = timed([K8SLAB, "image", "build"])
    for lab in options.labs:
        subprocess.run([K8SLAB, "destroy", lab], check=True, stdout=subprocess.DEVNULL)
        results[f"up_{lab}_s"] = timed([K8SLAB, "up", lab, "--hosts-only"])
        results[f"destroy_{lab}_s"] = timed([K8SLAB, "destroy", lab])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
