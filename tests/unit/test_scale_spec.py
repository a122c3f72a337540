"""`k8slab scale`'s checks and spec edits, with no host: what is refused (all at once,
before anything changes), which address is chosen, and the spec edited in place with its
comments and style kept, read back as the same lab plus or minus exactly those nodes."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from tests.helpers.lab_specs import BASE, external, mutated, write_spec
from toolkit.errors import SpecError
from toolkit.lab.loader import read_spec_text
from toolkit.lab.spec import Lab, Role, load_lab
from toolkit.scale.plan import (
    ScaleError,
    ScalePlan,
    ScaleRequest,
    members_text,
    next_zone,
    plan,
    quorum_problem,
)
from toolkit.scale.spec_edit import NewNode, difference_problem, edited

COMMENTED = """\
# A lab with comments everywhere: they must all survive an edit.
name: demo
provider: docker
kubernetes_version: v1.34.4
etcd_topology: stacked  # kubeadm's default
container_runtime: containerd
cni: flannel
network:
  subnet: 172.30.9.0/24
  pod_cidr: 10.244.0.0/16
  service_cidr: 10.96.0.0/16
api_endpoint:
  vip: 172.30.9.100
  port: 8443
nodes:
  # the control planes
  control_planes:
    - {name: cp1, address: 172.30.9.11}
  # the workers, multi-line
  workers:
    - name: w1
      address: 172.30.9.21
      memory_mb: 1536  # small

    # a comment after the last worker
# a comment at the end
"""


def spec_file(tmp_path: Path, text: str = COMMENTED) -> Lab:
    return load_lab(write_spec(tmp_path, text))


def ip(text: str) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(text)


# --- editing the text ----------------------------------------------------------------------


def test_adding_a_worker_keeps_every_comment_and_the_multi_line_style(tmp_path: Path) -> None:
    lab = spec_file(tmp_path)
    text, after = edited(lab, COMMENTED, [NewNode(Role.WORKER, "w2", ip("172.30.9.22"))], [])
    assert "    - name: w2\n      address: 172.30.9.22\n" in text
    assert text.index("memory_mb: 1536  # small") < text.index("- name: w2")
    for line in COMMENTED.splitlines():
        assert line in text.splitlines()
    assert [n.name for n in after.workers] == ["w1", "w2"]


def test_adding_to_a_flow_style_group_keeps_its_style(tmp_path: Path) -> None:
    lab = spec_file(tmp_path)
    new = [
        NewNode(Role.CONTROL_PLANE, n, ip(f"172.30.9.1{i}")) for i, n in ((2, "cp2"), (3, "cp3"))
    ]
    text, after = edited(lab, COMMENTED, new, [])
    assert "    - {name: cp2, address: 172.30.9.12}\n    - {name: cp3, address: 172.30.9.13}\n" in (
        text
    )
    assert [n.name for n in after.control_planes] == ["cp1", "cp2", "cp3"]


def test_a_removal_then_the_same_addition_gives_the_text_back(tmp_path: Path) -> None:
    lab = spec_file(tmp_path)
    w2 = NewNode(Role.WORKER, "w2", ip("172.30.9.22"))
    added, after = edited(lab, COMMENTED, [w2], [])
    removed, again = edited(after, added, [], ["w2"])
    assert removed == COMMENTED
    assert again == lab


def test_removing_the_last_worker_leaves_an_empty_list(tmp_path: Path) -> None:
    lab = spec_file(tmp_path)
    text, after = edited(lab, COMMENTED, [], ["w1"])
    assert "  workers: []\n" in text
    assert "# a comment after the last worker" in text
    assert after.workers == []


def test_a_group_the_spec_lacks_is_added_under_nodes(tmp_path: Path) -> None:
    text = COMMENTED[: COMMENTED.index("  # the workers")]
    lab = spec_file(tmp_path, text)
    edited_text, after = edited(lab, text, [NewNode(Role.WORKER, "w1", ip("172.30.9.21"))], [])
    assert edited_text.endswith("  workers:\n    - {name: w1, address: 172.30.9.21}\n")
    assert [n.name for n in after.workers] == ["w1"]


def test_flow_sequences_are_edited_inside_their_brackets(tmp_path: Path) -> None:
    text = COMMENTED.replace(
        "  workers:\n    - name: w1\n      address: 172.30.9.21\n      memory_mb: 1536  # small\n",
        "  workers: [{name: w1, address: 172.30.9.21}, {name: w2, address: 172.30.9.22}]\n",
    )
    lab = spec_file(tmp_path, text)
    added, after = edited(lab, text, [NewNode(Role.WORKER, "w3", ip("172.30.9.23"))], [])
    assert "{name: w2, address: 172.30.9.22}, {name: w3, address: 172.30.9.23}]" in added
    first_gone, _ = edited(after, added, [], ["w1"])
    assert "[{name: w2, address: 172.30.9.22}, {name: w3" in first_gone
    last_gone, _ = edited(after, added, [], ["w3"])
    assert last_gone == text


def test_every_shipped_lab_takes_a_worker_and_gives_it_back() -> None:
    for name in ("ha-stacked", "ha-external", "single", "bridge", "runtimes"):
        lab = load_lab(name)
        text = read_spec_text(lab.source)
        zone = next_zone(lab, [])
        new = NewNode(Role.WORKER, "w9", lab.network.subnet.network_address + 29, zone)
        added, after = edited(lab, text, [new], [])
        assert edited(after, added, [], ["w9"])[0] == text, name


def test_an_edit_that_changes_anything_else_is_named() -> None:
    before = load_lab("ha-stacked")
    other = load_lab("single")
    assert "a setting other than the nodes changed" in difference_problem(before, other, [], [])
    assert difference_problem(before, before, [], ["w2"]).startswith("nodes are")


def test_removing_an_unknown_node_from_the_text_is_refused(tmp_path: Path) -> None:
    lab = spec_file(tmp_path)
    with pytest.raises(SpecError, match="has no node 'w7' under nodes:"):
        edited(lab, COMMENTED, [], ["w7"])


# --- checking the request ------------------------------------------------------------------


def planned(tmp_path: Path, request: ScaleRequest, data: object = BASE) -> ScalePlan:
    path = write_spec(tmp_path, data)
    lab = load_lab(path)
    return plan(lab, read_spec_text(path), request)


def test_the_next_free_address_after_the_role_is_chosen_and_said(tmp_path: Path) -> None:
    result = planned(tmp_path, ScaleRequest(add_workers=("w2", "w3")))
    assert [str(n.address) for n in result.added] == ["172.30.9.22", "172.30.9.23"]
    assert result.chosen == ("w2", "w3")
    assert result.kind == "add"


def test_every_bad_name_and_address_is_refused_at_once(tmp_path: Path) -> None:
    request = ScaleRequest(
        add_workers=("Bad_Name", "cp1", "w5", "w5", "w6", "w7", "w8", "w9"),
        addresses=(
            "172.30.9.50",
            "172.30.9.51",
            "172.30.9.52",
            "172.30.9.53",
            "10.1.1.1",
            "172.30.9.100",
            "172.30.9.1",
            "172.30.9.255",
        ),
    )
    with pytest.raises(ScaleError) as refused:
        planned(tmp_path, request)
    message = str(refused.value)
    assert "nothing was changed" in message
    for expected in (
        "'Bad_Name' is not a valid node name",
        "'cp1' is already a node of demo",
        "'w5' is asked for twice",
        "--address for w6: 10.1.1.1 is outside the lab subnet 172.30.9.0/24",
        "--address for w7: 172.30.9.100 is taken by the API's virtual IP",
        "--address for w8: 172.30.9.1 is taken by the lab network's gateway",
        "--address for w9: 172.30.9.255 is the network or broadcast address",
    ):
        assert expected in message


def test_the_load_balancer_pool_is_never_a_new_node_s(tmp_path: Path) -> None:
    # The workers' next free address would be .22, the pool's first.
    pool = mutated(lambda d: d.update(load_balancer={"pool": ["172.30.9.22-172.30.9.23"]}))
    result = planned(tmp_path, ScaleRequest(add_workers=("w2",)), pool)
    assert [str(n.address) for n in result.added] == ["172.30.9.24"]
    with pytest.raises(
        ScaleError,
        match=r"172\.30\.9\.23 is taken by load_balancer\.pool \(172\.30\.9\.22-172\.30\.9\.23\)",
    ):
        planned(tmp_path, ScaleRequest(add_workers=("w3",), addresses=("172.30.9.23",)), pool)


def test_an_address_of_another_node_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScaleError, match=r"172.30.9.21 is taken by node w1"):
        planned(tmp_path, ScaleRequest(add_workers=("w2",), addresses=("172.30.9.21",)))


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (ScaleRequest(), "nothing to do"),
        (ScaleRequest(add_workers=("w2",), remove=("w1",)), "adding and removing nodes are two"),
        (ScaleRequest(add_workers=("w2", "w3"), addresses=("172.30.9.22",)), "--address given 1"),
        (ScaleRequest(remove=("w7",)), "demo has no node 'w7'"),
    ],
)
def test_requests_that_cannot_be_planned(
    tmp_path: Path, request_: ScaleRequest, message: str
) -> None:
    with pytest.raises(ScaleError, match=message):
        planned(tmp_path, request_)


def test_stacked_control_planes_go_two_at_a_time_with_the_arithmetic(tmp_path: Path) -> None:
    with pytest.raises(ScaleError) as refused:
        planned(tmp_path, ScaleRequest(add_control_planes=("cp4",)))
    assert (
        "3 control planes are 3 members (quorum 2, 1 may fail) and 4 would be 4 members "
        "(quorum 3, 1 may fail)"
    ) in str(refused.value)
    assert "add control planes two at a time, so that the count stays odd (3 to 5)" in str(
        refused.value
    )
    two = planned(tmp_path, ScaleRequest(add_control_planes=("cp4", "cp5")))
    assert [str(n.address) for n in two.added] == ["172.30.9.14", "172.30.9.15"]
    with pytest.raises(ScaleError, match=r"remove control planes two at a time.*\(3 to 1\)"):
        planned(tmp_path, ScaleRequest(remove=("cp3",)))
    down = planned(tmp_path, ScaleRequest(remove=("cp2", "cp3")))
    assert [n.name for n in down.after.control_planes] == ["cp1"]


def test_never_below_one_control_plane(tmp_path: Path) -> None:
    one = mutated(lambda d: d["nodes"].update(control_planes=d["nodes"]["control_planes"][:1]))
    with pytest.raises(ScaleError, match="a cluster needs at least one control plane"):
        planned(tmp_path, ScaleRequest(remove=("cp1",)), one)
    assert "would leave 0" in quorum_problem(load_lab(write_spec(tmp_path, one)), -1)


def test_external_etcd_control_planes_go_one_at_a_time_and_etcd_hosts_stay(
    tmp_path: Path,
) -> None:
    data = mutated(external)
    one = planned(tmp_path, ScaleRequest(add_control_planes=("cp4",)), data)
    assert [n.name for n in one.after.control_planes] == ["cp1", "cp2", "cp3", "cp4"]
    with pytest.raises(ScaleError, match="etcd1 is an external etcd host"):
        planned(tmp_path, ScaleRequest(remove=("etcd1",)), data)


def test_the_plan_keeps_the_spec_valid_as_a_whole(tmp_path: Path) -> None:
    # Room for 4 nodes' Pod ranges: a fifth node is refused by the spec's own rules.
    small = mutated(lambda d: d["network"].update(pod_cidr="10.244.0.0/22"))
    with pytest.raises(SpecError, match=r"network\.pod_cidr: 10\.244\.0\.0/22 holds 4"):
        planned(tmp_path, ScaleRequest(add_workers=("w2",)), small)


def test_members_text() -> None:
    assert members_text(1) == "1 member (quorum 1, 0 may fail)"
    assert members_text(5) == "5 members (quorum 3, 2 may fail)"


def test_addresses_pair_with_control_planes_first_then_workers(tmp_path: Path) -> None:
    request = ScaleRequest(
        add_workers=("w2",),
        add_control_planes=("cp4", "cp5"),
        addresses=("172.30.9.44", "172.30.9.45", "172.30.9.42"),
    )
    result = planned(tmp_path, request)
    assert {n.name: str(n.address) for n in result.added} == {
        "cp4": "172.30.9.44",
        "cp5": "172.30.9.45",
        "w2": "172.30.9.42",
    }
    assert result.chosen == ()


def test_a_node_added_to_a_lab_with_a_cloud_goes_to_its_least_used_zone() -> None:
    lab = load_lab("single")  # cp1 in zone-a, w1 in zone-b
    text = read_spec_text(lab.source)
    first = NewNode(Role.WORKER, "w2", lab.network.subnet.network_address + 22, "zone-a")
    assert next_zone(lab, []) == "zone-a"
    assert next_zone(lab, [first]) == "zone-b"
    added, after = edited(lab, text, [first], [])
    assert after.node("w2").zone == "zone-a"
    assert added.count("zone: zone-a") == 2
    assert next_zone(load_lab("ha-stacked"), []) == ""
