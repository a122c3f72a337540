"""The CLI: exit statuses, one-line errors, and nothing created from an invalid spec."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.helpers.lab_specs import INVALID, mutated, write_spec
from toolkit.cli import main


def test_validate_a_shipped_lab() -> None:
    result = CliRunner().invoke(main, ["validate", "ha-stacked"])
    assert result.exit_code == 0, result.output
    assert (
        "valid (3 control planes, 0 etcd hosts, 2 workers, stacked etcd, docker)" in result.output
    )


def test_labs_lists_the_shipped_labs(isolated_state: Path) -> None:
    result = CliRunner().invoke(main, ["labs"])
    assert result.exit_code == 0
    for lab in ("single", "ha-stacked", "ha-external"):
        assert lab in result.output


def test_unknown_lab_is_one_line_without_traceback() -> None:
    result = CliRunner().invoke(main, ["validate", "no-such-lab"])
    assert result.exit_code == 1
    assert result.output.startswith("error: no lab named 'no-such-lab'")
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback() -> None:
    result = CliRunner().invoke(main, ["--debug", "validate", "no-such-lab"])
    assert result.exit_code == 1
    assert result.exception is not None


@pytest.mark.parametrize("command", ["validate", "up", "status", "ssh"])
@pytest.mark.parametrize(
    ("change", "expected"), [(c, e) for _, c, e in INVALID], ids=[i for i, _, _ in INVALID]
)
def test_invalid_spec_stops_every_command_before_anything_is_created(
    tmp_path: Path, isolated_state: Path, command: str, change: object, expected: str
) -> None:
    path = write_spec(tmp_path, mutated(change))  # type: ignore[arg-type]
    argv = [command, str(path)] + (["cp1"] if command == "ssh" else [])
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 1
    assert expected in result.output
    assert not isolated_state.exists(), "an invalid spec must not create any state"
