"""Building the bundle's images with docker and saving them as importable archives."""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import tempfile
from pathlib import Path

from toolkit.bundle.recipe import IMAGES_DIR, PAUSE_SOURCE, ImageSpec
from toolkit.bundle.tools import Toolchain, run
from toolkit.errors import BundleError, CommandError
from toolkit.progress import Progress

DEBIAN_SUITE = "trixie"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_PACKAGES = ("iptables", "ipset", "conntrack")
# Nothing in these runs at run time; dropping them makes each image ~40% smaller.
DEBIAN_PRUNE = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/locale",
    "var/cache/apt",
    "var/lib/apt/lists",
)


def debian_base_tag(packages: tuple[str, ...] = DEBIAN_PACKAGES) -> str:
    """The tag of the base image with ``packages``: a hash of its recipe, so a changed
    recipe makes a new one."""
    recipe = json.dumps([DEBIAN_SUITE, "minbase", packages, DEBIAN_PRUNE])
    return f"k8slab/debian-minbase:{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


def image_exists(tools: Toolchain, tag: str) -> bool:
    try:
        run([tools.docker, "image", "inspect", tag])
    except CommandError:
        return False
    return True


def ensure_debian_base(
    tools: Toolchain,
    log: Path,
    progress: Progress,
    packages: tuple[str, ...] = DEBIAN_PACKAGES,
) -> str:
    """The Debian minbase image with ``packages`` (by default the base bundle's: iptables,
    ipset and conntrack), built once and reused."""
    tag = debian_base_tag(packages)
    if image_exists(tools, tag):
        progress.say("base", f"{tag} cached")
        return tag
    progress.say("base", f"debootstrap {DEBIAN_SUITE} minbase + {', '.join(packages)}")
    with tempfile.TemporaryDirectory(prefix="k8slab-debian-") as tmp:
        root = Path(tmp) / "rootfs"
        try:
            run(
                [
                    tools.debootstrap,
                    "--variant=minbase",
                    f"--include={','.join(packages)}",
                    DEBIAN_SUITE,
                    str(root),
                    DEBIAN_MIRROR,
                ],
                log=log,
            )
        except CommandError as exc:
            raise BundleError(
                f"debootstrap of Debian {DEBIAN_SUITE} from {DEBIAN_MIRROR} failed "
                f"(is Debian's archive reachable?): {exc}"
            ) from None
        for rel in DEBIAN_PRUNE:
            shutil.rmtree(root / rel, ignore_errors=True)
        archive = Path(tmp) / "rootfs.tar"
        run(["tar", "-C", str(root), "-cf", str(archive), "."], log=log)
        run(
            [
                tools.docker,
                "import",
                "--change",
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                str(archive),
                tag,
            ],
            log=log,
        )
    return tag


def compile_pause(tools: Toolchain, version: str, out: Path, log: Path) -> Path:
    target = out / "pause"
    run(
        [
            tools.gcc,
            "-Os",
            "-static",
            "-Wall",
            "-Werror",
            f'-DVERSION="{version}"',
            "-o",
            str(target),
            str(PAUSE_SOURCE),
        ],
        log=log,
    )
    run(["strip", str(target)], log=log)
    return target


def build_image(
    tools: Toolchain,
    spec: ImageSpec,
    binaries: dict[str, Path],
    base: str,
    out: Path,
    log: Path,
) -> Path:
    """``docker build`` ``spec`` from its context folder plus its binaries (files or folders), then
    ``docker save``. ``base`` is the Debian base for a spec that wants it; a spec built on
    another image of the build names that image itself."""
    with tempfile.TemporaryDirectory(prefix="k8slab-image-") as tmp:
        context = Path(tmp)
        shutil.copytree(IMAGES_DIR / spec.context, context, dirs_exist_ok=True)
        for name in spec.binaries:
            if binaries[name].is_dir():
                shutil.copytree(binaries[name], context / name, symlinks=True)
            else:
                shutil.copy2(binaries[name], context / name)
        build_args = ["--build-arg", f"BINARY={spec.binaries[0]}"] if spec.binaries else []
        if spec.base_image or spec.debian_base:
            build_args += ["--build-arg", f"BASE={spec.base_image or base}"]
        # Nothing in a build reaches the network: every input is in the context.
        run(
            [
                tools.docker,
                "build",
                "-q",
                "--network=none",
                "-t",
                spec.tag,
                *build_args,
                str(context),
            ],
            log=log,
        )
    archive = out / spec.archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    run([tools.docker, "save", "-o", str(archive), spec.tag], log=log)
    return archive


def archive_tags(archive: Path) -> list[str]:
    """The tags a ``docker save`` archive carries (what ``ctr images import`` will name)."""
    try:
        with tarfile.open(archive) as tar:
            member = tar.extractfile("manifest.json")
            if member is None:
                return []
            entries = json.load(member)
    except (OSError, tarfile.TarError, KeyError, json.JSONDecodeError):
        return []
    return [tag for entry in entries for tag in entry.get("RepoTags") or []]
