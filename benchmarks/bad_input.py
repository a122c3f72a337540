"""Benchmark how `k8slab validate` refuses hostile lab specs: each one must exit non-zero
with one short line and no traceback, in under a second and under 100 MB (issue 11).

The inputs are the kinds the issue names: an alias bomb, a 50 MB file, deep nesting, a
binary file, a symlink loop, duplicate keys, a name with a trailing newline (in a copy of
the shipped `single` spec), a LAB
argument that climbs out of the state directory. Each is run as its own process; its
wall time and peak memory (ru_maxrss, from wait4) go to benchmarks/results/bad_input.json.

    .venv/bin/python benchmarks/bad_input.py
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "bad_input.json"
INVENTORIES = Path(__file__).resolve().parent.parent / "inventories"
K8SLAB = str(Path(sys.executable).with_name("k8slab"))
TARGET_S = 1.0
TARGET_MB = 100
# One line for a file the loader refuses; a spec that parses gets a header and one line
# per problem (here: one).
MAX_LINES = 2


def write_inputs(directory: Path) -> dict[str, str]:
    """The hostile inputs, by name: each a LAB argument for `k8slab validate`."""
    level = "[" + ",".join(["*a"] * 9) + "]"
    (directory / "alias-bomb.yml").write_text(
        'a: &a ["x", "x"]\n' + "".join(f"b{n}: &a {level}\n" for n in range(8))
    )
    with (directory / "huge.yml").open("w") as handle:  # in pieces: this process stays small
        handle.write("name: x\n")
        for _ in range(50):
            handle.write("#" * 1_000_000)
    (directory / "deep.yml").write_text("[" * 20_000)
    (directory / "binary.yml").write_bytes(bytes(range(256)) * 16)
    (directory / "loop.yml").symlink_to("loop.yml")
    (directory / "duplicate-keys.yml").write_text("name: a\nname: b\n")
    shipped = (INVENTORIES / "single" / "lab.yml").read_text()
    (directory / "newline-name.yml").write_text(
        re.sub(r"(?m)^name: .*$", lambda _: 'name: "single\\n"', shipped)
    )
    inputs = {path.stem: str(path) for path in sorted(directory.iterdir())}
    inputs["lab-dot-dot"] = "ha-stacked/.."
    return inputs


def run_one(argument: str) -> dict[str, Any]:
    started = time.monotonic()
    process = subprocess.Popen(
        [K8SLAB, "validate", argument], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    assert process.stdout is not None
    output = process.stdout.read().decode(errors="replace").strip()
    process.stdout.close()
    return {
        "exit": os.waitstatus_to_exitcode(status),
        "seconds": round(seconds, 3),
        "max_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "lines": len(output.splitlines()),
        "traceback": "Traceback" in output,
        "message": output[:160],
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as temporary:
        inputs = write_inputs(Path(temporary))
        cases = {name: run_one(argument) for name, argument in inputs.items()}
    worst_s = max(case["seconds"] for case in cases.values())
    worst_mb = max(case["max_rss_mb"] for case in cases.values())
    passed = all(
        case["exit"] != 0 and case["lines"] <= MAX_LINES and not case["traceback"]
        for case in cases.values()
    )
    result = {
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average": os.getloadavg()[0],
        "target_s": TARGET_S,
        "target_mb": TARGET_MB,
        "worst_s": worst_s,
        "worst_mb": worst_mb,
        "met": passed and worst_s < TARGET_S and worst_mb < TARGET_MB,
        "cases": cases,
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for name, case in cases.items():
        print(
            f"{name:<16} exit {case['exit']} {case['seconds']:6.3f} s {case['max_rss_mb']:6.1f} MB"
        )
    print(f"worst {worst_s:.3f} s, {worst_mb:.1f} MB; target met: {result['met']}")


if __name__ == "__main__":
    main()
