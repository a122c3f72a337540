"""A build killed midway never looks complete; the next builds finish it, concurrently.

Runs whole builds in a cache of its own: minutes when the Go build cache is warm (after
test_bundle.py or a `k8slab bundle build`), as long as a cold build otherwise.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from toolkit.bundle import list_bundles, verify
from toolkit.bundle.store import partial_dir
from toolkit.errors import BundleError
from toolkit.versions import DEFAULT_KUBERNETES_VERSION

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VERSION = DEFAULT_KUBERNETES_VERSION
CLI = [sys.executable, "-c", "from toolkit.cli import main; main()"]


def _start_build(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*CLI, "bundle", "build", "--kubernetes", VERSION],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def test_a_killed_build_is_incomplete_and_the_next_builds_finish_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("K8SLAB_CACHE_DIR", str(tmp_path / "cache"))
    env = dict(os.environ)
    first = _start_build(env, tmp_path / "first.log")
    kube_apiserver = partial_dir(VERSION) / "bin" / "kube-apiserver"
    for _ in range(1200):
        if kube_apiserver.exists() or first.poll() is not None:
            break
        time.sleep(0.5)
    assert first.poll() is None, (tmp_path / "first.log").read_text()
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()

    (status,) = list_bundles()
    assert (status.version, status.complete) == (VERSION, False)
    with pytest.raises(BundleError, match="interrupted build"):
        verify(VERSION)

    # Two builds at once: one finishes the bundle, the other waits on the lock and reuses it.
    second = _start_build(env, tmp_path / "second.log")
    third = _start_build(env, tmp_path / "third.log")
    assert second.wait(timeout=3000) == 0, (tmp_path / "second.log").read_text()
    assert third.wait(timeout=300) == 0, (tmp_path / "third.log").read_text()
    outputs = (tmp_path / "second.log").read_text() + (tmp_path / "third.log").read_text()
    assert "discarding an interrupted build" in outputs
    assert "completed by another build" in outputs or "nothing to do" in outputs

    (status,) = list_bundles()
    assert status.complete
    assert len(verify(VERSION).artifacts) == status.artifacts
    # pytest keeps the last runs' folders; this one holds a 1.5 GB bundle.
    shutil.rmtree(tmp_path / "cache")
