"""The bundle's cloud-provider part (`bundle build --with cloud-provider`), without Go or
docker: its declaration, its consuming module pinned to the release's staging modules, its
own source hashed into it and not into the base bundle, and its Go tests as a build step."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.bundle import cloud_provider, gobuild, images, parts, recipe
from toolkit.bundle.manifest import Manifest, VersionCheck
from toolkit.bundle.part import GoTest
from toolkit.constants import IMAGE_REGISTRY
from toolkit.errors import BundleError
from toolkit.versions import release

REL = release("v1.34.4")


def test_the_part_builds_k8slab_s_own_provider_stamped_with_the_release() -> None:
    part = parts.get("cloud-provider")
    assert part is cloud_provider.PART
    (build,) = part.go_builds(REL)
    (binary,) = build.binaries
    assert (binary.name, binary.package) == ("cloud-controller-manager", cloud_provider.PACKAGE)
    assert binary.check == VersionCheck(("--version",), "Kubernetes v1.34.4")
    assert "-X k8s.io/component-base/version.gitVersion=v1.34.4" in build.ldflags
    assert part.go_tests == (GoTest(cloud_provider.SOURCE, cloud_provider.PACKAGE),)
    (image,) = part.images(REL)
    assert (
        image.tag
        == f"{IMAGE_REGISTRY}/cloud-controller-manager:v1.34.4"
        == ("k8slab.test/cloud-controller-manager:v1.34.4")
    )
    assert image.binaries == ("cloud-controller-manager",)
    assert (recipe.IMAGES_DIR / image.context / "Dockerfile").is_file()


def test_its_module_builds_the_one_source_against_the_release_s_staging_modules() -> None:
    go_mod = (recipe.GOMOD_DIR / REL.minor / cloud_provider.SOURCE / "go.mod").read_text()
    assert "replace k8slab.local/cloud-provider-k8slab => ../../../src/cloud-provider-k8slab\n" in (
        go_mod
    )
    assert f"tool {cloud_provider.PACKAGE}\n" in go_mod
    assert "\tk8s.io/cloud-provider => k8s.io/cloud-provider v0.34.4\n" in go_mod
    assert "\tk8s.io/client-go => k8s.io/client-go v0.34.4\n" in go_mod
    # Nothing resolved to a staging module's placeholder version.
    assert "v0.0.0-00010101000000-000000000000" not in go_mod
    assert cloud_provider.PART.components(REL) == {
        "cloud-provider-k8slab": "v1.34.4",
        "k8s.io/cloud-provider": "v0.34.4",
    }
    assert (recipe.OWN_SOURCES_DIR / cloud_provider.SOURCE / "cloud_test.go").is_file()


def test_the_base_hash_ignores_the_part_s_source_and_the_part_s_hash_follows_it(
    recipe_copy: Path,
) -> None:
    base = recipe.recipe_hash(REL, images.debian_base_tag())
    manifest = Manifest(REL.version, "gomod", {}, [])
    first = parts.recipe_hash(cloud_provider.PART, REL, manifest)
    (recipe_copy / "src" / cloud_provider.SOURCE / "cloud.go").write_text("package main\n")
    assert recipe.recipe_hash(REL, images.debian_base_tag()) == base
    assert parts.recipe_hash(cloud_provider.PART, REL, manifest) != first
    # The base bundle's own source still counts for it.
    (recipe_copy / "src" / "flannel-cni" / "main.go").write_text("package main\n")
    assert recipe.recipe_hash(REL, images.debian_base_tag()) != base


def test_a_minor_without_the_module_is_refused_with_the_pin_command() -> None:
    with pytest.raises(
        BundleError, match=r"pin-own\.sh v1\.35 cloud-provider-k8slab k8s\.io/cloud-provider"
    ):
        parts.require_recipe(cloud_provider.PART, release("v1.35.4"))


def _fake_go(tmp_path: Path, exit_code: int) -> str:
    go = tmp_path / "go"
    go.write_text(
        f'#!/bin/sh\necho "$PWD $* CGO_ENABLED=$CGO_ENABLED" > {tmp_path}/called\n'
        f"echo '--- FAIL: TestX'\nexit {exit_code}\n"
    )
    go.chmod(0o755)
    return str(go)


def test_the_go_tests_run_as_the_build_compiles(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    test = cloud_provider.PART.go_tests[0]
    gobuild.run_test(_fake_go(tmp_path, 0), test, REL.minor, log)
    called = (tmp_path / "called").read_text()
    folder = recipe.GOMOD_DIR / REL.minor / cloud_provider.SOURCE
    assert called == f"{folder} test -count=1 -trimpath {cloud_provider.PACKAGE} CGO_ENABLED=0\n"
    assert "test -count=1" in log.read_text()


def test_a_failing_go_test_fails_the_build_with_its_output(tmp_path: Path) -> None:
    test = cloud_provider.PART.go_tests[0]
    with pytest.raises(
        BundleError, match=r"Go tests of k8slab\.local/cloud-provider-k8slab failed.*FAIL: TestX"
    ):
        gobuild.run_test(_fake_go(tmp_path, 1), test, REL.minor, tmp_path / "log")
