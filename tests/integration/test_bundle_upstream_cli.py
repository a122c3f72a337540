"""`k8slab bundle build --source upstream` against a loopback server: a tampered release
file stops the build with the reason, and no bundle looks complete afterwards."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from toolkit.bundle import list_bundles
from toolkit.cli import main

pytestmark = [pytest.mark.integration]

VERSION = "v1.34.4"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "mirror"
    (root / "release" / VERSION / "bin" / "linux" / "amd64").mkdir(parents=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _build(base: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        main,
        [
            "bundle",
            "build",
            "--kubernetes",
            VERSION,
            "--source",
            "upstream",
            "--kubernetes-url",
            base,
            "--github-url",
            base,
        ],
    )
    return result.exit_code, result.output


def test_a_tampered_release_file_stops_the_build(
    mirror: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("K8SLAB_CACHE_DIR", str(tmp_path / "cache"))
    root, base = mirror
    folder = root / "release" / VERSION / "bin" / "linux" / "amd64"
    (folder / "kubeadm").write_bytes(b"not the published kubeadm")
    (folder / "kubeadm.sha256").write_text("f" * 64 + "\n")

    code, output = _build(base)

    assert code == 1
    assert f"{base}/release/{VERSION}/bin/linux/amd64/kubeadm: sha256" in output
    assert "refusing it" in output
    assert not any(b.complete for b in list_bundles())


def test_a_release_file_missing_from_the_mirror_is_named(
    mirror: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("K8SLAB_CACHE_DIR", str(tmp_path / "cache"))
    _, base = mirror

    code, output = _build(base)

    assert code == 1
    assert f"error: {base}/release/{VERSION}/bin/linux/amd64/kubeadm.sha256: HTTP 404" in output
