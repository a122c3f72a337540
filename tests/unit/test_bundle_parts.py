"""The bundle's optional parts (`bundle build --with conformance`), without Go or docker:
the base bundle's hash ignores them, their recipe hangs together, a part lives in its own
folder with its own manifest, and verify and list see it."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from toolkit.bundle import conformance, cri_dockerd, images, parts, recipe
from toolkit.bundle.manifest import Artifact, Manifest, VersionCheck
from toolkit.bundle.store import bundle_dir, list_bundles
from toolkit.cli import main
from toolkit.errors import BundleError
from toolkit.versions import release, supported_versions

VERSION = "v1.34.4"
REL = release(VERSION)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("K8SLAB_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_the_parts_are_the_ones_bundle_build_offers() -> None:
    assert (
        parts.NAMES
        == tuple(parts.PARTS)
        == (
            "conformance",
            "cri-dockerd",
            "metallb",
            "addons",
            "k9s",
            "cloud-provider",
            "cilium",
        )
    )
    assert parts.get("conformance") is conformance.PART
    assert conformance.MODULE in conformance.PART.modules
    assert conformance.SAMPLE_APISERVER_MODULE in conformance.PART.modules


@pytest.mark.parametrize("name", parts.NAMES)
def test_each_part_owns_its_module_folders_and_its_builds_use_only_those(name: str) -> None:
    part = parts.get(name)
    rel = REL
    for build in part.go_builds(rel):
        assert build.module in part.modules, build
        assert not build.own_source, build
    for folder in part.folders(rel.minor):
        assert folder.is_dir(), folder


@pytest.mark.parametrize("version", supported_versions())
def test_cri_dockerd_has_its_go_module_for_each_version(version: str) -> None:
    rel = release(version)
    parts.require_recipe(cri_dockerd.PART, rel)
    (build,) = cri_dockerd.go_builds(rel)
    folder = build.module_dir(rel.minor)
    assert (folder / "go.sum").is_file()
    assert f"tool {build.binaries[0].package}\n" in (folder / "go.mod").read_text()


def test_cri_dockerd_carries_its_own_replace_block_and_reports_its_tag() -> None:
    (build,) = cri_dockerd.go_builds(REL)
    go_mod = (build.module_dir(REL.minor) / "go.mod").read_text()
    # Without these the proxy refuses k8s.io/kubelet@v0.0.0 and k8s.io/cri-api/v1alpha2.
    assert "\tk8s.io/kubelet => k8s.io/kubelet v0.29.10\n" in go_mod
    assert "\tk8s.io/cri-api/v1alpha2 => k8s.io/cri-api v0.25.16\n" in go_mod
    assert "github.com/Mirantis/cri-dockerd v0.4.0" in go_mod
    (binary,) = build.binaries
    assert binary.check == VersionCheck(("--version",), "cri-dockerd 0.4.0 (a8698e9)")
    assert "-X github.com/Mirantis/cri-dockerd/cmd/version.Version=0.4.0" in build.ldflags


def test_cri_dockerd_s_hash_follows_its_module_and_not_the_base_bundle(
    recipe_copy: Path,
) -> None:
    base = Manifest(VERSION, "gomod", {}, [])
    first = parts.recipe_hash(cri_dockerd.PART, REL, base)
    rebuilt = Manifest(VERSION, "gomod", {}, [], recipe="another")
    assert parts.recipe_hash(cri_dockerd.PART, REL, rebuilt) == first
    (recipe_copy / "gomod" / REL.minor / "cri-dockerd" / "go.sum").write_text("changed\n")
    assert parts.recipe_hash(cri_dockerd.PART, REL, base) != first


def test_a_new_part_s_folders_leave_the_base_recipe_hash_alone(recipe_copy: Path) -> None:
    # The base hashes only the folders its own builds and images name: a part added later
    # rebuilds no bundle built before it.
    base = recipe.recipe_hash(REL, images.debian_base_tag())
    (recipe_copy / "gomod" / REL.minor / "new-part").mkdir()
    (recipe_copy / "gomod" / REL.minor / "new-part" / "go.mod").write_text("module x\n")
    (recipe_copy / "images" / "new-part").mkdir()
    (recipe_copy / "images" / "new-part" / "Dockerfile").write_text("FROM scratch\n")
    assert recipe.recipe_hash(REL, images.debian_base_tag()) == base


def test_a_part_s_recipe_files_change_its_hash_not_the_base_bundle_s(recipe_copy: Path) -> None:
    base = recipe.recipe_hash(REL, images.debian_base_tag())
    (recipe_copy / "gomod" / REL.minor / "conformance" / "extra.txt").write_text("x")
    (recipe_copy / "images" / "conformance" / "agnhost" / "Dockerfile").write_text("changed")
    assert recipe.recipe_hash(REL, images.debian_base_tag()) == base
    (recipe_copy / "gomod" / REL.minor / "kubernetes" / "extra.txt").write_text("x")
    assert recipe.recipe_hash(REL, images.debian_base_tag()) != base


def test_the_part_s_hash_follows_its_files_and_the_base_artifacts_it_copies(
    recipe_copy: Path,
) -> None:
    kubectl = Artifact("kubectl", "binary", VERSION, "t", "a" * 64, 1, "bin/kubectl")
    base = Manifest(VERSION, "gomod", {}, [kubectl])
    part = conformance.PART
    first = parts.recipe_hash(part, REL, base)
    (recipe_copy / "images" / "conformance" / "httpd" / "httpd.conf").write_text("Listen 8080")
    second = parts.recipe_hash(part, REL, base)
    assert second != first
    rebuilt = Manifest(VERSION, "gomod", {}, [Artifact(**{**kubectl.__dict__, "sha256": "b" * 64})])
    assert parts.recipe_hash(part, REL, rebuilt) != second
    (recipe_copy / "images" / "etcd" / "Dockerfile").write_text("changed")  # a borrowed context
    assert parts.recipe_hash(part, REL, rebuilt) != parts.recipe_hash(part, REL, base)


def test_the_conformance_module_has_a_tool_or_a_deps_import_for_each_binary() -> None:
    for build in conformance.go_builds(REL):
        folder = build.module_dir(REL.minor)
        known = (folder / "go.mod").read_text()
        if (folder / "deps.go").is_file():
            known += (folder / "deps.go").read_text()
        for binary in build.binaries:
            tool = re.search(rf"^\s*(tool\s+)?{re.escape(binary.package)}$", known, re.M)
            assert tool or f'"{binary.package}"' in known, binary


def test_e2e_test_is_a_test_build_stamped_with_the_release() -> None:
    (e2e,) = [b for b in conformance.go_builds(REL) if b.test]
    assert e2e.binaries[0].name == "e2e.test"
    assert f"-X k8s.io/component-base/version.gitVersion={VERSION}" in e2e.ldflags
    assert conformance.ginkgo_version(REL) == "v2.21.0"


def test_the_images_are_named_as_e2e_test_names_them_through_the_repo_list() -> None:
    tags = conformance.test_image_tags(REL)
    assert "k8slab.test/e2e-test-images/agnhost:2.56" in tags
    assert "k8slab.test/etcd:3.6.4-0" in tags
    assert conformance.runner_image(REL) not in tags
    assert conformance.names_problems(REL, [*tags, "registry.k8s.io/pause:3.10.1"]) == []
    problems = conformance.names_problems(REL, [t for t in tags if "/nginx:" not in t])
    assert len(problems) == 1 and "nginx" in problems[0]
    assert conformance.REPO_LIST["promoterE2eRegistry"] == "k8slab.test/e2e-test-images"


def test_nautilus_is_built_on_agnhost_after_it() -> None:
    specs = conformance.images(REL)
    order = [s.tag for s in specs]
    (nautilus,) = [s for s in specs if "/nautilus:" in s.tag]
    assert order.index(nautilus.base_image) < order.index(nautilus.tag)


def test_nonewprivs_is_nnp_built_like_agnhost_setuid_and_tagged_as_e2e_test_asks() -> None:
    # The AllowPrivilegeEscalation [Conformance] spec runs it (common/node/security_context.go).
    (build,) = [b for b in conformance.go_builds(REL) if b.component == "nonewprivs"]
    (nnp,) = build.binaries
    assert (build.module, nnp.name) == (conformance.MODULE, "nnp")
    assert nnp.package == "k8s.io/kubernetes/test/images/nonewprivs"
    assert not build.test and not build.cgo  # a static go build, as agnhost
    (spec,) = [s for s in conformance.images(REL) if "/nonewprivs:" in s.tag]
    assert spec.tag == "k8slab.test/e2e-test-images/nonewprivs:1.3"
    assert spec.binaries == ("nnp",)
    dockerfile = (recipe.IMAGES_DIR / spec.context / "Dockerfile").read_text()
    assert "chmod 4755 /out/usr/local/bin/nnp" in dockerfile
    assert 'CMD ["nnp"]' in dockerfile


def test_busybox_is_upstream_s_release_from_debian_s_archive_not_debian_s_build() -> None:
    (busybox,) = conformance.kconfig_builds(REL)
    assert busybox.name == "busybox" and busybox.version == "1.37.0"
    # Debian's .orig tarball is busybox.net's release: its published sha256.
    assert busybox.url == (
        "http://deb.debian.org/debian/pool/main/b/busybox/busybox_1.37.0.orig.tar.bz2"
    )
    assert busybox.sha256 == "3311dff32e746499f4df0d5df04d7eb396382d7e108bb9250e7b519b837043a4"
    assert busybox.options == ("CONFIG_STATIC=y",)  # defconfig otherwise: FROM scratch
    assert busybox.check == VersionCheck(("--help",), "BusyBox v1.37.0 ")
    assert "busybox-static" not in conformance.DEBIAN_PACKAGES
    (spec,) = [s for s in conformance.images(REL) if "/busybox:" in s.tag]
    assert spec.binaries == ("busybox",)
    assert "/usr/bin/busybox" not in (recipe.IMAGES_DIR / spec.context / "Dockerfile").read_text()
    assert conformance.components(REL)["busybox"] == "1.37.0"


def test_the_part_s_hash_follows_its_c_programs(monkeypatch: pytest.MonkeyPatch) -> None:
    base = Manifest(VERSION, "gomod", {}, [])
    first = parts.recipe_hash(conformance.PART, REL, base)
    monkeypatch.setitem(conformance.BUSYBOX_SHA256, "1.37.0", "0" * 64)
    assert parts.recipe_hash(conformance.PART, REL, base) != first


def test_every_image_context_of_the_part_exists() -> None:
    for image in conformance.images(REL):
        assert (recipe.IMAGES_DIR / image.context / "Dockerfile").is_file(), image.context


def test_a_version_without_the_part_s_recipe_is_refused_with_the_pin_command() -> None:
    with pytest.raises(BundleError, match=r"pin-conformance\.sh v1\.35"):
        parts.require_recipe(conformance.PART, release("v1.35.4"))


def _fake_part(cache: Path) -> Path:
    base = bundle_dir(VERSION)
    base.mkdir(parents=True)
    Manifest(VERSION, "gomod", {}, []).write(base)
    folder = parts.part_dir(VERSION, "conformance")
    (folder / "bin").mkdir(parents=True)
    tool = folder / "bin" / "ginkgo"
    tool.write_text("#!/bin/sh\necho 'Ginkgo Version 2.21.0'\n")
    tool.chmod(0o755)
    artifact = Artifact(
        "ginkgo",
        "binary",
        "v2.21.0",
        "test",
        hashlib.sha256(tool.read_bytes()).hexdigest(),
        tool.stat().st_size,
        "bin/ginkgo",
        VersionCheck(("version",), "Ginkgo Version 2.21.0"),
    )
    Manifest(VERSION, "gomod", {}, [artifact], part="conformance").write(folder)
    return folder


def test_a_part_is_verified_listed_and_loaded_beside_its_bundle(cache: Path) -> None:
    folder = _fake_part(cache)
    assert parts.present(VERSION) == ["conformance"]
    assert parts.verify_all(VERSION) == ["conformance"]
    assert parts.load_part(VERSION, "conformance").part == "conformance"
    (status,) = list_bundles()
    assert status.parts == ("conformance",)
    (folder / "bin" / "ginkgo").write_text("#!/bin/sh\necho tampered\n")
    with pytest.raises(BundleError, match="conformance/ginkgo: sha256"):
        parts.verify_all(VERSION)


def test_cli_verify_and_list_name_the_part(cache: Path) -> None:
    _fake_part(cache)
    verified = CliRunner().invoke(main, ["bundle", "verify"])
    assert verified.exit_code == 0, verified.output
    assert "and its conformance part verified" in verified.output
    listed = CliRunner().invoke(main, ["bundle", "list"])
    assert "with conformance" in listed.output


def test_a_missing_part_names_the_command_that_builds_it(cache: Path) -> None:
    with pytest.raises(BundleError, match="--with conformance"):
        parts.load_part(VERSION, "conformance")
    with pytest.raises(BundleError, match="no optional bundle part 'nope'"):
        parts.load_part(VERSION, "nope")


def test_a_part_is_built_only_into_a_complete_bundle(cache: Path) -> None:
    with pytest.raises(BundleError, match=r"`k8slab bundle build --kubernetes v1\.34\.4` first"):
        parts.build_part(VERSION, "conformance")


def test_bundle_build_offers_with_and_refuses_an_unknown_part(cache: Path) -> None:
    result = CliRunner().invoke(main, ["bundle", "build", "--with", "nope"])
    assert result.exit_code == 2
    assert "'nope' is not one of 'conformance', 'cri-dockerd'" in result.output
    offered = CliRunner().invoke(main, ["bundle", "build", "--help"])
    assert "cri-dockerd, Docker Engine's CRI server" in " ".join(offered.output.split())


def test_a_rebuilt_base_bundle_keeps_its_parts(cache: Path) -> None:
    from toolkit.bundle.store import partial_dir, put_in_place

    _fake_part(cache)
    work = partial_dir(VERSION)
    work.mkdir(parents=True)
    Manifest(VERSION, "gomod", {}, [], recipe="new").write(work)
    final = put_in_place(work, VERSION)
    assert Manifest.read(final).recipe == "new"
    assert parts.present(VERSION) == ["conformance"]
    assert parts.verify_all(VERSION) == ["conformance"]


def test_a_part_s_configuration_is_written_into_it_as_a_checked_file(tmp_path: Path) -> None:
    artifact = parts._config_artifact(conformance.PART, REL, tmp_path)
    written = tmp_path / conformance.REPO_LIST_FILE
    assert yaml.safe_load(written.read_text()) == conformance.REPO_LIST
    assert (artifact.kind, artifact.path) == ("file", conformance.REPO_LIST_FILE)
    assert artifact.sha256 == hashlib.sha256(written.read_bytes()).hexdigest()


def test_a_built_part_is_reused_and_the_base_bundle_is_left_as_it_was(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_dir = bundle_dir(VERSION)
    base_dir.mkdir(parents=True)
    Manifest(VERSION, "gomod", {}, [], recipe.recipe_hash(REL, images.debian_base_tag())).write(
        base_dir
    )
    before = (base_dir / "bundle.json").read_bytes()
    folder = parts.part_dir(VERSION, "cri-dockerd")
    folder.mkdir()
    wanted = parts.recipe_hash(cri_dockerd.PART, REL, Manifest.read(base_dir))
    Manifest(VERSION, "gomod", {}, [], wanted, part="cri-dockerd").write(folder)
    monkeypatch.setenv("PATH", "/nonexistent")  # a build would fail in preflight
    result = CliRunner().invoke(main, ["bundle", "build", "--with", "cri-dockerd"])
    assert result.exit_code == 0, result.output
    assert result.output.count("already built") == 2, result.output
    assert (base_dir / "bundle.json").read_bytes() == before
