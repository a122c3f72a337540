"""Progress lines for long operations: elapsed time, phase, host, message."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Progress:
    """Prints ``[  12.3s] phase    host  message`` lines and records phase durations."""

    stream: TextIO = field(default_factory=lambda: sys.stderr)
    quiet: bool = False
    started: float = field(default_factory=time.monotonic)
    durations: dict[str, float] = field(default_factory=dict)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def say(self, phase: str, message: str, host: str = "") -> None:
        if self.quiet:
            return
        where = f"{host:<12} " if host else ""
        print(f"[{self.elapsed():7.1f}s] {phase:<10} {where}{message}", file=self.stream)
        self.stream.flush()

    @contextmanager
    def phase(self, name: str, message: str = "") -> Iterator[None]:
        begun = time.monotonic()
        self.say(name, message or "started")
        try:
            yield
        finally:
            took = time.monotonic() - begun
            self.durations[name] = self.durations.get(name, 0.0) + took
        self.say(name, f"done in {took:.1f}s")


SILENT = Progress(quiet=True)
