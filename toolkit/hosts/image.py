"""The node image: a Debian root filesystem with systemd as PID 1, made with debootstrap.

Its tag carries a hash of the recipe (suite, packages, customisation script), so the
image is rebuilt only when the recipe changes and a second build is a no-op.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from toolkit import paths
from toolkit.errors import ImageError
from toolkit.progress import SILENT, Progress
from toolkit.shell import require, run

RECIPE_DIR = Path(__file__).parent / "node_image"
SUITE = "trixie"
IMAGE_REPOSITORY = "k8slab-node"
LOGIN_USER = "k8slab"
IMPORT_CHANGES = (
    'CMD ["/sbin/init"]',
    "ENV container=docker",
)


def debian_mirror() -> str:
    return os.environ.get("K8SLAB_DEBIAN_MIRROR", "http://deb.debian.org/debian")


def packages() -> list[str]:
    lines = (RECIPE_DIR / "packages.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@dataclass(frozen=True)
class NodeImage:
    tag: str
    recipe_hash: str


def node_image() -> NodeImage:
    """The image the current recipe describes (built or not)."""
    digest = hashlib.sha256()
    for part in (SUITE, LOGIN_USER, *IMPORT_CHANGES, *packages()):
        digest.update(part.encode() + b"\0")
    digest.update((RECIPE_DIR / "customize.sh").read_bytes())
    recipe_hash = digest.hexdigest()[:12]
    return NodeImage(f"{IMAGE_REPOSITORY}:{recipe_hash}", recipe_hash)


def image_present(tag: str) -> bool:
    result = run(["docker", "image", "inspect", tag], check=False)
    return result.returncode == 0


def build_node_image(progress: Progress = SILENT, force: bool = False) -> NodeImage:
    """Build and import the node image unless an image of the same recipe is present."""
    require("docker", "install it with `apt-get install docker.io`")
    image = node_image()
    lock_path = paths.cache_dir() / "locks" / "node-image.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if image_present(image.tag) and not force:
            progress.say("image", f"{image.tag} is present; nothing to build")
            return image
        require("debootstrap", "install it with `apt-get install debootstrap`")
        if os.geteuid() != 0:
            raise ImageError("building the node image runs debootstrap and chroot: run as root")
        _build(image, progress)
    return image


def _build(image: NodeImage, progress: Progress) -> None:
    work = paths.cache_dir() / "image-build" / f"{image.recipe_hash}.partial"
    log = paths.cache_dir() / "image-build" / f"{image.recipe_hash}.log"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    rootfs = work / "rootfs"
    debs = paths.cache_dir() / "debootstrap-debs"
    debs.mkdir(parents=True, exist_ok=True)
    try:
        with progress.phase("debootstrap", f"Debian {SUITE} minbase from {debian_mirror()}"):
            run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(packages())}",
                    f"--cache-dir={debs}",
                    SUITE,
                    str(rootfs),
                    debian_mirror(),
                ],
                log=log,
            )
        with progress.phase("customize", "systemd, sshd, login user"):
            script = rootfs / "k8slab-customize.sh"
            shutil.copy(RECIPE_DIR / "customize.sh", script)
            run(["chroot", str(rootfs), "/bin/sh", "/k8slab-customize.sh", LOGIN_USER], log=log)
            script.unlink()
        with progress.phase("import", image.tag):
            _import(rootfs, image, log)
    except Exception as exc:
        raise ImageError(f"building {image.tag} failed (log: {log}): {exc}") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _import(rootfs: Path, image: NodeImage, log: Path) -> None:
    changes = [arg for change in IMPORT_CHANGES for arg in ("--change", change)]
    with subprocess.Popen(
        ["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE
    ) as tar:
        result = subprocess.run(
            [
                "docker",
                "import",
                *changes,
                "--message",
                f"k8slab node image, recipe {image.recipe_hash}",
                "-",
                image.tag,
            ],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            check=False,
        )
    with log.open("a", encoding="utf-8") as handle:
        handle.write(result.stdout + result.stderr)
    if tar.returncode != 0 or result.returncode != 0:
        raise ImageError(f"docker import of {image.tag} failed: {result.stderr.strip()}")
