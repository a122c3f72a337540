"""The bundle's recipe, manifest, verification, listing and locking, without Go or docker."""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from toolkit.bundle import build, list_bundles, load, recipe, verify
from toolkit.bundle.images import debian_base_tag
from toolkit.bundle.manifest import Artifact, Manifest, VersionCheck
from toolkit.bundle.store import build_lock, bundle_dir, is_complete, partial_dir, put_in_place
from toolkit.bundle.tools import preflight
from toolkit.errors import BundleError, SpecError
from toolkit.progress import Progress
from toolkit.versions import release, supported_versions

VERSION = "v1.34.4"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("K8SLAB_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _fake_binary(folder: Path, name: str, says: str) -> Artifact:
    path = folder / "bin" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho '{says}'\n")
    path.chmod(0o755)
    return Artifact(
        name,
        "binary",
        VERSION,
        "test",
        hashlib.sha256(path.read_bytes()).hexdigest(),
        path.stat().st_size,
        f"bin/{name}",
        VersionCheck(("--version",), f"Kubernetes {VERSION}"),
    )


def _fake_bundle(cache: Path) -> Path:
    folder = bundle_dir(VERSION)
    artifacts = [
        _fake_binary(folder, "kubelet", f"Kubernetes {VERSION}"),
        _fake_binary(folder, "kube-proxy", f"Kubernetes {VERSION}"),
    ]
    rel = release(VERSION)
    Manifest(
        VERSION,
        "gomod",
        recipe.components(rel),
        artifacts,
        recipe.recipe_hash(rel, debian_base_tag()),
    ).write(folder)
    return folder


@pytest.mark.parametrize("version", supported_versions())
def test_each_supported_version_has_a_go_module_per_component(version: str) -> None:
    rel = release(version)
    for go_build in recipe.go_builds(rel):
        folder = go_build.module_dir(rel.minor)
        assert (folder / "go.mod").is_file(), folder
        assert (folder / "go.sum").is_file(), folder
        go_mod = (folder / "go.mod").read_text()
        for binary in go_build.binaries:
            assert binary.package in go_mod, f"{binary.package} is not a tool of {folder}"


@pytest.mark.parametrize("version", supported_versions())
def test_the_kubernetes_module_pins_every_staging_module(version: str) -> None:
    rel = release(version)
    go_mod = (recipe.GOMOD_DIR / rel.minor / "kubernetes" / "go.mod").read_text()
    staging = rel.version.replace("v1.", "v0.", 1)
    assert f"\tk8s.io/kubernetes {rel.version} // indirect\n" in go_mod
    for module in ("k8s.io/api", "k8s.io/client-go", "k8s.io/kubelet", "k8s.io/cri-api"):
        assert f"\t{module} => {module} {staging}\n" in go_mod


def test_image_tags_are_those_kubeadm_lists_for_v1_34() -> None:
    # `kubeadm config images list --kubernetes-version v1.34.4` of a v1.34.4 kubeadm;
    # the integration tests compare with the bundle's own kubeadm.
    assert recipe.kubeadm_image_tags(release(VERSION)) == [
        "registry.k8s.io/kube-apiserver:v1.34.4",
        "registry.k8s.io/kube-controller-manager:v1.34.4",
        "registry.k8s.io/kube-scheduler:v1.34.4",
        "registry.k8s.io/kube-proxy:v1.34.4",
        "registry.k8s.io/coredns/coredns:v1.12.1",
        "registry.k8s.io/pause:3.10.1",
        "registry.k8s.io/etcd:3.6.5-0",
    ]


def test_kubernetes_binaries_are_stamped_for_both_version_packages() -> None:
    kubernetes = recipe.go_builds(release(VERSION))[0]
    flags = " ".join(kubernetes.ldflags)
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {package}.gitVersion={VERSION}" in flags
        assert f"-X {package}.gitMinor=34" in flags


@pytest.mark.parametrize("bad", ["v1.99.0", "1.34.4", "latest", ""])
def test_an_unknown_or_malformed_version_lists_the_supported_ones(bad: str, cache: Path) -> None:
    with pytest.raises(SpecError, match=re.escape("use one of: v1.34.4, v1.35.4")):
        build(bad)


def test_the_manifest_round_trips(cache: Path) -> None:
    folder = _fake_bundle(cache)
    manifest = Manifest.read(folder)
    assert manifest.kubernetes == VERSION
    assert manifest.artifacts[0].check == VersionCheck(("--version",), f"Kubernetes {VERSION}")
    assert manifest.components["etcd"] == "3.6.5"


def test_a_sound_bundle_verifies(cache: Path) -> None:
    _fake_bundle(cache)
    assert len(verify(VERSION).artifacts) == 2


def test_a_corrupted_artifact_fails_verification_and_is_named(cache: Path) -> None:
    folder = _fake_bundle(cache)
    with (folder / "bin" / "kube-proxy").open("a") as f:
        f.write("# tampered\n")

    expected = re.escape("kube-proxy: sha256 of bin/kube-proxy is")
    with pytest.raises(BundleError, match=expected) as err:
        verify(VERSION)
    assert "kubelet" not in str(err.value)


def test_a_binary_reporting_another_version_fails_verification(cache: Path) -> None:
    folder = bundle_dir(VERSION)
    artifact = _fake_binary(folder, "kubelet", "Kubernetes v0.0.0-master+$Format:%H$")
    Manifest(VERSION, "gomod", {}, [artifact]).write(folder)

    expected = re.escape("kubelet: `--version` should print 'Kubernetes v1.34.4'")
    with pytest.raises(BundleError, match=expected):
        verify(VERSION)


def test_verify_without_a_bundle_says_how_to_build_it(cache: Path) -> None:
    expected = re.escape("run `k8slab bundle build --kubernetes v1.34.4`")
    with pytest.raises(BundleError, match=expected):
        verify(VERSION)


def test_installing_from_a_missing_bundle_names_the_command_that_builds_it(cache: Path) -> None:
    with pytest.raises(BundleError, match=re.escape("run `k8slab bundle build --kubernetes")):
        load("v1.35.4")
    _fake_bundle(cache)
    assert load(VERSION).kubernetes == VERSION


def test_an_interrupted_build_is_listed_as_incomplete(cache: Path) -> None:
    _fake_bundle(cache)
    (partial_dir("v1.35.4") / "bin").mkdir(parents=True)
    (partial_dir("v1.35.4") / "bin" / "kubeadm").write_bytes(b"half")

    listed = {b.version: b for b in list_bundles()}

    assert listed[VERSION].complete
    assert listed[VERSION].artifacts == 2
    assert not listed["v1.35.4"].complete
    assert "partial" in listed["v1.35.4"].note


def test_a_bundle_missing_a_file_is_listed_as_incomplete(cache: Path) -> None:
    folder = _fake_bundle(cache)
    (folder / "bin" / "kubelet").unlink()

    (status,) = list_bundles()

    assert not status.complete
    assert status.note == "missing: kubelet"


def test_a_complete_bundle_is_not_rebuilt(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_bundle(cache)
    # No toolchain at all: a rebuild would fail in preflight, a reuse never gets there.
    monkeypatch.setenv("PATH", "/nonexistent")

    result = build(VERSION)

    assert result.reused
    assert result.path == bundle_dir(VERSION)


def test_a_bundle_of_an_older_recipe_is_rebuilt(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _fake_bundle(cache)
    manifest = Manifest.read(folder)
    manifest.recipe = "an-older-recipe"
    manifest.write(folder)
    monkeypatch.setenv("PATH", "/nonexistent")
    said = io.StringIO()

    # The rebuild starts, so it needs the toolchain this test took away.
    with pytest.raises(BundleError, match="cannot build a bundle"):
        build(VERSION, progress=Progress(stream=said))

    assert "the recipe changed since" in said.getvalue()


def test_the_recipe_hash_follows_the_recipe_files(monkeypatch: pytest.MonkeyPatch) -> None:
    rel = release(VERSION)
    before = recipe.recipe_hash(rel, debian_base_tag())
    assert recipe.recipe_hash(rel, debian_base_tag()) == before
    monkeypatch.setattr(recipe, "KUBERNETES_BUILD_DATES", {VERSION: "2000-01-01T00:00:00Z"})
    assert recipe.recipe_hash(rel, debian_base_tag()) != before


def test_preflight_names_each_missing_tool_and_its_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("K8SLAB_GO", raising=False)
    monkeypatch.setattr("toolkit.bundle.tools.GO_FALLBACK", tmp_path / "no-go")

    with pytest.raises(BundleError) as err:
        preflight()

    message = str(err.value)
    assert "no Go toolchain >= 1.24: install one" in message
    assert "apt-get install gcc" in message
    assert "apt-get install debootstrap" in message
    assert "apt-get install docker.io" in message


def test_a_go_too_old_is_named_with_its_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_go = tmp_path / "go"
    old_go.write_text("#!/bin/sh\necho go1.19.8\n")
    old_go.chmod(0o755)
    monkeypatch.setenv("K8SLAB_GO", str(old_go))
    monkeypatch.setattr("toolkit.bundle.tools.GO_FALLBACK", tmp_path / "no-go")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    with pytest.raises(BundleError, match=re.escape(f"(found only go1.19 at {old_go})")):
        preflight()


def test_a_second_build_waits_for_the_lock(cache: Path, tmp_path: Path) -> None:
    released = tmp_path / "released"
    holder = textwrap.dedent(
        f"""
        import pathlib, time
        from toolkit.bundle.store import build_lock
        with build_lock("v1.34.4"):
            print("held", flush=True)
            time.sleep(0.5)
            pathlib.Path({str(released)!r}).touch()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    with build_lock(VERSION):
        assert released.exists(), "the lock was taken while the first build still held it"
    proc.wait()


def test_the_cli_lists_bundles_and_fails_verification_with_one_line(cache: Path) -> None:
    from click.testing import CliRunner

    from toolkit.cli import main

    folder = _fake_bundle(cache)
    listed = CliRunner().invoke(main, ["bundle", "list"])
    assert listed.exit_code == 0
    assert "v1.34.4    complete" in listed.output

    (folder / "bin" / "kubelet").write_text("#!/bin/sh\necho corrupted\n")
    verified = CliRunner().invoke(main, ["bundle", "verify", VERSION])
    assert verified.exit_code == 1
    error_lines = [line for line in verified.output.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1
    assert "kubelet: sha256 of bin/kubelet is" in error_lines[0]


def _new_build(cache: Path) -> Path:
    """A complete build of VERSION in the partial folder, told apart by a marker file."""
    work = partial_dir(VERSION)
    shutil.copytree(bundle_dir(VERSION), work)
    (work / "built").write_text("new")
    return work


def test_a_rebuild_killed_while_deleting_the_old_bundle_leaves_the_new_one(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_bundle(cache)
    work = _new_build(cache)
    complete_while_deleting: list[bool] = []

    def killed_while_deleting(path: Path, *args: object, **kwargs: object) -> None:
        if not Path(path).exists():
            return
        complete_while_deleting.append(is_complete(VERSION))
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "rmtree", killed_while_deleting)
    with pytest.raises(KeyboardInterrupt):
        put_in_place(work, VERSION)

    assert complete_while_deleting == [True]
    assert (bundle_dir(VERSION) / "built").is_file()
    assert load(VERSION).kubernetes == VERSION


def test_a_rebuild_that_cannot_be_renamed_in_keeps_the_old_bundle(cache: Path) -> None:
    _fake_bundle(cache)
    work = _new_build(cache)
    shutil.rmtree(work)  # gone before its rename, as if another process took it

    with pytest.raises(OSError):
        put_in_place(work, VERSION)

    assert load(VERSION).kubernetes == VERSION
    assert not (bundle_dir(VERSION) / "built").exists()


def test_a_rebuild_replaces_the_bundle_and_leaves_nothing_aside(cache: Path) -> None:
    _fake_bundle(cache)

    put_in_place(_new_build(cache), VERSION)

    assert (bundle_dir(VERSION) / "built").is_file()
    assert sorted(p.name for p in bundle_dir(VERSION).parent.iterdir()) == [VERSION]
