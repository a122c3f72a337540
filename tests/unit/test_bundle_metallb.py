"""The bundle's metallb part, without Go or docker: its pins hang together, its images are
under k8slab's own registry name, upstream's manifest is carried only with its pinned
sha256 and only when it runs exactly the images the part redirects, and MetalLB's programs
are checked by the version they print on their way out."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import pytest
import yaml

from toolkit.bundle import conformance, metallb, parts, recipe
from toolkit.bundle.manifest import Artifact, Manifest, VersionCheck
from toolkit.bundle.store import check_artifact
from toolkit.constants import IMAGE_REGISTRY
from toolkit.errors import BundleError
from toolkit.versions import release, supported_versions

REL = release("v1.34.4")


@pytest.mark.parametrize("version", supported_versions())
def test_each_version_pins_metallb_s_module_with_both_programs_as_tools(version: str) -> None:
    rel = release(version)
    parts.require_recipe(metallb.PART, rel)
    (build,) = metallb.go_builds(rel)
    go_mod = (build.module_dir(rel.minor) / "go.mod").read_text()
    assert "\tgo.universe.tf/metallb v0.15.2 // indirect\n" in go_mod
    for binary in build.binaries:
        assert f"\t{binary.package}\n" in go_mod, binary
    assert (build.module_dir(rel.minor) / "go.sum").is_file()


def test_the_programs_are_checked_by_the_version_they_print_before_refusing_to_run() -> None:
    (build,) = metallb.go_builds(REL)
    checks = {b.name: b.check for b in build.binaries}
    assert checks == {
        "metallb-controller": VersionCheck(
            ("--tls-min-version=none",), "MetalLB controller starting version 0.15.2", 1
        ),
        "metallb-speaker": VersionCheck((), "MetalLB speaker starting version 0.15.2", 1),
    }


def test_the_images_are_under_k8slab_s_own_registry_name_like_conformance_s() -> None:
    assert conformance.REGISTRY == IMAGE_REGISTRY == "k8slab.test"
    tags = [spec.tag for spec in metallb.images(REL)]
    assert tags == [
        "k8slab.test/metallb/controller:v0.15.2",
        "k8slab.test/metallb/speaker:v0.15.2",
    ]
    assert metallb.REDIRECTS == {
        "quay.io/metallb/controller:v0.15.2": "k8slab.test/metallb/controller:v0.15.2",
        "quay.io/metallb/speaker:v0.15.2": "k8slab.test/metallb/speaker:v0.15.2",
    }
    for spec in metallb.images(REL):
        dockerfile = (recipe.IMAGES_DIR / spec.context / "Dockerfile").read_text()
        assert dockerfile.startswith("#") and "FROM scratch" in dockerfile
        assert all(f"COPY {name} " in dockerfile for name in spec.binaries), spec


MANIFEST = """apiVersion: apps/v1
kind: Deployment
spec: {template: {spec: {containers: [{name: controller, image: %s}]}}}
---
apiVersion: apps/v1
kind: DaemonSet
spec: {template: {spec: {initContainers: [{name: i, image: %s}], containers: [{image: %s}]}}}
"""


def test_the_manifest_must_run_exactly_the_redirected_images() -> None:
    controller, speaker = metallb.REDIRECTS
    assert metallb.redirect_problems(MANIFEST % (controller, speaker, speaker)) == []
    assert metallb.redirect_problems(MANIFEST % (controller, "quay.io/frr:9", speaker)) == [
        "metallb-native.yaml runs quay.io/frr:9, which the part does not build"
    ]
    assert metallb.redirect_problems(MANIFEST % (controller, controller, controller)) == [
        f"metallb-native.yaml does not run {speaker}, which the part redirects"
    ]


def test_the_part_carries_upstream_s_manifest_under_its_pinned_sha256(tmp_path: Path) -> None:
    (pinned,) = metallb.PART.files
    assert (pinned.name, pinned.path, pinned.sha256) == (
        "metallb-native.yaml",
        "manifests/metallb-native.yaml",
        metallb.MANIFEST_SHA256,
    )
    assert metallb.PART.config == metallb.REDIRECTS
    source = tmp_path / "metallb-native.yaml"
    source.write_text("kind: Namespace\n")
    wrong = dataclasses.replace(pinned, sha256="0" * 64)
    with pytest.raises(BundleError, match=r"has sha256 .* not the pinned 0{64}; refusing it"):
        parts._pinned_artifact(metallb.PART, wrong, source, tmp_path / "work")
    right = dataclasses.replace(pinned, sha256=hashlib.sha256(source.read_bytes()).hexdigest())
    artifact, placed = parts._pinned_artifact(metallb.PART, right, source, tmp_path / "work")
    assert placed.read_bytes() == source.read_bytes()
    assert (artifact.kind, artifact.path, artifact.sha256) == ("file", pinned.path, right.sha256)
    assert check_artifact(tmp_path / "work", artifact) == []


def test_the_pinned_sha256_is_in_the_part_s_hash() -> None:
    base = Manifest(REL.version, "gomod", {}, [])
    first = parts.recipe_hash(metallb.PART, REL, base)
    (pinned,) = metallb.PART.files
    moved = dataclasses.replace(metallb.PART, files=(dataclasses.replace(pinned, sha256="1" * 64),))
    assert parts.recipe_hash(moved, REL, base) != first


def test_a_check_s_exit_status_of_0_stays_out_of_the_parts_hashes() -> None:
    binary = recipe.GoBinary("x", "example.com/x", "binary", "v1", VersionCheck(("-v",), "x"))
    build = recipe.GoBuild("m", "x", "v1", (), (binary,))
    fields = parts._fields(build)
    assert "exit_status" not in fields["binaries"][0]["check"]
    assert fields["binaries"][0]["check"] == {"argv": ("-v",), "expect": "x"}
    failing = dataclasses.replace(binary, check=VersionCheck(("-v",), "x", 1))
    described = parts._fields(dataclasses.replace(build, binaries=(failing,)))
    assert described["binaries"][0]["check"]["exit_status"] == 1
    # Nor in the base bundle's recipe hash, which is made from repr().
    assert "exit_status" not in repr(binary)


def _program(folder: Path, exit_status: int) -> Artifact:
    path = folder / "prog"
    path.write_text(f"#!/bin/sh\necho 'prog starting version 1.2'\nexit {exit_status}\n")
    os.chmod(path, 0o755)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    check = VersionCheck((), "starting version 1.2", 1)
    return Artifact("prog", "binary", "v1.2", "t", digest, path.stat().st_size, "prog", check)


def test_a_version_check_wants_the_exit_status_it_names(tmp_path: Path) -> None:
    assert check_artifact(tmp_path, _program(tmp_path, 1)) == []
    (problem,) = check_artifact(tmp_path, _program(tmp_path, 0))
    assert "should print 'starting version 1.2' and exit 1" in problem
    assert problem.endswith("(exit 0)")


def test_a_manifest_keeps_a_check_s_exit_status_and_reads_old_ones_as_0(tmp_path: Path) -> None:
    artifact = _program(tmp_path, 1)
    Manifest(REL.version, "gomod", {}, [artifact], part="metallb").write(tmp_path)
    assert Manifest.read(tmp_path).artifacts[0].check == artifact.check
    data = yaml.safe_load((tmp_path / "bundle.json").read_text())
    del data["artifacts"][0]["check"]["exit_status"]
    old = Manifest.from_dict(data, tmp_path)
    assert old.artifacts[0].check == VersionCheck((), "starting version 1.2")
