"""A `k8slab` command run as its own process and killed (SIGKILL, its whole process group)
at a chosen point of its output: how the e2e tests prove that a run cut short anywhere is
finished by running it again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest


def killed_when(
    args: list[str], seen_line: Callable[[str], bool], timeout_s: float, then_s: float = 0
) -> list[str]:
    """Run ``k8slab ARGS``, read its output until a line satisfies ``seen_line`` (within
    ``timeout_s``), wait ``then_s`` more, kill it; return the lines it printed. Fails the
    test if the command ends first."""
    run = subprocess.Popen(
        [str(Path(sys.executable).parent / "k8slab"), *args],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert run.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    try:
        for line in run.stdout:
            seen.append(line)
            if seen_line(line):
                break
            assert time.monotonic() < deadline, f"not seen within {timeout_s:.0f}s:\n" + "".join(
                seen
            )
        else:
            pytest.fail(f"`k8slab {' '.join(args)}` ended first:\n" + "".join(seen))
        time.sleep(then_s)
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
    return seen
