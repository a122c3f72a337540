"""Bounded polling: ask until the answer is right or the time is up, never a fixed sleep.

``poll`` is the primitive (it reports, it does not raise: verify's ``eventually`` is built
on it); ``wait_until`` is what a step of a procedure calls: the seconds it waited, or a
:class:`PollTimeout` that carries the last state it saw.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from toolkit.errors import K8slabError

T = TypeVar("T")


class PollTimeout(K8slabError):
    """A condition did not come true in time; ``last`` is what was seen at the end."""

    def __init__(self, what: str, timeout_s: float, last: str) -> None:
        super().__init__(f"{what}: not within {timeout_s:.0f}s (last seen: {last})")
        self.what = what
        self.timeout_s = timeout_s
        self.last = last


@dataclass(frozen=True)
class Polled(Generic[T]):
    """How a poll ended: accepted or not, the last value, the seconds it took."""

    ok: bool
    value: T
    elapsed: float
    attempts: int


def poll(
    probe: Callable[[], T], accept: Callable[[T], bool], timeout_s: float, interval_s: float = 2
) -> Polled[T]:
    """Call ``probe`` until ``accept`` says yes or ``timeout_s`` has passed.

    The probe runs at least once, and never starts a sleep that would end past the
    deadline.
    """
    started = time.monotonic()
    deadline = started + timeout_s
    attempts = 0
    while True:
        value = probe()
        attempts += 1
        if accept(value):
            return Polled(True, value, time.monotonic() - started, attempts)
        if time.monotonic() + interval_s > deadline:
            return Polled(False, value, time.monotonic() - started, attempts)
        time.sleep(interval_s)


DESCRIBE_ITEMS = 10


def describe(value: object) -> str:
    """A one-line account of a probe's value for an error message: an error's text, the
    last items of a list (which stays short), else ``str``."""
    if isinstance(value, BaseException):
        return str(value) or type(value).__name__
    if isinstance(value, list | tuple):
        shown = "; ".join(map(str, value[-DESCRIBE_ITEMS:])) or "nothing"
        return f"({len(value)} in all) {shown}" if len(value) > DESCRIBE_ITEMS else shown
    return str(value)


def wait_until(
    probe: Callable[[], T],
    accept: Callable[[T], bool] = bool,
    *,
    timeout_s: float,
    interval_s: float = 2,
    what: str,
    retry_on: tuple[type[Exception], ...] = (),
) -> float:
    """Wait (bounded) until ``accept(probe())``; return the seconds waited.

    An exception of ``retry_on`` raised by the probe counts as "not yet" (an API or SSH
    hiccup during a recovery); on timeout, :class:`PollTimeout` names ``what`` and the
    last value or error seen.
    """

    def guarded() -> T | Exception:
        try:
            return probe()
        except retry_on as exc:
            return exc

    def accepted(value: T | Exception) -> bool:
        return not isinstance(value, Exception) and accept(value)

    outcome = poll(guarded, accepted, timeout_s, interval_s)
    if not outcome.ok:
        raise PollTimeout(what, timeout_s, describe(outcome.value))
    return outcome.elapsed


def problems_gone(problems: list[str]) -> bool:
    """``accept`` for probes that list what is still wrong: done when nothing is."""
    return not problems
