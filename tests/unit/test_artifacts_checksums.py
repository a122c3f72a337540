"""The artifacts role checks each image archive against the bundle's manifest before it
imports it (issue 11, finding 10), as it does each binary before it installs it, and a
mismatch names the file and both digests.

The role's own scripts are rendered from ``roles/artifacts/tasks/`` with manifest entries
and run here by bash, with a ``ctr`` (or ``docker``, on a node whose runtime is Docker
Engine) that only records its arguments; the e2e suite runs the same tasks on real nodes.
"""

from __future__ import annotations

import hashlib
import shlex
import subprocess
from dataclasses import asdict
from pathlib import Path

import jinja2
import pytest
import yaml

from toolkit.bundle.manifest import Artifact
from toolkit.paths import ROLES_DIR

TASKS = ROLES_DIR / "artifacts" / "tasks"


def role_script(tasks_file: str, task_name: str, **variables: object) -> str:
    """The shell script of one task of the role, rendered as Ansible would (with the task's
    own vars)."""
    tasks = yaml.safe_load((TASKS / tasks_file).read_text(encoding="utf-8"))
    [task] = [t for t in tasks if t["name"] == task_name]
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True)  # as Ansible
    env.filters["quote"] = shlex.quote
    return env.from_string(task["ansible.builtin.shell"]).render(
        **{**task.get("vars", {}), **variables}
    )


def import_script(item: Artifact, source: Path, store: str = "containerd") -> str:
    return role_script(
        "images.yml",
        "Import the missing images into the runtime, each archive checked first",
        item=asdict(item),
        __artifacts_source=str(source),
        artifacts_image_store=store,
        artifacts_imported_dir=str(imported_dir(source)),
    )


def imported_dir(source: Path) -> Path:
    """Where the rendered script records the archives it imported (beside the bundle)."""
    return source.parent / "imported"


def image(path: str, sha256: str) -> Artifact:
    return Artifact(
        "registry.k8s.io/pause:3.10.1", "image", "3.10.1", "built", sha256, 9, path,
        tag="registry.k8s.io/pause:3.10.1",
    )  # fmt: skip


@pytest.fixture
def node(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """A bundle folder (with a space and a quote in its path), and a ctr and a docker that
    record their arguments."""
    bundle = tmp_path / "bundle o'dir"
    (bundle / "images").mkdir(parents=True)
    (bundle / "images" / "pause.tar").write_bytes(b"an image archive")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "ctr-calls"
    for command in ("ctr", "docker"):
        fake = bin_dir / command
        fake.write_text(
            f'#!/bin/bash\nprintf "{command} %s\\n" "$*" >> {shlex.quote(str(calls))}\n'
        )
        fake.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    return bundle, calls, env


def run(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    ("store", "command"),
    [
        ("containerd", "ctr --namespace k8s.io images import"),
        # A node whose runtime is Docker Engine loads the checked archive into the engine.
        ("docker", "docker load --input"),
    ],
)
def test_an_archive_that_matches_the_manifest_is_imported(
    node: tuple[Path, Path, dict[str, str]], store: str, command: str
) -> None:
    bundle, calls, env = node
    digest = hashlib.sha256(b"an image archive").hexdigest()
    imported_dir(bundle).mkdir()
    result = run(import_script(image("images/pause.tar", digest), bundle, store), env)
    assert result.returncode == 0, result.stderr
    archive = bundle / "images" / "pause.tar"
    assert calls.read_text() == f"{command} {archive}\n"
    # The archive is recorded by its digest: a later bundle's archive under the same tag is
    # imported again.
    assert [p.name for p in imported_dir(bundle).iterdir()] == [digest]


def test_an_archive_that_differs_is_refused_naming_the_file_and_both_digests(
    node: tuple[Path, Path, dict[str, str]],
) -> None:
    bundle, calls, env = node
    expected = hashlib.sha256(b"the archive that was built").hexdigest()
    actual = hashlib.sha256(b"an image archive").hexdigest()
    result = run(import_script(image("images/pause.tar", expected), bundle), env)
    assert result.returncode == 1
    assert result.stderr == (
        f"refusing to import {bundle / 'images' / 'pause.tar'}: its sha256 is {actual}, "
        f"the bundle's manifest says {expected}\n"
    )
    assert not calls.exists(), "nothing was imported"
    assert not imported_dir(bundle).exists(), "nothing was recorded"


def test_a_missing_archive_fails_before_ctr_runs(
    node: tuple[Path, Path, dict[str, str]],
) -> None:
    bundle, calls, env = node
    result = run(import_script(image("images/gone.tar", "0" * 64), bundle), env)
    assert result.returncode != 0
    assert "gone.tar" in result.stderr
    assert not calls.exists()


# --- binaries: the same check, the same message ------------------------------------------


def install_script(binaries: list[Artifact], source: Path, root: Path) -> str:
    return role_script(
        "binaries.yml",
        "Install the bundle's binaries and CNI plugins",
        __artifacts_binaries=[asdict(b) for b in binaries],
        __artifacts_cni_plugins=[],
        __artifacts_source=str(source),
        artifacts_stamp=str(root / "artifacts.sha256"),
        artifacts_bin_dir=str(root / "bin"),
        artifacts_cni_bin_dir=str(root / "cni"),
    )


def binary(sha256: str) -> Artifact:
    return Artifact("kubeadm", "binary", "v1.34.4", "built", sha256, 7, "bin/kubeadm")


def test_a_binary_is_installed_once_and_a_changed_one_is_refused_naming_both_digests(
    tmp_path: Path,
) -> None:
    bundle, root = tmp_path / "bundle", tmp_path / "node"
    (bundle / "bin").mkdir(parents=True)
    (bundle / "bin" / "kubeadm").write_bytes(b"kubeadm")
    good = hashlib.sha256(b"kubeadm").hexdigest()
    env = {"PATH": "/usr/bin:/bin"}

    first = run(install_script([binary(good)], bundle, root), env)
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"installed {root / 'bin' / 'kubeadm'}\n"
    again = run(install_script([binary(good)], bundle, root), env)
    assert (again.returncode, again.stdout) == (0, ""), "a converged node changes nothing"

    other = hashlib.sha256(b"another kubeadm").hexdigest()
    refused = run(install_script([binary(other)], bundle, root), env)
    assert refused.returncode == 1
    assert refused.stderr == (
        f"refusing to install {bundle / 'bin' / 'kubeadm'}: its sha256 is {good}, "
        f"the bundle's manifest says {other}\n"
    )
    assert sorted(p.name for p in (root / "bin").iterdir()) == ["kubeadm"], "no leftover"
    assert (root / "artifacts.sha256").read_text() == f"{good}  {root / 'bin' / 'kubeadm'}\n"
