"""k8slab's own flannel CNI plugin: its Go tests, run where a Go toolchain is."""

from __future__ import annotations

import subprocess

import pytest

from toolkit.bundle.recipe import RECIPE_DIR
from toolkit.bundle.tools import find_go


def test_the_flannel_cni_plugins_go_tests_pass() -> None:
    go, found_instead = find_go()
    if go is None:
        pytest.skip(f"no Go toolchain >= 1.24{found_instead}")
    result = subprocess.run(
        [go, "test", "-count=1", "./..."],
        cwd=RECIPE_DIR / "src" / "flannel-cni",
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
