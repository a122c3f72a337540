"""What this machine has and lacks for running labs, each with the command that fixes it."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from toolkit import paths
from toolkit.shell import run

MIN_FREE_MEMORY_GIB = 6.0
MIN_FREE_DISK_GIB = 20.0
REQUIREMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _program(name: str, package: str, version_argv: list[str]) -> Check:
    path = shutil.which(name)
    if path is None:
        return Check(name, False, "not installed", f"apt-get install -y {package}")
    result = run(version_argv, check=False, timeout=60)
    first = result.stdout.strip().splitlines()[0] if result.stdout.strip() else "?"
    return Check(name, True, f"{path}: {first}")


def _engine() -> Check:
    if shutil.which("docker") is None:
        return Check("docker engine", False, "no docker CLI", "apt-get install -y docker.io")
    result = run(
        ["docker", "info", "--format", "{{.ServerVersion}} {{.CgroupVersion}}"],
        check=False,
        timeout=30,
    )
    if result.returncode != 0:
        return Check(
            "docker engine",
            False,
            "installed but no engine answers",
            "systemctl start docker (or: nohup dockerd >/var/log/dockerd.log 2>&1 &)",
        )
    version, _, cgroup = result.stdout.strip().partition(" ")
    return Check("docker engine", True, f"engine {version}, cgroup v{cgroup or '?'}")


def _vagrant_plugin(plugin: str, package: str, used_for: str) -> Check:
    name = f"vagrant plugin: {plugin}"
    if shutil.which("vagrant") is None:
        return Check(name, False, "no vagrant", f"apt-get install -y vagrant {package}")
    result = run(["vagrant", "plugin", "list"], check=False, timeout=60)
    for line in result.stdout.splitlines():
        if line.split(" ", 1)[0] == plugin:
            return Check(name, True, line.strip())
    return Check(name, False, f"not installed ({used_for})", f"apt-get install -y {package}")


def runtime_requirements() -> list[str]:
    """The distributions k8slab's own metadata requires at run time (no extras), so this
    list never drifts from pyproject.toml."""
    try:
        requirements = importlib.metadata.requires("k8slab") or []
    except importlib.metadata.PackageNotFoundError:
        return []
    names = [REQUIREMENT_NAME.match(r) for r in requirements if "extra ==" not in r]
    return [name[0] for name in names if name]


def _python() -> list[Check]:
    checks = []
    for dist in runtime_requirements():
        try:
            checks.append(Check(f"python: {dist}", True, importlib.metadata.version(dist)))
        except importlib.metadata.PackageNotFoundError:
            checks.append(Check(f"python: {dist}", False, "missing", "pip install -e ."))
    return checks


def _at_least(name: str, found: float, minimum: float, detail: str, fix: str) -> Check:
    ok = found >= minimum
    return Check(name, ok, detail, "" if ok else fix)


def _memory() -> Check:
    available_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            available_kib = int(line.split()[1])
    gib = available_kib / 1024 / 1024
    return _at_least(
        "free memory",
        gib,
        MIN_FREE_MEMORY_GIB,
        f"{gib:.1f} GiB available",
        f"free memory: ha-stacked wants {MIN_FREE_MEMORY_GIB:.0f} GiB",
    )


def _disk() -> Check:
    target = paths.cache_dir()
    probe = target if target.exists() else Path.home()
    free = shutil.disk_usage(probe).free / 1024**3
    return _at_least(
        "free disk",
        free,
        MIN_FREE_DISK_GIB,
        f"{free:.0f} GiB free at {probe}",
        f"free disk space: images and bundles want {MIN_FREE_DISK_GIB:.0f} GiB",
    )


def _cgroup() -> Check:
    v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    detail = "v2 (unified)" if v2 else "v1: Kubernetes 1.35+ needs failCgroupV1: false"
    return Check("cgroup", True, detail)


def _root() -> Check:
    ok = os.geteuid() == 0
    return Check(
        "root",
        ok,
        "running as root" if ok else "not root",
        "" if ok else "run as root: the node image build uses debootstrap and chroot",
    )


def run_checks() -> list[Check]:
    return [
        _root(),
        _engine(),
        _program("vagrant", "vagrant", ["vagrant", "--version"]),
        _vagrant_plugin("vagrant-libvirt", "vagrant-libvirt", "labs with provider: libvirt"),
        _program("debootstrap", "debootstrap", ["debootstrap", "--version"]),
        _program("ssh", "openssh-client", ["ssh", "-V"]),
        _program("go", "golang-go", ["go", "version"]),
        *_python(),
        _memory(),
        _disk(),
        _cgroup(),
    ]
