"""Building the bundle's Go commands from their published modules (``--source gomod``)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from toolkit.bundle.part import GoTest
from toolkit.bundle.recipe import GOMOD_DIR, GoBuild
from toolkit.bundle.tools import run
from toolkit.errors import BundleError, CommandError

# As upstream's release builds: static binaries, no local paths, no symbol tables.
BUILD_GOFLAGS = "-mod=readonly -buildvcs=false"


def build_env() -> dict[str, str]:
    """The build's environment: static, the recipe's go.sum only. The caller's own GOFLAGS
    come first and stay (``GOFLAGS=-p=1`` keeps a build to one package at a time on a
    shared machine); the recipe's flags, after them, win where both set one."""
    own = os.environ.get("GOFLAGS", "").strip()
    return {"CGO_ENABLED": "0", "GOFLAGS": f"{own} {BUILD_GOFLAGS}".strip()}


def default_binary_name(package: str) -> str:
    """The file ``go build -o DIR/`` writes for ``package``: its last element, ignoring
    a major-version suffix (``go.etcd.io/etcd/server/v3`` → ``server``)."""
    parts = package.split("/")
    if len(parts) > 1 and re.fullmatch(r"v[0-9]+", parts[-1]):
        return parts[-2]
    return parts[-1]


def download(go: str, build: GoBuild, minor: str, log: Path) -> None:
    """Fetch every module the build needs, so that a network problem shows before compiling."""
    folder = build.module_dir(minor)
    if not (folder / "go.mod").is_file():
        raise BundleError(f"recipe folder {folder} has no go.mod")
    try:
        run([go, "mod", "download"], cwd=folder, env=build_env(), log=log)
    except CommandError as exc:
        raise BundleError(
            f"cannot download the Go modules for {build.component} {build.version} "
            f"through the Go module proxy (GOPROXY): {exc}. "
            "Check the network, or set GOPROXY to a reachable proxy"
        ) from None


def module_source(go: str, folder: Path, target: str, log: Path) -> Path:
    """The folder of module ``target`` (``path@version``) in the module cache, downloaded
    through the recipe module in ``folder`` (so by its go.sum) if it is not there yet."""
    try:
        out = run([go, "mod", "download", "-json", target], cwd=folder, env=build_env(), log=log)
    except CommandError as exc:
        raise BundleError(f"cannot find {target}'s source: {exc}") from None
    return Path(json.loads(out)["Dir"])


def compile_build(go: str, build: GoBuild, minor: str, out: Path, log: Path) -> dict[str, Path]:
    """Compile the build's commands into ``out``; returns bundle name → binary path."""
    env = build_env()
    ldflags = ("-s", "-w", *build.ldflags)
    tags = build.tags
    if build.cgo:
        env["CGO_ENABLED"] = "1"
        ldflags += ("-extldflags=-static",)
        # Go's own resolver and user lookup: static glibc's NSS cannot load its modules.
        tags += ("netgo", "osusergo")
    flags = [
        "-trimpath",
        *(("-tags", ",".join(tags)) if tags else ()),
        "-ldflags",
        " ".join(ldflags),
    ]
    if build.test:
        return _compile_tests(go, build, minor, flags, env, out, log)
    scratch = out / f".go-{build.module}"
    scratch.mkdir(parents=True)
    run(
        [go, "build", *flags, "-o", f"{scratch}/", *(b.package for b in build.binaries)],
        cwd=build.module_dir(minor),
        env=env,
        log=log,
    )
    built: dict[str, Path] = {}
    for binary in build.binaries:
        target = out / binary.name
        (scratch / default_binary_name(binary.package)).replace(target)
        built[binary.name] = target
    shutil.rmtree(scratch)
    return built


def run_test(go: str, test: GoTest, minor: str, log: Path) -> None:
    """``go test`` of one package, compiled as the builds are (static, -trimpath, the
    recipe's go.sum), so the packages the build compiled come from Go's cache."""
    try:
        run(
            [go, "test", "-count=1", "-trimpath", test.package],
            cwd=GOMOD_DIR / minor / test.module,
            env=build_env(),
            log=log,
        )
    except CommandError as exc:
        raise BundleError(f"the Go tests of {test.package} failed: {exc}") from None


def _compile_tests(
    go: str,
    build: GoBuild,
    minor: str,
    flags: list[str],
    env: dict[str, str],
    out: Path,
    log: Path,
) -> dict[str, Path]:
    """``go test -c``: one test binary per package, each named as the bundle names it.
    Without go vet, which ``go test`` runs first and which changes nothing in the binary."""
    built: dict[str, Path] = {}
    for binary in build.binaries:
        target = out / binary.name
        run(
            [go, "test", "-c", "-vet=off", *flags, "-o", str(target), binary.package],
            cwd=build.module_dir(minor),
            env=env,
            log=log,
        )
        built[binary.name] = target
    return built
