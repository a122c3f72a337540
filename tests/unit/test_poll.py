"""The one polling helper: bounded, at least one try, the last state in its error."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest

from toolkit import poll
from toolkit.errors import HostError, K8slabError
from toolkit.poll import PollTimeout, problems_gone, wait_until
from toolkit.verify.cluster import eventually

T = TypeVar("T")


class FakeTime:
    """A clock that moves only when the code under test sleeps (or a probe takes time)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(poll, "time", fake)
    return fake


def answers(*values: T) -> Callable[[], T]:
    """A probe giving these values in turn, then the last one for ever."""
    queue = list(values)

    def probe() -> T:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return probe


def test_a_condition_already_true_is_asked_once_without_sleeping(clock: FakeTime) -> None:
    outcome = poll.poll(lambda: "up", lambda v: v == "up", timeout_s=30, interval_s=2)
    assert (outcome.ok, outcome.value, outcome.attempts, outcome.elapsed) == (True, "up", 1, 0)
    assert clock.sleeps == []


def test_polling_ends_when_the_condition_comes_true(clock: FakeTime) -> None:
    elapsed = wait_until(answers(False, False, True), timeout_s=30, interval_s=2, what="x")
    assert elapsed == 4.0
    assert clock.sleeps == [2, 2]


def test_polling_is_bounded_and_never_sleeps_past_the_deadline(clock: FakeTime) -> None:
    outcome = poll.poll(lambda: ["cp2 not Ready"], problems_gone, timeout_s=10, interval_s=3)
    assert not outcome.ok and outcome.value == ["cp2 not Ready"]
    assert outcome.attempts == 4 and clock.sleeps == [3, 3, 3]  # a 4th sleep ends at 12 > 10
    assert outcome.elapsed <= 10


def test_the_timeout_error_names_what_and_the_last_state_seen(clock: FakeTime) -> None:
    states = answers(["cp2 not Ready", "cp3 not Ready"], ["cp3 not Ready"])
    with pytest.raises(PollTimeout) as raised:
        wait_until(states, problems_gone, timeout_s=9, interval_s=3, what="lab dev: nodes Ready")
    assert isinstance(raised.value, K8slabError)
    assert raised.value.last == "cp3 not Ready"
    assert str(raised.value) == "lab dev: nodes Ready: not within 9s (last seen: cp3 not Ready)"


def test_errors_it_is_told_to_expect_are_not_yet_and_reported(clock: FakeTime) -> None:
    calls: list[int] = []

    def flaky() -> bool:
        calls.append(1)
        raise HostError("cp1: cannot run over SSH: Connection refused")

    with pytest.raises(PollTimeout, match="last seen: cp1: cannot run over SSH"):
        wait_until(flaky, timeout_s=5, interval_s=1, what="x", retry_on=(HostError,))
    assert len(calls) == 6


def test_other_errors_stop_the_wait_at_once(clock: FakeTime) -> None:
    def broken() -> bool:
        raise ValueError("a bug, not a hiccup")

    with pytest.raises(ValueError):
        wait_until(broken, timeout_s=60, interval_s=1, what="x", retry_on=(HostError,))
    assert clock.sleeps == []


def test_a_long_state_is_cut_in_the_message() -> None:
    text = poll.describe([f"pod-{n}" for n in range(100)])
    assert text.startswith("(100 in all) ") and text.endswith("pod-99")
    assert len(text) < 200
    assert poll.describe([]) == "nothing"


def test_verify_eventually_reports_rather_than_raises(clock: FakeTime) -> None:
    assert eventually(answers(1, 2, 3), lambda n: n == 3, timeout_s=10, interval_s=1) == (True, 3)
    assert eventually(lambda: 0, bool, timeout_s=3, interval_s=1) == (False, 0)
