"""benchmarks/provision.py --addons: the lab's copy with every add-on is a valid spec of the
same lab, the scaling copies of `single` leave the add-ons out, and the report renders
what the add-ons cost."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.modules import load_file
from toolkit.lab import addons
from toolkit.lab.spec import load_lab

REPO = Path(__file__).resolve().parents[2]
provision = load_file("benchmark_provision", REPO / "benchmarks" / "provision.py")
report = load_file("benchmark_report_addons", REPO / "benchmarks" / "report.py")


def test_the_add_ons_copy_of_a_lab_is_valid_and_keeps_its_name(tmp_path: Path) -> None:
    lab = load_lab(provision.addons_spec("ha-stacked", tmp_path))
    assert lab.name == "ha-stacked"
    assert lab.addons == addons.NAMES
    assert all(w.memory_mb >= provision.ADDONS_WORKER_MB for w in lab.workers)


def test_the_scaling_copies_of_single_measure_workers_alone(tmp_path: Path) -> None:
    lab = load_lab(provision.scale_spec(2, tmp_path))
    assert lab.addons == () and len(lab.workers) == 2


def test_the_report_shows_what_the_add_ons_cost() -> None:
    run = {"up_to_ready_s": 300.0, "peak_machine_memory_mib": 6000}
    measured = {
        "ha-stacked": {
            "recorded_at": "2026-11-28T23:00:00Z",
            "without": run,
            "with": {**run, "up_to_ready_s": 350.0},
            "extra_up_to_ready_s": 50.0,
            "extra_peak_machine_memory_mib": 1024,
            "addons_phase_s": 41.0,
        }
    }
    ((header, rows),) = report.addons_tables(measured)
    assert header[0] == "lab with every add-on"
    assert rows[0][0] == "`ha-stacked`" and rows[0][-1] == "1.0 GiB"
    assert report.addons_tables({}) == []
