"""Compiling a C program from its release tarball, unpatched, configured by its own
defaults (``make defconfig``) with a few options set on top: a :class:`KconfigBuild`.

The tarball is checked against the release's sha256 before it is unpacked. The build date
such a program prints is the release's (``SOURCE_DATE_EPOCH``: its top folder's time in
the tarball), so two builds on one machine are alike. After the build, every option asked
for must still be in ``.config``: a dependency Kconfig resolved otherwise fails the build.
"""

from __future__ import annotations

import os
import re
import shutil
import tarfile
import tempfile
from pathlib import Path

from toolkit.bundle import upstream
from toolkit.bundle.recipe import KconfigBuild
from toolkit.bundle.tools import run
from toolkit.errors import BundleError

_OPTION = re.compile(r"(?:# )?(CONFIG_[A-Za-z0-9_]+)(?:=.+| is not set)")


def option_name(option: str) -> str:
    """``CONFIG_STATIC`` for ``CONFIG_STATIC=y`` or ``# CONFIG_STATIC is not set``."""
    match = _OPTION.fullmatch(option)
    if not match:
        raise BundleError(f"not a Kconfig .config line: {option!r}")
    return match[1]


def set_options(config: str, options: tuple[str, ...]) -> str:
    """``config`` (a ``.config``) with each of ``options`` in place of the line it had for
    that option, or appended if it had none."""
    lines = config.splitlines()
    for option in options:
        name = option_name(option)
        found = [i for i, line in enumerate(lines) if _name_of(line) == name]
        if not found:
            lines.append(option)
            continue
        lines[found[0]] = option
        for extra in reversed(found[1:]):
            del lines[extra]
    return "\n".join(lines) + "\n"


def _name_of(line: str) -> str:
    match = _OPTION.fullmatch(line)
    return match[1] if match else ""


def missing_options(config: str, options: tuple[str, ...]) -> list[str]:
    """The ``options`` that are not lines of ``config``."""
    present = set(config.splitlines())
    return [option for option in options if option not in present]


def unpack(tarball: Path, into: Path) -> tuple[Path, int]:
    """Unpack a release tarball of one top folder into ``into``; that folder and its time."""
    with tarfile.open(tarball) as tar:
        tops = [m for m in tar.getmembers() if m.isdir() and "/" not in m.name.strip("/")]
        if len(tops) != 1:
            raise BundleError(f"{tarball.name} has no single top folder")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(into, filter="data")
        else:  # Python before 3.11.4: the sha256 was checked, the content is the release's
            tar.extractall(into)
    return into / tops[0].name.strip("/"), int(tops[0].mtime)


def find_make(specs: list[KconfigBuild]) -> str:
    """The make that builds ``specs``, or an error naming them (a build checks this before
    anything else, not after its Go builds)."""
    make = shutil.which("make")
    if not make:
        names = ", ".join(f"{spec.name} {spec.version}" for spec in specs)
        raise BundleError(f"no make to build {names} from source: `apt-get install make`")
    return make


def build(spec: KconfigBuild, out: Path, log: Path) -> Path:
    """Download, check, configure and compile ``spec``; the program, as ``out/<name>``."""
    make = find_make([spec])
    with tempfile.TemporaryDirectory(prefix=f"k8slab-{spec.name}-") as tmp:
        tarball = Path(tmp) / spec.url.rsplit("/", 1)[-1]
        upstream.fetch_pinned(spec.url, spec.sha256, tarball, f"{spec.name} {spec.version}'s")
        source, epoch = unpack(tarball, Path(tmp))
        env = {"SOURCE_DATE_EPOCH": str(epoch)}
        run([make, "defconfig"], cwd=source, env=env, log=log)
        config = source / ".config"
        config.write_text(set_options(config.read_text(), spec.options))
        # The caller's MAKEFLAGS (-j1 on a shared machine) win; else every CPU.
        jobs = [] if "MAKEFLAGS" in os.environ else [f"-j{os.cpu_count() or 1}"]
        run([make, *jobs, spec.name], cwd=source, env=env, log=log)
        missing = missing_options(config.read_text(), spec.options)
        if missing:
            raise BundleError(
                f"{spec.name} {spec.version}: Kconfig did not keep {', '.join(missing)}"
            )
        out.mkdir(parents=True, exist_ok=True)
        target = out / spec.name
        shutil.copyfile(source / spec.name, target)
    target.chmod(0o755)
    return target
