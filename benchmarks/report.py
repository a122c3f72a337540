"""Write docs/measurements.md from benchmarks/results/*.json: figures generated, never typed.

    .venv/bin/python benchmarks/report.py [--results DIR] [--output FILE]

Each results file becomes one section: when it was recorded (``recorded_at``,
``measured`` or ``commit``, as the file holds them), the script that wrote it, and its
figures as tables. The known files have tables shaped for them; any other file, or a
known one whose shape has changed, is shown as a plain list of its values, so that no
results file is ever left out. The output depends only on the results files (no clock),
so a unit test can check that the committed page is up to date.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
RESULTS_DIR = BENCHMARKS / "results"
OUTPUT = BENCHMARKS.parent / "docs" / "measurements.md"
# Keys that say when, or from which commit, a results file (or one of its entries) was made.
WHEN_KEYS = ("recorded_at", "measured", "commit")

Table = tuple[list[str], list[list[str]]]


def fmt(value: Any) -> str:
    """A value as a table cell."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ", ".join(fmt(v) for v in value) or "-"
    return str(value).replace("|", "\\|")


def seconds(value: Any) -> str:
    return "-" if value is None else f"{fmt(value)} s"


def size(value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value} B"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = [f"| {' | '.join(header)} |", f"|{'---|' * len(header)}"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join(lines)


def flatten(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every scalar (or list of scalars) in ``data``, named by its dotted path."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(data, list) and any(isinstance(v, dict | list) for v in data):
        for index, value in enumerate(data):
            yield from flatten(value, f"{prefix}[{index}]")
    else:
        yield prefix or "value", data


# The tables of each known results file, by its name. A renderer may raise KeyError,
# TypeError or ValueError when the file's shape changed; the file is then shown flat.


def hosts_tables(data: dict[str, Any]) -> list[Table]:
    machine = data.get("machine", {})
    rows = [
        ["node image", fmt(data["image"])],
        ["`k8slab image build` from nothing", seconds(data["image_build_cold_s"])],
        ["`k8slab image build` again (no-op)", seconds(data["image_build_warm_s"])],
    ]
    labs = [k[len("up_") : -len("_s")] for k in data if k.startswith("up_") and k.endswith("_s")]
    for lab in labs:
        rows.append([f"`k8slab up {lab} --hosts-only`, image cached", seconds(data[f"up_{lab}_s"])])
        rows.append([f"`k8slab destroy {lab}`", seconds(data.get(f"destroy_{lab}_s"))])
    rows.append(
        ["machine", f"{fmt(machine.get('cpus'))} CPUs, kernel {fmt(machine.get('kernel'))}"]
    )
    return [(["what", "measured"], rows)]


def provision_tables(data: dict[str, Any]) -> list[Table]:
    rows = []
    for lab, run in data["labs"].items():
        noop = seconds(run["noop_provision_s"])
        if "noop_idempotent" in run:
            noop += ", changed=0" if run["noop_idempotent"] else ", CHANGED"
        memory = run.get("peak_machine_memory_mib")
        rows.append(
            [
                f"`{lab}`",
                fmt(run.get("recorded_at")),
                seconds(run["up_to_ready_s"]),
                f"{seconds(run['provision_s'])} ({seconds(run.get('kubeadm_s'))})",
                noop,
                "-" if memory is None else f"{memory / 1024:.1f} GiB",
            ]
        )
    header = [
        "lab",
        "recorded",
        "`k8slab up` to all Ready",
        "first provision (in kubeadm)",
        "no-op re-provision",
        "peak machine memory",
    ]
    return [(header, rows), *addons_tables(data.get("addons", {}))]


def addons_tables(measured: dict[str, Any]) -> list[Table]:
    """What every add-on costs a lab (`benchmarks/provision.py --addons LAB`)."""
    rows = [
        [
            f"`{lab}`",
            fmt(run.get("recorded_at")),
            f"{seconds(run['without']['up_to_ready_s'])} → {seconds(run['with']['up_to_ready_s'])}",
            seconds(run["extra_up_to_ready_s"]),
            seconds(run.get("addons_phase_s")),
            f"{run['extra_peak_machine_memory_mib'] / 1024:.1f} GiB",
        ]
        for lab, run in measured.items()
    ]
    header = [
        "lab with every add-on",
        "recorded",
        "`k8slab up` to all Ready, without → with",
        "extra time",
        "addons phase",
        "extra peak memory",
    ]
    return [(header, rows)] if rows else []


def verify_tables(data: dict[str, Any]) -> list[Table]:
    summary = [
        ["lab", f"`{data['lab']}` ({fmt(data.get('topology'))}, {fmt(data.get('nodes'))} nodes)"],
        ["best run", f"{seconds(data['best_s'])} (target {seconds(data.get('target_s'))})"],
        ["target met", fmt(data.get("met"))],
    ]
    runs, groups = [], []
    for index, run in enumerate(data["runs"], 1):
        counts = run.get("counts", {})
        slowest = run.get("slowest_checks", [])[:3]
        runs.append(
            [
                str(index),
                seconds(run["seconds"]),
                fmt(run.get("passed")),
                ", ".join(f"{v} {k}" for k, v in counts.items() if v) or "-",
                fmt(run.get("load_average_before", [None])[0]),
                "; ".join(f"`{c['check']}` {seconds(c['seconds'])}" for c in slowest) or "-",
                fmt(run.get("passed_after_retry")),
            ]
        )
        by_group = run.get("checks_seconds_by_group", {})
        groups.append([str(index), *(seconds(v) for v in by_group.values())])
    group_names = list(data["runs"][0].get("checks_seconds_by_group", {})) if data["runs"] else []
    return [
        (["what", "value"], summary),
        (
            [
                "run",
                "time",
                "passed",
                "checks",
                "load before",
                "slowest checks",
                "passed after retry",
            ],
            runs,
        ),
        (["run", *(f"`{g}`" for g in group_names)], groups),
    ]


def etcd_tables(data: dict[str, Any]) -> list[Table]:
    tables: list[Table] = [
        (
            ["what", "value"],
            [
                ["lab", f"`{data['lab']}` ({fmt(data.get('topology'))})"],
                ["Kubernetes", fmt(data.get("kubernetes_version"))],
                ["machine", f"{fmt(data.get('machine', {}).get('cpus'))} CPUs"],
            ],
        )
    ]
    sizes = data["sizes"]
    phases = list(sizes[0]["restore_phases_s"]) if sizes else []
    tables.append(
        (
            [
                "extra keys",
                "write",
                "snapshot (save, status, copy off)",
                "snapshot size",
                "keys in snapshot",
                "restore, end to end",
            ],
            [
                [
                    f"{s['extra_keys']:,}",
                    seconds(s["write_s"]),
                    seconds(s["snapshot_s"]),
                    f"{fmt(s.get('snapshot_mb'))} MB",
                    f"{s.get('snapshot_total_keys', 0):,}",
                    seconds(s["restore_s"]),
                ]
                for s in sizes
            ],
        )
    )
    tables.append(
        (
            ["extra keys", *(f"`{p}`" for p in phases)],
            [
                [f"{s['extra_keys']:,}", *(seconds(s["restore_phases_s"].get(p)) for p in phases)]
                for s in sizes
            ],
        )
    )
    drills = drill_rows(data)
    if drills:
        tables.append((["drill", "passed", "figures"], drills))
    return tables


def _restore_figures(d: dict[str, Any]) -> str:
    rpo = d.get("rpo", {})
    return (
        f"RTO {seconds(d['rto_s'])} (target {seconds(d.get('rto_target_s'))}); "
        f"RPO {fmt(rpo.get('revisions_missed'))} revisions, "
        f"{seconds(rpo.get('seconds_since_backup'))}, lost: {fmt(rpo.get('objects_lost'))}"
    )


def _member_loss_figures(d: dict[str, Any]) -> str:
    return (
        f"new leader in {seconds(d.get('election_s'))}; longest gap between writes "
        f"{seconds(d.get('write_gap_s'))}; member replaced in {seconds(d.get('replace_s'))}"
    )


def _control_plane_loss_figures(d: dict[str, Any]) -> str:
    return (
        f"host {fmt(d.get('stopped_host'))} stopped; VIP moved in "
        f"{seconds(d.get('vip_moved_s'))}; longest API gap {seconds(d['longest_api_gap_s'])} "
        f"(polling every {seconds(d.get('poll_interval_s'))})"
    )


# The drills etcd.json records: its key, the drill's name, what its row says.
DRILLS: list[tuple[str, str, Callable[[dict[str, Any]], str]]] = [
    ("backup_restore_drill", "backup-restore", _restore_figures),
    ("member_loss_drill", "member-loss", _member_loss_figures),
    ("control_plane_loss_drill", "control-plane-loss", _control_plane_loss_figures),
]


def drill_rows(data: dict[str, Any]) -> list[list[str]]:
    return [
        [f"`{name}`", fmt(data[key].get("passed")), figures(data[key])]
        for key, name, figures in DRILLS
        if data.get(key)
    ]


def bundle_tables(data: dict[str, Any]) -> list[Table]:
    machine = data.get("machine", {})
    rows = [["Kubernetes", fmt(data["kubernetes"])]]
    for key, name in (("cold", "cold build (empty Go caches)"), ("warm_rebuild", "warm rebuild")):
        build = data.get(key)
        if build:
            phases = ", ".join(f"{p} {v:.1f} s" for p, v in build.get("phases", {}).items())
            rows.append([name, f"{seconds(build['seconds'])} ({phases})"])
    rows += [
        ["second `bundle build` (complete bundle)", seconds(data.get("noop_seconds"))],
        ["`bundle verify`", seconds(data.get("verify_seconds"))],
        ["size", size(data["size_bytes"])],
        *[[f"size: {kind}", size(n)] for kind, n in data.get("size_by_kind", {}).items()],
        ["machine", f"{fmt(machine.get('cpus'))} CPUs, {fmt(machine.get('go'))}"],
    ]
    artifacts = [[f"`{name}`", size(n)] for name, n in data.get("artifacts", {}).items()]
    tables: list[Table] = [(["what", "measured"], rows)]
    if artifacts:
        tables.append((["artifact", "size"], artifacts))
    parts = [
        [
            f"`{name}`",
            seconds(part["rebuild_seconds"]),
            size(part["size_bytes"]),
            ", ".join(f"`{a}` {size(n)}" for a, n in part.get("artifacts", {}).items()),
        ]
        for name, part in data.get("parts", {}).items()
    ]
    if parts:
        tables.append((["optional part", "rebuild (Go caches warm)", "size", "artifacts"], parts))
    return tables


def conformance_tables(data: dict[str, Any]) -> list[Table]:
    runs, failures = [], []
    for subset, run in data.items():
        summary = run.get("summary") or {}
        runs.append(
            [
                subset,
                f"{fmt(run['lab'])} ({fmt(run['nodes'])} nodes, {fmt(run['kubernetes'])})",
                f"{fmt(run['recorded_at'])}, {fmt(run['commit'])}",
                seconds(run["seconds"]),
                fmt(run["parallel"]),
                f"{fmt(run['specs']['will_run'])} of {fmt(run['specs']['in_suite'])}",
                fmt(summary.get("passed")),
                fmt(len(summary.get("failed", []))),
                fmt(len(summary.get("skipped", {}))),
                fmt(len(run["default_skips"])),
                fmt(run["goal_met"]),
            ]
        )
        failures += [[subset, f["name"], f["first_line"]] for f in summary.get("failed", [])]
    header = ["focus", "lab", "recorded", "time", "processes", "specs run", "passed"]
    header += ["failed", "skipped while running", "default skips", "goal met"]
    tables: list[Table] = [(header, runs)]
    if failures:
        tables.append((["focus", "failed spec", "first line"], failures))
    return tables


def test_run_tables(data: dict[str, Any]) -> list[Table]:
    """A scripts/test run stage by stage: each stage's end, time, exit and test counts
    (a record from before per-stage counts has its counts for the whole run only)."""
    keys = ("passed", "failures", "errors", "skipped")
    rows = []
    for stage in data["stages"]:
        tests = stage.get("tests") or {}
        rows.append(
            [
                f"`{stage['stage']}`",
                fmt(stage.get("finished_at")),
                seconds(stage["seconds"]),
                fmt(stage["exit"]),
                *(fmt(tests[key]) if tests else "" for key in keys),
            ]
        )
    rows += [[f"`{name}`", "not run", "", "", "", "", "", ""] for name in data.get("not_run", [])]
    header = ["stage", "finished", "time", "exit", "passed", "failed", "errors", "skipped"]
    totals = data["tests"]
    summary = [
        ["began", fmt(data.get("began_at"))],
        ["every planned stage passed", fmt(data["passed"])],
        ["stage time, summed", seconds(data["total_s"])],
        ["tests passed", f"{fmt(totals['passed'])} of {fmt(totals['tests'])}"],
    ]
    return [(["field", "value"], summary), (header, rows)]


RENDERERS: dict[str, Callable[[dict[str, Any]], list[Table]]] = {
    "hosts": hosts_tables,
    "provision": provision_tables,
    "verify": verify_tables,
    "etcd": etcd_tables,
    "bundle": bundle_tables,
    "conformance": conformance_tables,
    "test-full": test_run_tables,
}


def flat_tables(data: Any) -> list[Table]:
    return [(["field", "value"], [[f"`{k}`", fmt(v)] for k, v in flatten(data)])]


def writer_of(results_file: Path, benchmarks: Path = BENCHMARKS) -> str | None:
    """The benchmark script that names this results file, if one does."""
    for script in sorted(benchmarks.glob("*.py")):
        if script.name != Path(__file__).name and f'"{results_file.name}"' in script.read_text():
            return f"benchmarks/{script.name}"
    return None


def section(path: Path) -> str:
    data = json.loads(path.read_text(encoding="utf-8"))
    lines = [f"## {path.stem}", "", f"From `benchmarks/results/{path.name}`"]
    writer = writer_of(path)
    if writer:
        lines[-1] += f", written by `{writer}`"
    lines[-1] += "."
    if isinstance(data, dict):
        when = [f"{key} {data[key]}" for key in WHEN_KEYS if key in data]
        nested = any(path.rsplit(".", 1)[-1] in WHEN_KEYS for path, _ in flatten(data))
        if when:
            lines.append(f"Recorded: {', '.join(when)}.")
        else:
            lines.append("Recorded: per entry, below." if nested else "Recorded: not in the file.")
    lines.append("")
    render = RENDERERS.get(path.stem)
    try:
        tables = render(data) if render and isinstance(data, dict) else flat_tables(data)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        tables = flat_tables(data)
        lines += ["(Its shape is not the one this report knows: every value, as recorded.)", ""]
    for header, rows in tables:
        lines += [table(header, rows), ""]
    return "\n".join(lines)


def render(results_dir: Path = RESULTS_DIR) -> str:
    files = sorted(results_dir.glob("*.json"))
    head = [
        "# Measurements",
        "",
        "<!-- Generated by benchmarks/report.py from benchmarks/results/*.json; do not edit. -->",
        "",
        "Generated by `benchmarks/report.py` from the results files the benchmark scripts",
        "write (`benchmarks/*.py`). To change a figure, rerun its benchmark and then",
        "`.venv/bin/python benchmarks/report.py`; never type one here. What each figure",
        "means is in the docs that link here.",
        "",
        "Files: " + ", ".join(f"[`{p.name}`](#{p.stem})" for p in files) + ".",
        "",
    ]
    body = "\n".join(section(p) for p in files)
    return "\n".join(head) + "\n" + body.rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS_DIR)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    if not any(args.results.glob("*.json")):
        print(f"no results files in {args.results}", file=sys.stderr)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(args.results), encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
