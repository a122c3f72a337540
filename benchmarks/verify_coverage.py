"""Which faults make each verify check fail, and which checks no fault turns red.

The faults are those of tests/e2e/test_verify_faults.py; the checks those of a verify
run on the lab (its JUnit XML: by default the newest under the lab's reports). A fault's
expected set is what it must turn red; the fault module asserts it on a real lab, so a
check a passing fault module expects is proven able to fail. Evaluated here on paper:
the VIP on the first control plane, etcd's leader the first member, CoreDNS's placement
unknown (the checks that depend on it are left out, never claimed).

    .venv/bin/python benchmarks/verify_coverage.py \\
        [--lab ha-stacked] [--junit PATH | --collect] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from toolkit.lab.spec import Lab, load_lab  # noqa: E402
from toolkit.verify.report import parse_junit  # noqa: E402

CHECK_RE = re.compile(r"^(?P<family>[^\[]+)(?:\[(?P<subject>.*)\])?$")


@dataclass(frozen=True)
class FaultEffect:
    """What one fault must turn red, and what it may."""

    expected: frozenset[str]
    may_fail: frozenset[str] = frozenset()


@dataclass
class Coverage:
    """Per check id and per family (a check with its parametrization left out): the
    faults required to turn it red, and those allowed to."""

    checks: list[str]
    by_check: dict[str, list[str]] = field(default_factory=dict)
    may_by_check: dict[str, list[str]] = field(default_factory=dict)
    # Expected by a fault, but not among the run's checks: a misspelt or stale name.
    unknown: dict[str, list[str]] = field(default_factory=dict)

    @property
    def families(self) -> list[str]:
        return list(dict.fromkeys(family(c) for c in self.checks))

    def by_family(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {f: [] for f in self.families}
        for check in self.checks:
            for fault in self.by_check.get(check, []):
                if fault not in found[family(check)]:
                    found[family(check)].append(fault)
        return found

    def uncovered_checks(self) -> list[str]:
        return [c for c in self.checks if not self.by_check.get(c)]

    def uncovered_families(self) -> list[str]:
        return [f for f, faults in self.by_family().items() if not faults]

    def summary(self) -> dict[str, Any]:
        families = self.by_family()
        return {
            "checks": len(self.checks),
            "checks_proven_sensitive": len(self.checks) - len(self.uncovered_checks()),
            "families": len(families),
            "families_proven_sensitive": len(families) - len(self.uncovered_families()),
            "uncovered_families": self.uncovered_families(),
            "uncovered_checks": self.uncovered_checks(),
            "expected_but_not_in_run": self.unknown,
        }


def family(check_id: str) -> str:
    """``group/check[subject]`` -> ``group/check``."""
    match = CHECK_RE.match(check_id)
    return match.group("family") if match else check_id


def check_ids(junit_xml: str, include_skipped: bool = False) -> list[str]:
    """The check ids (``group/check[host]``, as the fault module names them) of a verify
    run's JUnit XML; skipped checks (they cannot fail on that lab) left out by default."""
    return [
        f"{r.group}/{r.check}[{r.host}]"
        for r in parse_junit(junit_xml)
        if include_skipped or r.outcome != "skipped"
    ]


def coverage(checks: Sequence[str], faults: Mapping[str, FaultEffect]) -> Coverage:
    """For each check, the faults that must make it fail (and those that may)."""
    result = Coverage(list(dict.fromkeys(checks)))
    known = set(result.checks)
    for name, effect in faults.items():
        for check in sorted(effect.expected):
            if check in known:
                result.by_check.setdefault(check, []).append(name)
            else:
                result.unknown.setdefault(check, []).append(name)
        for check in sorted(effect.may_fail - effect.expected):
            if check in known:
                result.may_by_check.setdefault(check, []).append(name)
    return result


def render_markdown(result: Coverage) -> str:
    summary = result.summary()
    lines = [
        f"Checks proven sensitive: {summary['checks_proven_sensitive']} of "
        f"{summary['checks']} (families: {summary['families_proven_sensitive']} of "
        f"{summary['families']}).",
        "",
        "| check | faults that turn it red | faults that may |",
        "| --- | --- | --- |",
    ]
    for check in result.checks:
        must = ", ".join(result.by_check.get(check, [])) or "**none**"
        may = ", ".join(result.may_by_check.get(check, []))
        lines.append(f"| `{check}` | {must} | {may} |")
    if result.unknown:
        lines += ["", "Expected by a fault but not in the run:", ""]
        lines += [f"- `{c}`: {', '.join(f)}" for c, f in sorted(result.unknown.items())]
    return "\n".join(lines) + "\n"


def paper_effects(lab: Lab) -> dict[str, FaultEffect]:
    """The fault module's faults that apply to ``lab``, evaluated without the lab."""
    from tests.e2e import test_verify_faults as module
    from toolkit.verify.cluster import Cluster
    from toolkit.verify.run import layout_nodes
    from toolkit.verify.workload import Layout

    class PaperScene(module.Scene):
        def coredns_nodes(self) -> set[str]:
            return set()  # unknown: claim nothing that depends on it

        def vip_holders(self) -> list[str]:
            return [self.lab.control_planes[0].name]

        def etcd_leader(self) -> str:
            return self.lab.etcd_members[0].name

    a, b = layout_nodes(lab)
    scene = PaperScene(lab, cast(Cluster, None), Layout(a, b, "", False, "on paper"))
    effects = {}
    for fault in module.FAULTS:
        if fault.unfit(lab):
            continue
        effects[fault.name] = FaultEffect(
            frozenset(fault.expected(scene)), frozenset(fault.may_fail(scene))
        )
    return effects


class _Collector:
    """A pytest plugin that hands the suites a lab without hosts and keeps the items."""

    def __init__(self, lab: Lab) -> None:
        from toolkit.verify.run import CONTEXT_KEY

        class PaperCluster:
            kube_nodes = lab.control_planes + lab.workers

        class PaperContext:
            pass

        self.context = PaperContext()
        self.context.lab = lab  # type: ignore[attr-defined]
        self.context.cluster = PaperCluster()  # type: ignore[attr-defined]
        self.key = CONTEXT_KEY
        self.ids: list[str] = []

    def pytest_configure(self, config: Any) -> None:
        config.stash[self.key] = self.context

    def pytest_collection_finish(self, session: Any) -> None:
        from toolkit.verify.report import group_name

        for item in session.items:
            name = item.name.removeprefix("test_")
            if "[" not in name:
                name += "[-]"
            self.ids.append(f"{group_name(item.module.__name__)}/{name}")


def paper_check_ids(lab: Lab) -> list[str]:
    """The check ids a verify run of ``lab`` would report, from collecting the suites
    (parametrized by the spec's nodes) without running them: checks that skip at run
    time (SCTP where the kernel lacks it, HA checks on one node) included."""
    import contextlib
    import io
    import os

    import pytest

    from toolkit.verify.run import GROUPS, pytest_args

    collector = _Collector(lab)
    # verify's own arguments, so that the same checks are collected; no report is written.
    args = [*pytest_args(GROUPS, Path(os.devnull), lab.name), "--collect-only"]
    with contextlib.redirect_stdout(io.StringIO()):
        pytest.main(args, plugins=[collector])
    return collector.ids


def newest_junit(lab: Lab) -> Path:
    from toolkit.lab.state import LabState

    reports = sorted((LabState.of(lab.name).root / "reports").glob("verify-*.xml"))
    if not reports:
        raise SystemExit(f"no verify report of {lab.name}: run k8slab verify {lab.name} first")
    return reports[-1]


def lab_coverage(lab: Lab, junit: Path | None) -> Coverage:
    """Of a verify run's checks (``junit``), or of the suites collected for the spec."""
    checks = check_ids(junit.read_text(encoding="utf-8")) if junit else paper_check_ids(lab)
    return coverage(checks, paper_effects(lab))


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", default="ha-stacked", help="a lab name or a lab.yml path")
    parser.add_argument("--junit", type=Path, help="a verify run's JUnit XML")
    parser.add_argument(
        "--collect", action="store_true", help="the suites' checks for the spec, no run needed"
    )
    parser.add_argument("--json", action="store_true", help="the summary as JSON")
    args = parser.parse_args(list(argv) if argv is not None else None)
    lab = load_lab(args.lab)
    result = lab_coverage(lab, None if args.collect else args.junit or newest_junit(lab))
    print(json.dumps(result.summary(), indent=2) if args.json else render_markdown(result))
    return 0 if not result.unknown else 1


if __name__ == "__main__":
    raise SystemExit(main())
