"""The upstream path against a loopback HTTP server serving fixture files."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from toolkit.bundle import upstream
from toolkit.errors import BundleError
from toolkit.versions import release


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served on 127.0.0.1, and its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _publish(root: Path, relative: str, content: bytes, published: str | None = None) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    digest = published or hashlib.sha256(content).hexdigest()
    path.with_name(path.name + ".sha256").write_text(digest + "\n")


def test_a_file_matching_its_published_sha256_is_accepted(
    served: tuple[Path, str], tmp_path: Path
) -> None:
    root, base = served
    _publish(root, "release/v1.34.4/bin/linux/amd64/kubeadm", b"#!/bin/sh\necho v1.34.4\n")
    dest = tmp_path / "kubeadm"
    url = f"{base}/release/v1.34.4/bin/linux/amd64/kubeadm"

    digest = upstream.fetch_verified(url, f"{url}.sha256", dest)

    assert dest.read_bytes() == b"#!/bin/sh\necho v1.34.4\n"
    assert digest == hashlib.sha256(dest.read_bytes()).hexdigest()


def test_a_wrong_checksum_is_refused_and_nothing_is_kept(
    served: tuple[Path, str], tmp_path: Path
) -> None:
    root, base = served
    _publish(root, "bin/kubelet", b"tampered", published="0" * 64)
    dest = tmp_path / "kubelet"

    with pytest.raises(BundleError, match="does not match the published 0000"):
        upstream.fetch_verified(f"{base}/bin/kubelet", f"{base}/bin/kubelet.sha256", dest)

    assert list(tmp_path.glob("kubelet*")) == []


def test_a_missing_file_is_a_clear_error(served: tuple[Path, str], tmp_path: Path) -> None:
    root, base = served
    (root / "bin").mkdir()
    (root / "bin" / "kubectl.sha256").write_text("a" * 64)

    with pytest.raises(BundleError, match="bin/kubectl: HTTP 404"):
        upstream.fetch_verified(f"{base}/bin/kubectl", f"{base}/bin/kubectl.sha256", tmp_path / "k")


def test_a_missing_checksum_is_a_clear_error(served: tuple[Path, str], tmp_path: Path) -> None:
    root, base = served
    (root / "kubectl").write_bytes(b"x")

    with pytest.raises(BundleError, match=re.escape("kubectl.sha256: HTTP 404")):
        upstream.fetch_verified(f"{base}/kubectl", f"{base}/kubectl.sha256", tmp_path / "k")


def test_an_unreachable_server_says_so(tmp_path: Path) -> None:
    # Port 9 on loopback: nothing listens there, so the connection is refused at once.
    with pytest.raises(BundleError, match=re.escape("cannot reach http://127.0.0.1:9/")):
        upstream.fetch_verified(
            "http://127.0.0.1:9/x", "http://127.0.0.1:9/x.sha256", tmp_path / "x"
        )


def test_sha256sums_lists_are_read_by_file_name(served: tuple[Path, str]) -> None:
    root, base = served
    (root / "SHA256SUMS").write_text(f"{'b' * 64}  other.tar.gz\n{'c' * 64}  etcd.tar.gz\n")

    assert upstream.published_sha256(f"{base}/SHA256SUMS", "etcd.tar.gz") == "c" * 64


def test_binaries_are_taken_out_of_release_archives(
    served: tuple[Path, str], tmp_path: Path
) -> None:
    import tarfile

    root, base = served
    payload = tmp_path / "crictl"
    payload.write_bytes(b"crictl binary")
    archive = root / "crictl.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(payload, arcname="crictl")
    (root / "crictl.tar.gz.sha256").write_text(hashlib.sha256(archive.read_bytes()).hexdigest())
    out = tmp_path / "out"
    out.mkdir()

    placed = upstream.fetch(
        upstream.UpstreamFile(
            f"{base}/crictl.tar.gz", f"{base}/crictl.tar.gz.sha256", {"crictl": "crictl"}
        ),
        out,
        tmp_path / "downloads",
    )

    assert placed["crictl"].read_bytes() == b"crictl binary"


def test_every_third_party_binary_has_an_upstream_location() -> None:
    from toolkit.bundle.recipe import go_builds

    rel = release("v1.34.4")
    files = upstream.upstream_files(rel, "http://127.0.0.1:1", "http://127.0.0.1:2")
    offered = {name for f in files for name in f.members}
    wanted = {b.name for build in go_builds(rel) if not build.own_source for b in build.binaries}
    assert offered == wanted
    kubeadm = next(f for f in files if "kubeadm" in f.members)
    assert kubeadm.url == "http://127.0.0.1:1/release/v1.34.4/bin/linux/amd64/kubeadm"
    assert kubeadm.sha256_url == kubeadm.url + ".sha256"


def _mirror_release_files(root: Path, files: list[upstream.UpstreamFile], base: str) -> None:
    """Lay out fixture release files (raw binaries and archives) where ``files`` point."""
    import io
    import tarfile

    for file in files:
        path = root / file.url.removeprefix(base + "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if list(file.members.values()) == [""]:
            (name,) = file.members
            path.write_bytes(f"#!/bin/sh\necho {name}\n".encode())
        else:
            with tarfile.open(path, "w:gz") as tar:
                for name, member in file.members.items():
                    data = f"#!/bin/sh\necho {name}\n".encode()
                    info = tarfile.TarInfo(member)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        sums = root / file.sha256_url.removeprefix(base + "/")
        with sums.open("a") as out:
            out.write(f"{digest}  {path.name}\n" if sums.name == "SHA256SUMS" else digest)


def test_an_upstream_build_fetches_and_unpacks_every_release_file(
    served: tuple[Path, str], tmp_path: Path
) -> None:
    from toolkit.bundle.build import _upstream_binaries
    from toolkit.progress import SILENT

    root, base = served
    rel = release("v1.34.4")
    _mirror_release_files(root, upstream.upstream_files(rel, base, base), base)
    work = tmp_path / "partial" / "bin"
    work.mkdir(parents=True)

    binaries = _upstream_binaries(rel, work, base, base, SILENT)

    assert "etcdutl" in binaries
    assert "host-local" in binaries
    for name, binary in binaries.items():
        assert binary.path.read_text() == f"#!/bin/sh\necho {name}\n"
        assert binary.source.startswith(f"upstream:{base}/")
    assert sorted(p.name for p in work.iterdir()) == sorted(binaries)
    assert not (tmp_path / "partial" / "downloads").exists()
