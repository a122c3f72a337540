"""The lab spec: the shipped labs load, and every class of invalid spec is refused by name."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from tests.helpers.lab_specs import BASE, INVALID, external, mutated, write_spec
from toolkit.cli import main
from toolkit.errors import EngineError, LabNotFoundError, SpecError
from toolkit.hosts import engine
from toolkit.lab.schema import CNIS, REFUSED_CNIS
from toolkit.lab.spec import Role, available_labs, load_lab


@pytest.mark.parametrize("lab", ["single", "ha-stacked", "ha-external"])
def test_shipped_labs_are_valid(lab: str) -> None:
    model = load_lab(lab)
    assert model.name == lab


def test_shipped_labs_have_the_documented_shape() -> None:
    stacked, ext, single = load_lab("ha-stacked"), load_lab("ha-external"), load_lab("single")
    assert (len(stacked.control_planes), len(stacked.etcd_hosts), len(stacked.workers)) == (3, 0, 2)
    assert (len(ext.control_planes), len(ext.etcd_hosts), len(ext.workers)) == (3, 3, 2)
    assert (len(single.control_planes), len(single.workers)) == (1, 1)
    assert [n.name for n in stacked.etcd_members] == ["cp1", "cp2", "cp3"]
    assert [n.name for n in ext.etcd_members] == ["etcd1", "etcd2", "etcd3"]
    assert set(available_labs()) >= {"single", "ha-stacked", "ha-external"}


def test_subnets_of_shipped_labs_do_not_collide() -> None:
    subnets = [load_lab(name).network.subnet for name in ("single", "ha-stacked", "ha-external")]
    for i, first in enumerate(subnets):
        for second in subnets[i + 1 :]:
            assert not first.overlaps(second)


def test_model_fields(tmp_path: Path) -> None:
    lab = load_lab(write_spec(tmp_path, mutated(lambda d: d.update(node_defaults={"cpus": 3}))))
    assert lab.api_vip == ipaddress.IPv4Address("172.30.9.100")
    assert lab.network.gateway == ipaddress.IPv4Address("172.30.9.1")
    assert all(node.cpus == 3 for node in lab.nodes)
    assert lab.node("w1").role is Role.WORKER
    assert lab.node("w1").role == "workers", "a role is spelled as its group in the spec"
    with pytest.raises(SpecError, match="no node 'nope'"):
        lab.node("nope")


@pytest.mark.parametrize(
    ("change", "expected"), [(c, e) for _, c, e in INVALID], ids=[i for i, _, _ in INVALID]
)
def test_invalid_spec_names_file_field_and_fix(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], expected: str
) -> None:
    path = write_spec(tmp_path, mutated(change))
    with pytest.raises(SpecError) as raised:
        load_lab(path)
    message = str(raised.value)
    assert expected in message
    assert str(path) in message or "lab.yml" in message


def _external_with(**changes: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        external(data)
        for key, value in changes.items():
            data["network" if key == "pod_cidr" else "api_endpoint"][key] = value

    return change


VALID_EDGES: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
    # etcd hosts are not Kubernetes nodes: four ranges for three control planes and a worker
    ("pod-cidr-one-range-per-node", _external_with(pod_cidr="10.244.0.0/22")),
    ("pod-cidr-largest", lambda d: d["network"].update(pod_cidr="100.0.0.0/8")),
    ("service-cidr-smallest", lambda d: d["network"].update(service_cidr="10.96.0.0/28")),
    ("service-cidr-largest", lambda d: d["network"].update(service_cidr="10.96.0.0/12")),
    ("etcd-port-when-external", _external_with(port=2379)),
    ("port-after-node-ports", lambda d: d["api_endpoint"].update(port=32768)),
    (
        "worker-below-control-plane-minimums",
        lambda d: d["nodes"]["workers"][0].update(cpus=1, memory_mb=512),
    ),
]


@pytest.mark.parametrize("change", [c for _, c in VALID_EDGES], ids=[i for i, _ in VALID_EDGES])
def test_edges_of_the_new_refusals_are_valid(
    tmp_path: Path, change: Callable[[dict[str, Any]], None]
) -> None:
    load_lab(write_spec(tmp_path, mutated(change)))


def test_what_the_spec_dooms_is_reported_at_once(tmp_path: Path) -> None:
    def doomed(d: dict[str, Any]) -> None:
        d["network"].update(pod_cidr="10.244.0.0/25", service_cidr="10.96.0.0/29")
        d["api_endpoint"].update(port=10257)
        d["nodes"]["control_planes"][0].update(memory_mb=1024)

    with pytest.raises(SpecError) as raised:
        load_lab(write_spec(tmp_path, mutated(doomed)))
    assert str(raised.value).splitlines()[0].endswith("4 problems in the lab spec")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    def two_problems(d: dict[str, Any]) -> None:
        d.update(cni="flanel", provider="hyperv")

    with pytest.raises(SpecError) as raised:
        load_lab(write_spec(tmp_path, mutated(two_problems)))
    assert "2 problems" in str(raised.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("- just\n- a list\n", "must be a YAML mapping (key: value), but it is a list"),
        ("", "must be a YAML mapping (key: value), but it is empty"),
        ("name: [unclosed\n", "not valid YAML at line"),
    ],
    ids=["list", "empty", "broken-yaml"],
)
def test_unusable_yaml(tmp_path: Path, content: str, expected: str) -> None:
    with pytest.raises(SpecError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load_lab(write_spec(tmp_path, content))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="file not found"):
        load_lab(tmp_path / "nothing" / "lab.yml")


def test_unreadable_file(tmp_path: Path) -> None:
    # A directory where the file belongs cannot be read, even by root (CI runs as root).
    path = tmp_path / "demo" / "lab.yml"
    path.mkdir(parents=True)
    with pytest.raises(SpecError, match="cannot read it"):
        load_lab(path)


def test_unknown_lab_lists_the_known_ones(tmp_path: Path) -> None:
    write_spec(tmp_path, BASE)
    with pytest.raises(LabNotFoundError, match=r"labs under .*: demo"):
        load_lab("nope", inventories=tmp_path)


# --- hostile files: each refused in one line, quickly, before it can cost much ----------


def _text(content: str) -> Callable[[Path], Path]:
    def make(tmp_path: Path) -> Path:
        return write_spec(tmp_path, content)

    return make


def _alias_bomb(tmp_path: Path) -> Path:
    """Nine levels of nine aliases each, 9**9 strings once expanded (the billion laughs),
    under a field whose wrong type a message prints."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    return write_spec(tmp_path, "\n".join([*lines, "name: *a8"]) + "\n")


def _sparse_50_mib(tmp_path: Path) -> Path:
    path = write_spec(tmp_path, "")
    with path.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    return path


def _binary(tmp_path: Path) -> Path:
    path = write_spec(tmp_path, "")
    path.write_bytes(bytes(range(256)) * 16)
    return path


def _symlink_loop(tmp_path: Path) -> Path:
    path = tmp_path / "demo" / "lab.yml"
    path.parent.mkdir(parents=True)
    path.symlink_to(path)
    return path


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "demo" / "lab.yml"
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    return path


SPEC_TEXT = yaml.safe_dump(BASE, sort_keys=False)

REFUSED: list[tuple[str, Callable[[Path], Path], str]] = [
    ("alias-bomb", _alias_bomb, "line 1: anchor &a0: anchors and aliases are not allowed"),
    (
        "alias",
        _text(SPEC_TEXT.replace("nodes:\n", "defaults: &d {cpus: 2}\nnodes:\n")),
        "line 14: anchor &d: anchors and aliases are not allowed in a lab spec",
    ),
    ("merge-key", _text("<<: {name: demo}\nname: demo\n"), "line 1: merge keys (<<)"),
    ("50-mib", _sparse_50_mib, "is 50.0 MiB; a lab spec is at most 32 KiB"),
    ("just-over-the-cap", _text("#" * 32 * 1024 + "\n"), "a lab spec is at most 32 KiB"),
    ("deep-flow-over-the-cap", _text("[" * 100_000), "a lab spec is at most 32 KiB"),
    ("deep-flow", _text("[" * 10_000), "line 1: nested more than 32 levels deep"),
    ("deep-block", _text("- " * 5_000 + "x\n"), "line 1: nested more than 32 levels deep"),
    ("binary", _binary, "is not UTF-8 text (byte 0x80 at offset 128); a lab spec is YAML text"),
    ("nul-byte", _text("name: demo\x00\n"), "line 1: contains a control character (0x00)"),
    ("symlink-loop", _symlink_loop, "is a symbolic link loop; point it at a real lab.yml"),
    ("fifo", _fifo, "is not a regular file; give the path of a lab.yml"),
    ("directory", lambda t: _mkdir(t / "demo" / "lab.yml"), "is a directory; give the path"),
    (
        "duplicate-key",
        _text(SPEC_TEXT + "name: other\n"),
        "line 25: key 'name' appears twice (first on line 1); keep one",
    ),
    (
        "duplicate-nested-key",
        _text(SPEC_TEXT.replace("  port: 8443\n", "  port: 8443\n  vip: 172.30.9.101\n")),
        "line 14: key 'vip' appears twice (first on line 12); keep one",
    ),
]


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


@pytest.mark.parametrize(
    ("make", "expected"), [(m, e) for _, m, e in REFUSED], ids=[i for i, _, _ in REFUSED]
)
def test_hostile_file_is_refused_in_one_line(
    tmp_path: Path, make: Callable[[Path], Path], expected: str
) -> None:
    path = make(tmp_path)
    with pytest.raises(SpecError) as raised:
        load_lab(path)
    message = str(raised.value)
    assert expected in message
    assert message.startswith(str(path)) and "\n" not in message


@pytest.mark.parametrize(
    ("make", "expected"), [(m, e) for _, m, e in REFUSED], ids=[i for i, _, _ in REFUSED]
)
def test_validate_refuses_a_hostile_file_without_a_traceback(
    tmp_path: Path, make: Callable[[Path], Path], expected: str
) -> None:
    result = CliRunner().invoke(main, ["validate", str(make(tmp_path))])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), "refused by the CLI, not crashed"
    assert result.output.startswith("error: ") and result.output.count("\n") == 1
    assert expected in result.output and "Traceback" not in result.output


# The worst inputs through the real command, in a process of its own (real stderr, exit
# status). How long they take and how much memory: benchmarks/bad_input.py records that.
@pytest.mark.parametrize(
    "make", [_alias_bomb, _sparse_50_mib, _text("[" * 10_000)], ids=["alias-bomb", "50-mib", "deep"]
)
def test_worst_inputs_end_in_one_line_without_a_traceback(
    tmp_path: Path, make: Callable[[Path], Path]
) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "from toolkit.cli import main; main()",
            "validate",
            str(make(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 1
    assert run.stderr.startswith("error: ") and run.stderr.count("\n") == 1
    assert "Traceback" not in run.stderr


def test_a_file_without_read_permission_names_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Faked: the tests may run as root, who reads any file whatever its mode.
    path = write_spec(tmp_path, SPEC_TEXT)

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", denied)
    with pytest.raises(SpecError, match="cannot read it: Permission denied; check its perm"):
        load_lab(path)


# --- at `up` time: the spec against this engine's networks (`docker network inspect`) ---


def _docker_network(name: str, subnet: str, default_bridge: bool = False) -> dict[str, Any]:
    """One entry of `docker network inspect`, in the shape the engine gives (trimmed)."""
    options = {"com.docker.network.bridge.default_bridge": "true"} if default_bridge else {}
    return {
        "Name": name,
        "Driver": "bridge",
        "IPAM": {"Config": [{"Subnet": subnet}]},
        "Options": options,
    }


ENGINE_NETWORKS = [
    _docker_network("bridge", "172.17.0.0/16", default_bridge=True),
    _docker_network("host", "", default_bridge=False) | {"IPAM": {"Config": []}},
    _docker_network("k8slab-other", "172.30.9.0/25"),
    _docker_network("compose_default", "10.96.0.0/20"),
    _docker_network("v6", "fd00:1::/64"),
]


def test_up_refuses_every_overlap_with_the_engines_networks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = load_lab(
        write_spec(tmp_path, mutated(lambda d: d["network"].update(pod_cidr="172.17.0.0/16")))
    )
    outputs = {
        "ls": "efec4ac156ea\n070bddc41cf0\n6720d1c99ba4\n1234\n5678\n",
        "inspect": json.dumps(ENGINE_NETWORKS),
    }

    def fake_run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        assert args[:2] == ["docker", "network"]
        return subprocess.CompletedProcess(args, 0, outputs[args[2]], "")

    monkeypatch.setattr(engine, "run", fake_run)
    with pytest.raises(EngineError) as raised:
        engine._refuse_overlap(lab)
    lines = str(raised.value).splitlines()
    assert lines[0] == f"{lab.source}: 2 problems with this engine's networks"
    assert lines[1:] == [
        f"  {lab.source}: network.pod_cidr: 172.17.0.0/16 overlaps docker's default bridge "
        "bridge, which every node also joins (172.17.0.0/16); choose another range",
        f"  {lab.source}: network.subnet: 172.30.9.0/24 overlaps docker network k8slab-other "
        "(172.30.9.0/25); choose another range or remove that network",
    ]


def test_up_lets_other_networks_hold_the_pod_and_service_ranges(tmp_path: Path) -> None:
    # Only the default bridge reaches into the nodes: another network may use the ranges.
    lab = load_lab(write_spec(tmp_path, BASE))
    others = [_docker_network("a", "10.244.0.0/16"), _docker_network("b", "10.96.0.0/12")]
    assert engine.overlap_problems(lab, others) == []
    assert engine.overlap_problems(lab, [_docker_network("bridge", "172.17.0.0/16", True)]) == []


def test_deep_flow_nesting_is_refused_before_yaml_reads_it() -> None:
    from toolkit.lab.loader import _too_deep_at

    assert _too_deep_at("a: 1\nb: " + "[" * 33) == 2
    assert _too_deep_at("a: '" + "[" * 40 + "'\n") is None, "inside quotes"
    assert _too_deep_at('a: "\\"' + "{" * 40 + '"\n') is None, "an escaped quote"
    assert _too_deep_at("a: 1 # " + "[" * 40 + "\nb: [[1]]\n") is None, "a comment"
    assert _too_deep_at("a: " + "[" * 32 + "]" * 32) is None, "32 levels are allowed"


@pytest.mark.parametrize("cni", sorted(REFUSED_CNIS))
def test_a_refused_cni_is_named_with_its_reason(tmp_path: Path, cni: str) -> None:
    with pytest.raises(SpecError) as refused:
        load_lab(write_spec(tmp_path, mutated(lambda d: d.update(cni=cni))))
    expected = f"cni: {cni!r} is not offered: {REFUSED_CNIS[cni]}; use one of: flannel, bridge"
    assert expected in str(refused.value)
    assert not set(CNIS) & set(REFUSED_CNIS)
