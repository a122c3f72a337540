"""Cold and warm build times and the size of a bundle; writes benchmarks/results/bundle.json.

    python benchmarks/bundle_build.py [--kubernetes v1.34.4] [--skip-cold]
    python benchmarks/bundle_build.py --part cri-dockerd [--part conformance]...

Cold: empty Go build and module caches and an empty bundle cache (the Debian base image,
built by debootstrap alongside the compiles, is kept if docker has it; the result says
whether it was). Warm rebuild: ``--force`` with the Go caches filled. No-op: a second
``k8slab bundle build`` of a complete bundle.

With ``--part``, only the optional parts named (toolkit/bundle/parts.py) are measured, in
the bundle cache as it is: each part's rebuild (``--force``, Go caches as they are) and
its size per artifact, kept under ``parts`` beside the base bundle's figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from toolkit.bundle import build, parts, verify
from toolkit.bundle.images import debian_base_tag, image_exists
from toolkit.bundle.tools import preflight, run
from toolkit.progress import Progress
from toolkit.versions import DEFAULT_KUBERNETES_VERSION

RESULTS = Path(__file__).resolve().parent / "results" / "bundle.json"


def _timed_build(version: str, force: bool) -> tuple[float, dict[str, float], Any]:
    progress = Progress()
    started = time.monotonic()
    result = build(version, force=force, progress=progress)
    return time.monotonic() - started, dict(progress.durations), result


def measure_parts(version: str, names: list[str]) -> None:
    record = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    measured = record.setdefault("parts", {})
    for name in dict.fromkeys(names):
        parts.build_part(version, name)  # its base and inputs in place first
        progress = Progress()
        started = time.monotonic()
        manifest = parts.build_part(version, name, force=True, progress=progress).manifest
        seconds = time.monotonic() - started
        measured[name] = {
            "kubernetes": version,
            "load_average_before": [round(x, 1) for x in os.getloadavg()],
            "rebuild_seconds": round(seconds, 1),
            "phases": dict(progress.durations),
            "size_bytes": sum(a.size for a in manifest.artifacts),
            "artifacts": {a.name: a.size for a in manifest.artifacts},
        }
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(
        json.dumps(
            {n: {k: v for k, v in measured[n].items() if k != "artifacts"} for n in names}, indent=2
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes", default=DEFAULT_KUBERNETES_VERSION)
    parser.add_argument("--skip-cold", action="store_true", help="Measure warm runs only.")
    parser.add_argument("--part", action="append", choices=parts.NAMES, default=[])
    args = parser.parse_args()
    if args.part:
        measure_parts(args.kubernetes, args.part)
        return
    tools = preflight()
    record: dict[str, Any] = {
        "kubernetes": args.kubernetes,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "go": run([tools.go, "version"]).strip(),
        },
    }
    with tempfile.TemporaryDirectory(prefix="k8slab-bench-") as tmp:
        os.environ["K8SLAB_CACHE_DIR"] = str(Path(tmp) / "cache")
        if not args.skip_cold:
            os.environ["GOCACHE"] = str(Path(tmp) / "gocache")
            os.environ["GOMODCACHE"] = str(Path(tmp) / "gomodcache")
            record["cold"] = {"debian_base_was_cached": image_exists(tools, debian_base_tag())}
            seconds, phases, _ = _timed_build(args.kubernetes, force=False)
            record["cold"] |= {"seconds": round(seconds, 1), "phases": phases}
        seconds, phases, result = _timed_build(args.kubernetes, force=True)
        record["warm_rebuild"] = {"seconds": round(seconds, 1), "phases": phases}
        seconds, _, _ = _timed_build(args.kubernetes, force=False)
        record["noop_seconds"] = round(seconds, 2)
        started = time.monotonic()
        verify(args.kubernetes)
        record["verify_seconds"] = round(time.monotonic() - started, 1)
        artifacts = result.manifest.artifacts
        record["size_bytes"] = sum(a.size for a in artifacts)
        record["size_by_kind"] = {
            kind: sum(a.size for a in artifacts if a.kind == kind)
            for kind in sorted({a.kind for a in artifacts})
        }
        record["artifacts"] = {a.name: a.size for a in artifacts}
        if not args.skip_cold:
            run(["chmod", "-R", "u+w", tmp])  # the module cache is read-only
    if RESULTS.is_file():  # the parts are measured on their own
        record["parts"] = json.loads(RESULTS.read_text()).get("parts", {})
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(
        json.dumps({k: v for k, v in record.items() if k not in ("artifacts", "parts")}, indent=2)
    )


if __name__ == "__main__":
    main()
