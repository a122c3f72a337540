"""The bundle's add-on parts (`bundle build --with addons`, `--with k9s`), without Go or
docker: their recipe hangs together and each program reports the version it is pinned at."""

from __future__ import annotations

import re

import pytest

from toolkit.bundle import addons, conformance, k9s, parts, recipe
from toolkit.bundle.manifest import Manifest
from toolkit.bundle.part import Part
from toolkit.constants import IMAGE_REGISTRY
from toolkit.versions import release, supported_versions

REL = release("v1.34.4")


@pytest.mark.parametrize("version", supported_versions())
@pytest.mark.parametrize("part", [addons.PART, k9s.PART])
def test_each_add_on_module_is_pinned_for_every_version(part: Part, version: str) -> None:
    rel = release(version)
    parts.require_recipe(part, rel)
    for build in part.go_builds(rel):
        go_mod = (build.module_dir(rel.minor) / "go.mod").read_text()
        assert (build.module_dir(rel.minor) / "go.sum").is_file()
        for binary in build.binaries:
            assert re.search(rf"^\s*(tool\s+)?{re.escape(binary.package)}$", go_mod, re.M)


@pytest.mark.parametrize(
    ("module", "require"),
    [
        ("metrics-server", "sigs.k8s.io/metrics-server v0.8.0"),
        ("kube-state-metrics", "k8s.io/kube-state-metrics/v2 v2.13.0"),
        ("node-exporter", "github.com/prometheus/node_exporter v1.12.1"),
        ("victorialogs", "github.com/VictoriaMetrics/VictoriaLogs v1.52.1"),
        ("k9s", "github.com/derailed/k9s v0.50.16"),
    ],
)
def test_each_module_requires_the_exact_release(module: str, require: str) -> None:
    assert require in (recipe.GOMOD_DIR / REL.minor / module / "go.mod").read_text()


def test_each_program_is_stamped_with_the_version_its_check_expects() -> None:
    for build in addons.go_builds(REL) + k9s.go_builds(REL):
        (binary,) = build.binaries
        assert binary.check is not None
        stamped = " ".join(build.ldflags)
        assert binary.check.expect.removeprefix(f"{binary.name}, version ") in stamped, binary


def test_victoria_logs_and_vlagent_are_built_apart_each_naming_itself() -> None:
    by_name = {b.binaries[0].name: b for b in addons.go_builds(REL)}
    assert "Version=victoria-logs-v1.52.1" in by_name["victoria-logs"].ldflags[0]
    assert "Version=vlagent-v1.52.1" in by_name["vlagent"].ldflags[0]


def test_the_images_are_under_k8slab_s_own_registry_name_as_conformance_s() -> None:
    assert conformance.REGISTRY == IMAGE_REGISTRY
    for spec in addons.images(REL):
        assert spec.tag.startswith(f"{IMAGE_REGISTRY}/"), spec
        assert (recipe.IMAGES_DIR / spec.context / "Dockerfile").is_file(), spec.context
    assert set(addons.IMAGES.values()) == {s.tag for s in addons.images(REL)}


def test_the_static_programs_run_from_scratch_and_prometheus_on_debian_s_package() -> None:
    built = {b.binaries[0].name for b in addons.go_builds(REL)}
    for spec in addons.images(REL):
        dockerfile = (recipe.IMAGES_DIR / spec.context / "Dockerfile").read_text()
        if spec.debian_base:
            assert spec.binaries == ()
            assert "FROM ${BASE}" in dockerfile
        else:
            assert "FROM scratch" in dockerfile
            assert set(spec.binaries) <= built


def test_the_prometheus_image_refuses_another_version_than_the_part_names() -> None:
    dockerfile = (recipe.IMAGES_DIR / "addons" / "prometheus" / "Dockerfile").read_text()
    version = re.escape(addons.PROMETHEUS.lstrip("v")).replace("\\.", "\\\\.")
    assert re.search(rf"version {version}\[", dockerfile), dockerfile
    assert addons.PART.debian_packages == ("prometheus",)


def test_the_add_on_parts_hash_leaves_the_base_bundle_alone() -> None:
    base = Manifest("v1.34.4", "gomod", {}, [])
    assert parts.recipe_hash(addons.PART, REL, base) != parts.recipe_hash(k9s.PART, REL, base)
    assert parts.build_command("v1.34.4", "addons").endswith("--with addons")
