"""C programs built from their release tarballs (toolkit/bundle/kconfig.py): the options
set on top of defconfig, the unpacking, and a whole build of a fake release with make."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from toolkit.bundle import kconfig
from toolkit.bundle.manifest import VersionCheck
from toolkit.bundle.recipe import KconfigBuild
from toolkit.bundle.store import check_artifact
from toolkit.errors import BundleError
from toolkit.progress import SILENT

DEFCONFIG = """\
#
# Automatically generated make config: don't edit
#
CONFIG_HAVE_DOT_CONFIG=y
# CONFIG_STATIC is not set
CONFIG_EXTRA_CFLAGS=""
CONFIG_TC=y
"""


def test_an_option_replaces_the_line_defconfig_wrote_for_it() -> None:
    config = kconfig.set_options(DEFCONFIG, ("CONFIG_STATIC=y", "# CONFIG_TC is not set"))
    lines = config.splitlines()
    assert "CONFIG_STATIC=y" in lines and "# CONFIG_STATIC is not set" not in lines
    assert "# CONFIG_TC is not set" in lines and "CONFIG_TC=y" not in lines
    assert len(lines) == len(DEFCONFIG.splitlines())
    assert lines.index("CONFIG_STATIC=y") == DEFCONFIG.splitlines().index(
        "# CONFIG_STATIC is not set"
    )


def test_an_option_defconfig_did_not_write_is_appended_once() -> None:
    config = kconfig.set_options(DEFCONFIG + "CONFIG_X=1\nCONFIG_X=2\n", ("CONFIG_X=3",))
    assert config.splitlines().count("CONFIG_X=3") == 1
    assert "CONFIG_X=1" not in config and "CONFIG_X=2" not in config
    assert kconfig.set_options(DEFCONFIG, ("CONFIG_NEW=y",)).endswith("\nCONFIG_NEW=y\n")


def test_only_a_config_line_is_an_option() -> None:
    with pytest.raises(BundleError, match=r"not a Kconfig \.config line"):
        kconfig.option_name("STATIC=y")
    assert kconfig.option_name('CONFIG_EXTRA_CFLAGS=""') == "CONFIG_EXTRA_CFLAGS"
    # "CONFIG_STATIC" is a prefix of CONFIG_STATIC_LIBGCC: only the exact name is replaced.
    both = "CONFIG_STATIC_LIBGCC=y\n# CONFIG_STATIC is not set\n"
    assert (
        kconfig.set_options(both, ("CONFIG_STATIC=y",))
        == "CONFIG_STATIC_LIBGCC=y\nCONFIG_STATIC=y\n"
    )


def test_the_options_kconfig_did_not_keep_are_named() -> None:
    assert kconfig.missing_options(DEFCONFIG, ("CONFIG_TC=y",)) == []
    assert kconfig.missing_options(DEFCONFIG, ("CONFIG_STATIC=y",)) == ["CONFIG_STATIC=y"]


def _release(tmp_path: Path, makefile: str, mtime: int = 1727386302) -> Path:
    """A release tarball ``prog-1.0.tar.bz2`` of one top folder holding ``makefile``."""
    tarball = tmp_path / "prog-1.0.tar.bz2"
    with tarfile.open(tarball, "w:bz2") as tar:
        top = tarfile.TarInfo("prog-1.0")
        top.type, top.mode, top.mtime = tarfile.DIRTYPE, 0o755, mtime
        tar.addfile(top)
        data = makefile.encode()
        member = tarfile.TarInfo("prog-1.0/Makefile")
        member.size, member.mode, member.mtime = len(data), 0o644, mtime
        tar.addfile(member, io.BytesIO(data))
    return tarball


# defconfig writes a .config; `make prog` writes a program that prints the build date it
# was given and the .config it was built with.
MAKEFILE = """\
defconfig:
\tprintf '# CONFIG_STATIC is not set\\nCONFIG_TC=y\\n' > .config
prog: .config
\techo '#!/bin/sh' > prog
\techo "echo 'Prog v1.0 ($$SOURCE_DATE_EPOCH)'" >> prog
\techo 'cat <<EOF' >> prog
\tcat .config >> prog
\techo EOF >> prog
"""


def _spec(tarball: Path, options: tuple[str, ...] = ("CONFIG_STATIC=y",)) -> KconfigBuild:
    return KconfigBuild(
        "prog",
        "1.0",
        tarball.as_uri(),
        hashlib.sha256(tarball.read_bytes()).hexdigest(),
        options,
        VersionCheck(("--help",), "Prog v1.0 "),
    )


def test_a_release_is_unpacked_with_its_top_folder_and_time(tmp_path: Path) -> None:
    tarball = _release(tmp_path, MAKEFILE)
    (tmp_path / "src").mkdir()
    top, epoch = kconfig.unpack(tarball, tmp_path / "src")
    assert top == tmp_path / "src" / "prog-1.0"
    assert (top / "Makefile").read_text() == MAKEFILE
    assert epoch == 1727386302


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_a_release_is_built_from_defconfig_with_the_options_and_the_release_s_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAKEFLAGS", "-j1")
    tarball = _release(tmp_path, MAKEFILE)
    log = tmp_path / "build.log"
    built = kconfig.build(_spec(tarball), tmp_path / "bin", log)
    assert built == tmp_path / "bin" / "prog"
    assert built.stat().st_mode & 0o777 == 0o755
    said = subprocess.run([built, "--help"], capture_output=True, text=True, check=True)
    assert said.stdout == "Prog v1.0 (1727386302)\nCONFIG_STATIC=y\nCONFIG_TC=y\n"
    assert "make defconfig" in log.read_text() and "make prog" in log.read_text()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_an_option_kconfig_dropped_fails_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAKEFLAGS", "-j1")
    # This Makefile's own config step rewrites .config, as Kconfig would for an option
    # whose dependencies are not met.
    makefile = MAKEFILE.replace("prog: .config\n", "prog: .config\n\tsed -i /STATIC/d .config\n")
    tarball = _release(tmp_path, makefile)
    with pytest.raises(BundleError, match="Kconfig did not keep CONFIG_STATIC=y"):
        kconfig.build(_spec(tarball), tmp_path / "bin", tmp_path / "build.log")
    assert not (tmp_path / "bin" / "prog").exists()


def test_a_tarball_that_is_not_the_release_is_refused_before_anything_runs(
    tmp_path: Path,
) -> None:
    tarball = _release(tmp_path, "defconfig:\n\ttouch ran\n")
    spec = _spec(tarball)
    tarball.write_bytes(tarball.read_bytes() + b"tampered")
    with pytest.raises(BundleError, match=r"does not match prog 1\.0's"):
        kconfig.build(spec, tmp_path / "bin", tmp_path / "build.log")
    assert not list(tmp_path.rglob("ran"))


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_a_part_s_c_program_is_a_binary_artifact_naming_its_tarball(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from toolkit.bundle.build import kconfig_binaries, place_binary

    monkeypatch.setenv("MAKEFLAGS", "-j1")
    spec = _spec(_release(tmp_path, MAKEFILE))
    (work := tmp_path / "part" / "bin").mkdir(parents=True)
    found = kconfig_binaries([spec], work, tmp_path / "build.log", SILENT)
    artifact = place_binary(tmp_path / "part", "prog", found["prog"])
    assert (artifact.kind, artifact.path, artifact.version) == ("binary", "bin/prog", "1.0")
    assert artifact.source == f"make:{spec.url}"
    assert artifact.check == spec.check
    assert check_artifact(tmp_path / "part", artifact) == []


def test_no_make_is_named_with_what_needed_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    spec = KconfigBuild(
        "busybox", "1.37.0", "http://x/b.tar.bz2", "0" * 64, (), VersionCheck((), "")
    )
    with pytest.raises(
        BundleError, match=r"no make to build busybox 1\.37\.0 .*apt-get install make"
    ):
        kconfig.find_make([spec])
