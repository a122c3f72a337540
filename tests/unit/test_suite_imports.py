"""The verify suites are pytest modules run by their own session (toolkit.verify.run), with
markers their conftest registers: a module outside them that imports one makes every pytest
session that collects it evaluate those markers, and --strict-markers fails that collection."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SUITES = REPO / "toolkit" / "verify" / "suites"
PYTHON_FILES = sorted(
    path
    for root in ("toolkit", "tests", "benchmarks", "scripts")
    for path in (REPO / root).rglob("*.py")
    if SUITES not in path.parents
)


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


@pytest.mark.parametrize("path", PYTHON_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_module_outside_the_suites_imports_one(path: Path) -> None:
    suites = {m for m in imported_modules(path) if m.startswith("toolkit.verify.suites")}
    assert not suites, (
        f"{path.relative_to(REPO)} imports {sorted(suites)}; move what it needs out of the suite"
    )
