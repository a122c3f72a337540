"""Running external commands (docker, vagrant, debootstrap) with errors that say what failed."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from toolkit.errors import CommandError, K8slabError


def require(program: str, install_hint: str) -> str:
    """The full path of ``program``, or an error saying how to install it."""
    found = shutil.which(program)
    if not found:
        raise K8slabError(f"`{program}` is not installed; {install_hint}")
    return found


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    input_text: str | None = None,
    log: Path | None = None,
    check: bool = True,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv``; stdout and stderr are captured together (and appended to ``log``)."""
    full_env = {**os.environ, **env} if env else None
    try:
        result = subprocess.run(
            list(argv),
            env=full_env,
            cwd=cwd,
            input=input_text,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise K8slabError(f"`{argv[0]}` is not installed; run `k8slab doctor`") from None
    except subprocess.TimeoutExpired as exc:
        raise CommandError(
            list(argv), -1, f"timed out after {timeout:.0f}s\n{exc.output or ''}"
        ) from None
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as handle:
            handle.write(f"$ {' '.join(argv)}\n{result.stdout}\n[exit {result.returncode}]\n")
    if check and result.returncode != 0:
        raise CommandError(list(argv), result.returncode, result.stdout)
    return result
