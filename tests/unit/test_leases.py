from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from toolkit import leases

NOW = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)
PLANES = {"cp1", "cp2"}


def lease(holder: str, renewed: datetime | None, duration: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"holderIdentity": holder}
    if renewed:
        spec["renewTime"] = renewed.isoformat().replace("+00:00", ".123456Z")
    if duration:
        spec["leaseDurationSeconds"] = duration
    return {"spec": spec}


def problems(found: dict[str, Any], since: datetime | None = None) -> list[str]:
    start = since.timestamp() if since else 0.0
    return leases.problems(found, PLANES, NOW.timestamp(), start)


def test_a_fresh_lease_held_on_a_control_plane_has_a_leader() -> None:
    assert problems(lease("cp1_0f2c-uuid", NOW - timedelta(seconds=3))) == []


def test_a_holder_that_is_not_a_control_plane_is_named() -> None:
    assert problems(lease("w1_0f2c", NOW - timedelta(seconds=3))) == [
        "held by 'w1_0f2c', not by a control plane"
    ]


def test_a_lease_is_stale_after_its_duration_and_the_slack() -> None:
    assert problems(lease("cp1_0f2c", NOW - timedelta(seconds=25))) == []
    assert problems(lease("cp1_0f2c", NOW - timedelta(seconds=60))) == [
        "last renewed 60 s ago (a leader renews within 25 s)"
    ]
    assert problems(lease("cp1_0f2c", NOW - timedelta(seconds=60), duration=60)) == []


def test_an_empty_lease_has_neither_holder_nor_renewal() -> None:
    assert problems(lease("", None)) == [
        "held by '', not by a control plane",
        "never renewed",
    ]


def test_a_renewal_before_since_does_not_count() -> None:
    restarted = NOW - timedelta(seconds=5)
    assert problems(lease("cp1_0f2c", NOW - timedelta(seconds=8)), since=restarted) == [
        "not renewed since 5 s ago"
    ]
    assert problems(lease("cp1_0f2c", NOW - timedelta(seconds=1)), since=restarted) == []
