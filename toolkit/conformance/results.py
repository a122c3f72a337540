"""A conformance run's results: the results folder copied off the lab, its files
extracted safely."""

from __future__ import annotations

import contextlib
import tarfile
import tempfile
from pathlib import Path

from toolkit import kube
from toolkit.conformance import manifests
from toolkit.constants import NODE_STATE_DIR
from toolkit.errors import HostError
from toolkit.hosts import remote
from toolkit.lab.spec import Lab, Node

NODE_RESULTS = f"{NODE_STATE_DIR}/conformance-results.tar"


def extract_files(archive: Path, into: Path) -> list[str]:
    """The regular files of a tar, under ``into`` (nothing outside it, no links, no
    modes: what tarfile's "data" filter does, which Python 3.11.2 lacks); their names."""
    written = []
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            name = Path(member.name)
            if not member.isfile() or name.is_absolute() or ".." in name.parts:
                continue
            source = tar.extractfile(member)
            if source is None:
                continue
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read())
            written.append(name.as_posix())
    return written


def collect(lab: Lab, node: Node, reports: Path) -> list[str]:
    """Copy the results folder into ``reports`` (tar from the output container, through
    the runner's ``node``); the problems met, if any."""
    to_tar = kube.kubectl_command(
        manifests.exec_args(manifests.OUTPUT, "tar", "-C", manifests.RESULTS_DIR, "-cf", "-", ".")
    )
    problems = []
    try:
        remote.root(
            lab, node, f"mkdir -p {NODE_STATE_DIR} && {to_tar} > {NODE_RESULTS}", timeout=600
        )
        with tempfile.TemporaryDirectory(prefix="k8slab-conformance-") as tmp:
            archive = Path(tmp) / "results.tar"
            remote.fetch(lab, node, NODE_RESULTS, archive)
            extract_files(archive, reports)
    except (HostError, OSError, tarfile.TarError) as exc:
        problems.append(f"the results could not be copied: {exc}")
    finally:
        with contextlib.suppress(HostError):
            remote.try_root(lab, node, f"rm -f {NODE_RESULTS}", timeout=30)
    return problems
