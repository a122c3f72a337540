"""Fetching official release binaries (``--source upstream``), each checked against the
sha256 its release location publishes before it is used."""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.bundle.recipe import CNI_PLUGINS, KUBERNETES_COMMANDS
from toolkit.errors import BundleError
from toolkit.versions import KubernetesRelease

KUBERNETES_BASE = "https://dl.k8s.io"
GITHUB_BASE = "https://github.com"
ARCH = "amd64"
TIMEOUT = 60.0


@dataclass(frozen=True)
class UpstreamFile:
    """One published file; ``members`` maps bundle names to paths inside an archive."""

    url: str
    sha256_url: str
    members: dict[str, str]


def upstream_files(
    rel: KubernetesRelease, kubernetes_base: str = KUBERNETES_BASE, github_base: str = GITHUB_BASE
) -> list[UpstreamFile]:
    k8s = f"{kubernetes_base.rstrip('/')}/release/{rel.version}/bin/linux/{ARCH}"
    gh = github_base.rstrip("/")
    etcd = f"etcd-v{rel.etcd}-linux-{ARCH}"
    etcd_dir = f"{gh}/etcd-io/etcd/releases/download/v{rel.etcd}"
    crictl = (
        f"{gh}/kubernetes-sigs/cri-tools/releases/download/{rel.crictl}/"
        f"crictl-{rel.crictl}-linux-{ARCH}.tar.gz"
    )
    cni = (
        f"{gh}/containernetworking/plugins/releases/download/{rel.cni_plugins}/"
        f"cni-plugins-linux-{ARCH}-{rel.cni_plugins}.tgz"
    )
    coredns = (
        f"{gh}/coredns/coredns/releases/download/{rel.coredns}/"
        f"coredns_{rel.coredns.lstrip('v')}_linux_{ARCH}.tgz"
    )
    flannel = (
        f"{gh}/flannel-io/flannel/releases/download/{rel.flannel}/"
        f"flannel-{rel.flannel}-linux-{ARCH}.tar.gz"
    )
    files = [UpstreamFile(f"{k8s}/{c}", f"{k8s}/{c}.sha256", {c: ""}) for c in KUBERNETES_COMMANDS]
    files += [
        UpstreamFile(
            f"{etcd_dir}/{etcd}.tar.gz",
            f"{etcd_dir}/SHA256SUMS",
            {name: f"{etcd}/{name}" for name in ("etcd", "etcdctl", "etcdutl")},
        ),
        UpstreamFile(crictl, f"{crictl}.sha256", {"crictl": "crictl"}),
        UpstreamFile(cni, f"{cni}.sha256", {name: f"./{name}" for name in CNI_PLUGINS}),
        UpstreamFile(coredns, f"{coredns}.sha256", {"coredns": "coredns"}),
        UpstreamFile(flannel, f"{flannel}.sha256", {"flanneld": "flanneld"}),
    ]
    return files


def _get(url: str) -> urllib.request.Request:
    return urllib.request.Request(url, headers={"User-Agent": "k8slab"})


def _open(url: str) -> Any:
    try:
        return urllib.request.urlopen(_get(url), timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        raise BundleError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BundleError(
            f"cannot reach {url} ({reason}): check the network, or point the build at a "
            "mirror with the same layout"
        ) from None


def published_sha256(sha256_url: str, file_name: str) -> str:
    """The checksum from a ``.sha256`` file (one hash) or a ``SHA256SUMS`` list."""
    with _open(sha256_url) as response:
        text: str = response.read().decode("utf-8", "replace")
    lines = [line.split() for line in text.splitlines() if line.strip()]
    for fields in lines:
        if len(fields) == 1 or fields[-1].lstrip("*").rsplit("/", 1)[-1] == file_name:
            candidate = fields[0].lower()
            if len(candidate) == 64 and all(c in "0123456789abcdef" for c in candidate):
                return candidate
    raise BundleError(f"{sha256_url}: no sha256 for {file_name} in it")


def fetch_verified(url: str, sha256_url: str, dest: Path) -> str:
    """Download ``url`` to ``dest`` and return its sha256; a mismatch deletes it and fails."""
    expected = published_sha256(sha256_url, url.rsplit("/", 1)[-1])
    return fetch_pinned(url, expected, dest, "the published")


def fetch_pinned(url: str, expected: str, dest: Path, whose: str = "the recipe's") -> str:
    """Download ``url`` to ``dest``, which must have the sha256 ``expected``; a mismatch
    deletes it and fails."""
    digest = hashlib.sha256()
    partial = dest.with_name(dest.name + ".download")
    with _open(url) as response, partial.open("wb") as out:
        for chunk in iter(lambda: response.read(1 << 20), b""):
            digest.update(chunk)
            out.write(chunk)
    actual = digest.hexdigest()
    if actual != expected:
        partial.unlink()
        raise BundleError(f"{url}: sha256 {actual} does not match {whose} {expected}; refusing it")
    partial.replace(dest)
    return actual


def fetch(file: UpstreamFile, out: Path, downloads: Path) -> dict[str, Path]:
    """Fetch ``file`` and place the bundle binaries it carries in ``out``."""
    downloads.mkdir(parents=True, exist_ok=True)
    fetched = downloads / file.url.rsplit("/", 1)[-1]
    fetch_verified(file.url, file.sha256_url, fetched)
    placed: dict[str, Path] = {}
    for name, member in file.members.items():
        target = out / name
        if not member:
            shutil.copyfile(fetched, target)
        else:
            with tarfile.open(fetched) as tar:
                try:
                    source = tar.extractfile(member)
                except KeyError:
                    source = None
                if source is None:
                    raise BundleError(f"{file.url}: {member} is not a file in the archive")
                with source, target.open("wb") as sink:
                    shutil.copyfileobj(source, sink)
        target.chmod(0o755)
        placed[name] = target
    return placed
