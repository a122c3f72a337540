"""The external programs a bundle build needs, found before any work starts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import BundleError, CommandError

GO_FALLBACK = Path("/usr/local/go/bin/go")
# The oldest Go that builds every pinned module (k8s.io/kubernetes v1.34 says go 1.24.0).
GO_MINIMUM = (1, 24)


def run(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
) -> str:
    """Run ``argv`` and return its combined output; a failure raises with its tail. Its
    input is empty, never the terminal: a build step that would ask a question fails."""
    try:
        result = subprocess.run(
            list(argv),
            cwd=cwd,
            env={**os.environ, **env} if env else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        raise BundleError(f"`{argv[0]}` is not installed") from None
    if log is not None:
        with log.open("a", encoding="utf-8") as handle:
            handle.write(f"$ {' '.join(argv)}\n{result.stdout}[exit {result.returncode}]\n")
    if result.returncode != 0:
        raise CommandError(list(argv), result.returncode, result.stdout)
    return result.stdout


@dataclass(frozen=True)
class Toolchain:
    go: str
    gcc: str
    docker: str
    debootstrap: str


def go_version(go: str) -> tuple[int, int] | None:
    """``(1, 26)`` for a go1.26.8 toolchain; None if ``go`` does not run."""
    try:
        out = subprocess.run(
            [go, "env", "GOVERSION"], capture_output=True, text=True, timeout=60, check=True
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    match = re.match(r"go(\d+)\.(\d+)", out.strip())
    return (int(match[1]), int(match[2])) if match else None


def find_go() -> tuple[str | None, str]:
    """The first Go toolchain new enough (``$K8SLAB_GO``, ``go`` on PATH, /usr/local/go),
    or None and what was found instead."""
    candidates = [os.environ.get("K8SLAB_GO"), shutil.which("go"), str(GO_FALLBACK)]
    seen: list[str] = []
    for go in dict.fromkeys(c for c in candidates if c):
        version = go_version(go)
        if version is None:
            continue
        if version >= GO_MINIMUM:
            return go, ""
        seen.append(f"go{version[0]}.{version[1]} at {go}")
    return None, f" (found only {', '.join(seen)})" if seen else ""


def docker_answers(docker: str) -> bool:
    try:
        subprocess.run([docker, "info"], capture_output=True, timeout=30, check=True)
    except (subprocess.SubprocessError, OSError):
        return False
    return True


def preflight() -> Toolchain:
    """Every program the build will call, or one error naming each missing one and its fix.

    Go is needed by both sources: k8slab's own flannel CNI plugin is always compiled.
    """
    problems: list[str] = []
    go, found_instead = find_go()
    if not go:
        problems.append(
            f"no Go toolchain >= {GO_MINIMUM[0]}.{GO_MINIMUM[1]}{found_instead}: install one "
            "and put `go` on PATH (or set K8SLAB_GO)"
        )
    gcc = shutil.which("gcc") or ""
    if not gcc:
        problems.append("no C compiler for the pause image: `apt-get install gcc libc6-dev`")
    debootstrap = shutil.which("debootstrap") or ""
    if not debootstrap:
        problems.append(
            "no debootstrap for the kube-proxy and flannel base: `apt-get install debootstrap`"
        )
    docker = shutil.which("docker") or ""
    if not docker:
        problems.append("no docker client: `apt-get install docker.io`")
    elif not docker_answers(docker):
        problems.append(
            "the docker engine does not answer `docker info`: start it "
            "(`systemctl start docker`, or `dockerd >/var/log/dockerd.log 2>&1 &`)"
        )
    if problems:
        raise BundleError("cannot build a bundle: " + "; ".join(problems))
    return Toolchain(go=go or "", gcc=gcc, docker=docker, debootstrap=debootstrap)
