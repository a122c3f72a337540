"""The bundle's optional ``cilium`` part, without Go, helm or docker: its recipe hangs
together, its builds are stamped as upstream's, and a rendered manifest is checked for
what the lab relies on (the part's images only, the chaining, the masked sysctls)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from toolkit.bundle import cilium, conformance, gobuild, parts
from toolkit.bundle.recipe import GoBinary, GoBuild
from toolkit.constants import CILIUM_MACHINE_SYSCTLS, IMAGE_REGISTRY
from toolkit.paths import REPO_ROOT
from toolkit.versions import release, supported_versions

REL = release("v1.34.4")


@pytest.mark.parametrize("version", supported_versions())
def test_cilium_has_its_go_modules_for_each_version(version: str) -> None:
    rel = release(version)
    parts.require_recipe(cilium.PART, rel)
    for build in cilium.go_builds(rel):
        go_mod = (build.module_dir(rel.minor) / "go.mod").read_text()
        for binary in build.binaries:
            assert f"\t{binary.package}\n" in go_mod or f"tool {binary.package}\n" in go_mod


def test_cilium_carries_its_gobgp_fork_and_the_hash_upstream_recorded() -> None:
    folder = parts.recipe.GOMOD_DIR / REL.minor / cilium.GO_MODULE
    fork = "github.com/cilium/gobgp/v3 v3.0.0-20260130142103-27e5da2a39e6"
    assert f"github.com/osrg/gobgp/v3 => {fork}" in (folder / "go.mod").read_text()
    # The checksum database does not know the fork: go.sum holds the hash cilium's go.sum has.
    assert f"{fork} h1:" in (folder / "go.sum").read_text()


def test_the_version_stamp_is_the_three_fields_pkg_version_parses() -> None:
    agent, operator, helm = cilium.go_builds(REL)
    (stamp,) = agent.ldflags
    value = re.fullmatch(r"-X '[^=]+\.ciliumVersion=(.+)'", stamp)
    assert value is not None
    assert value[1].split(" ") == ["1.19.7", "v1.19.7", cilium.VERSION_DATE]
    assert operator.ldflags == agent.ldflags
    assert helm.binaries[0].check is not None and helm.binaries[0].check.expect == "v3.22.0"


def test_the_operator_is_upstream_s_generic_variant() -> None:
    (operator,) = [b for b in cilium.go_builds(REL) if b.component == "cilium-operator"]
    assert operator.tags == ("ipam_provider_operator",)
    assert operator.binaries[0].name == "cilium-operator-generic"


def test_build_tags_reach_go_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def fake_run(argv: list[str], **kwargs: Any) -> str:
        seen.append(list(argv))
        out = Path(argv[argv.index("-o") + 1])
        (out / "operator").write_text("binary")
        return ""

    monkeypatch.setattr(gobuild, "run", fake_run)
    binary = GoBinary(
        "cilium-operator-generic", "github.com/cilium/cilium/operator", "binary", "v", None
    )
    build = GoBuild("cilium", "cilium-operator", "v", (), (binary,), tags=("a", "b"))
    gobuild.compile_build("go", build, "v1.34", tmp_path, tmp_path / "log")
    (argv,) = seen
    assert argv[argv.index("-tags") + 1] == "a,b"
    assert (tmp_path / "cilium-operator-generic").is_file()


def test_images_are_the_part_s_own_under_k8slab_s_registry_name() -> None:
    agent, operator = cilium.images(REL)
    assert agent.tag == cilium.AGENT_IMAGE == f"{IMAGE_REGISTRY}/cilium/cilium:v1.19.7"
    assert operator.tag.startswith(f"{IMAGE_REGISTRY}/cilium/")
    assert conformance.REGISTRY == IMAGE_REGISTRY
    # The agent compiles its datapath when it starts: clang in its image, bpf/ beside it.
    assert agent.debian_base and "clang-19" in cilium.DEBIAN_PACKAGES
    assert "bpf" in agent.binaries and cilium.MODULE_FILES["bpf"] == "bpf"
    for spec in (agent, operator):
        assert (parts.recipe.IMAGES_DIR / spec.context / "Dockerfile").is_file()


def test_each_chained_cni_s_values_name_the_network_its_role_writes() -> None:
    flannel = (REPO_ROOT / "roles/cni_flannel/templates/flannel.yaml.j2").read_text()
    bridge = (REPO_ROOT / "roles/cni_bridge/templates/bridge.conflist.j2").read_text()
    written = {"flannel": flannel, "bridge": bridge}
    for cni in cilium.CHAINED_AFTER:
        values = yaml.safe_load((cilium.VALUES_DIR / f"{cni}.yaml").read_text())
        assert f'"name": "{values["cni"]["chainingTarget"]}"' in written[cni]


def _manifest(target: str) -> list[dict[str, Any]]:
    mounts = [
        {"mountPath": f"/host/proc/sys/{s.replace('.', '/')}", "readOnly": True}
        for s in CILIUM_MACHINE_SYSCTLS
    ]
    agent = {"name": "cilium-agent", "image": cilium.AGENT_IMAGE, "volumeMounts": mounts}
    return [
        {
            "kind": "ConfigMap",
            "metadata": {"name": "cilium-config"},
            "data": {"cni-chaining-mode": "generic-veth", "cni-chaining-target": target},
        },
        {
            "kind": "DaemonSet",
            "metadata": {"name": "cilium"},
            "spec": {"template": {"spec": {"containers": [agent], "initContainers": []}}},
        },
        {
            "kind": "Deployment",
            "metadata": {"name": "cilium-operator"},
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "o", "image": cilium.OPERATOR_IMAGE}]}
                }
            },
        },
    ]


def _text(objects: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects)


def test_a_sound_manifest_has_no_problems() -> None:
    assert cilium.manifest_problems(_text(_manifest("k8slab-bridge")), "bridge") == []
    assert cilium.manifest_problems(_text(_manifest("cbr0")), "flannel") == []


def test_a_manifest_is_refused_for_an_upstream_image_a_wrong_chain_or_a_writable_sysctl() -> None:
    objects = _manifest("cbr0")
    wrong = copy.deepcopy(objects)
    wrong[1]["spec"]["template"]["spec"]["initContainers"] = [{"image": "quay.io/cilium/cilium"}]
    assert "does not hold" in " ".join(cilium.manifest_problems(_text(wrong), "flannel"))
    assert "cni-chaining-target" in " ".join(cilium.manifest_problems(_text(objects), "bridge"))
    writable = copy.deepcopy(objects)
    writable[1]["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][1]["readOnly"] = False
    (problem,) = cilium.manifest_problems(_text(writable), "flannel")
    assert "kernel.timer_migration is not read-only" in problem


def test_the_part_s_manifests_are_files_of_its_own(tmp_path: Path) -> None:
    assert [cilium.manifest_path(c) for c in cilium.CHAINED_AFTER] == [
        "manifests/cilium-flannel.yaml",
        "manifests/cilium-bridge.yaml",
    ]
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "cilium-bridge.yaml").write_text("x: 1\n")
    artifact = parts._file_artifact(
        cilium.PART, REL, tmp_path, "manifests/cilium-bridge.yaml", "rendered file"
    )
    assert (artifact.kind, artifact.path, artifact.size) == (
        "file",
        "manifests/cilium-bridge.yaml",
        5,
    )
    assert json.dumps(artifact.sha256)


def test_the_pin_command_names_every_package_the_part_builds() -> None:
    built = {
        binary.package.removeprefix(f"{cilium.MODULE}/")
        for build in cilium.go_builds(REL)
        if build.module == cilium.GO_MODULE
        for binary in build.binaries
    }
    assert built == set(cilium.PACKAGES)
    command = cilium._pin_command(REL)
    assert all(f"{cilium.MODULE}/{p} " in command for p in cilium.PACKAGES)
