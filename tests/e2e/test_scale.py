"""End to end: `k8slab scale` grows and shrinks a lab, on a renamed copy of a shipped lab
with a subnet of its own (tests/e2e/spec_copies.py), so the lab the other tests check is
never disturbed. A worker is added, verified, removed (the run killed in the middle and
resumed by running it again), verified, and a second provision changes nothing; then
control planes are added and removed (two at a time on stacked etcd, one on external),
with verify green after each and the spec given back exactly as it was.

Destructive (it creates and destroys hosts), so only `scripts/test --full` runs it: on a
copy of each lab of $K8SLAB_E2E_LABS that is ha-stacked, ha-external or bridge. The copy
comes up before the session's own labs (its tests carry no lab of LAB_ORDER) and is gone
before they come up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from tests.e2e.conftest import LABS
from tests.e2e.spec_copies import up_copy
from tests.helpers.processes import killed_when
from toolkit import kube
from toolkit.cli import main
from toolkit.etcd import cluster
from toolkit.etcd.topology import Topology
from toolkit.hosts import engine, remote
from toolkit.hosts.engine import DockerNames
from toolkit.lab.spec import Lab, load_lab
from toolkit.progress import Progress
from toolkit.provision.run import provision
from toolkit.scale import journal
from toolkit.verify import run_verify
from toolkit.verify.report import render_table

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.destructive]

SCALED = ("ha-stacked", "ha-external", "bridge")
COPIES = [f"{lab}-scale" for lab in LABS if lab in SCALED]


@pytest.fixture(scope="module", params=COPIES)
def copy(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    source = request.param.removesuffix("-scale")
    yield from up_copy(source, tmp_path_factory.mktemp("specs"), "scale")


def scale(lab: Lab, *args: str) -> str:
    result = CliRunner().invoke(main, ["scale", str(lab.source), *args])
    assert result.exit_code == 0, result.output
    return result.output


def verified(lab: Lab) -> Lab:
    """The lab as its spec now says, every check of verify passed."""
    now = load_lab(lab.source)
    report = run_verify(now, progress=Progress())
    assert report.passed, render_table(report.results)
    return now


def containers(lab: Lab) -> set[str]:
    return set(engine.lab_objects(lab.name)["containers"])


def haproxy_backends(lab: Lab) -> dict[str, list[str]]:
    """Each control plane's haproxy backends, by server name."""
    found = {}
    for node in lab.control_planes:
        text = remote.root(lab, node, "cat /etc/haproxy/haproxy.cfg")
        found[node.name] = sorted(
            line.split()[1] for line in text.splitlines() if line.strip().startswith("server ")
        )
    return found


def test_a_worker_is_added_joined_and_verified(copy: Lab) -> None:
    original = copy.source.read_text(encoding="utf-8")
    output = scale(copy, "--add-worker", "wx")
    after = verified(copy)
    wx = after.node("wx")
    assert f"wx: address {wx.address} chosen" in output
    edited = after.source.read_text(encoding="utf-8").splitlines()
    assert set(original.splitlines()) <= set(edited)  # comments and all kept
    assert all(
        "wx" in line or "address:" in line for line in set(edited) - set(original.splitlines())
    )
    assert DockerNames(after.name).container(wx) in containers(after)
    assert "wx" not in kube.not_ready_nodes(after)


def test_removing_it_killed_midway_resumes_when_run_again(copy: Lab) -> None:
    lab = load_lab(copy.source)
    gone = lab.node("wx").address
    # Drained, etcd untouched, kubeadm reset under way: killed right there.
    seen = killed_when(
        ["scale", str(lab.source), "--remove", "wx"],
        lambda line: "host-reset" in line and "wx: kubeadm reset" in line,
        timeout_s=900,
    )
    unfinished = journal.load_open(lab.name)
    assert unfinished is not None and unfinished.nodes == ["wx"], "".join(seen)
    refused = CliRunner().invoke(main, ["scale", str(lab.source), "--add-worker", "wy"])
    assert refused.exit_code == 1 and "unfinished" in refused.output
    output = scale(lab, "--remove", "wx")  # the same command again: it resumes
    assert "(resumed)" in output
    after = verified(lab)
    assert "wx" not in {n.name for n in after.nodes}
    assert not any(name.endswith("-wx") for name in containers(after))
    status, names = kube.kubectl(after, ["get", "nodes", "-o", "name"])
    assert status == 0 and "node/wx" not in names.split()
    for node in after.control_planes + after.workers:  # the bridge CNI routed through it
        routes = remote.root(after, node, f"ip -o -4 route show root {after.network.pod_cidr}")
        assert f"via {gone} " not in routes, f"{node.name}: {routes}"


def test_a_second_provision_changes_nothing(copy: Lab) -> None:
    report = provision(load_lab(copy.source), progress=Progress())
    assert report.idempotent, report.changed


def test_refused_control_plane_changes_change_nothing(copy: Lab) -> None:
    lab = load_lab(copy.source)
    before = lab.source.read_text(encoding="utf-8")
    if lab.etcd_topology == "stacked":
        refused = CliRunner().invoke(main, ["scale", str(lab.source), "--add-control-plane", "cpx"])
        assert refused.exit_code == 1
        assert "two at a time, so that the count stays odd" in refused.output
    removed = CliRunner().invoke(
        main, ["scale", str(lab.source), *(f"--remove={n.name}" for n in lab.control_planes)]
    )
    assert removed.exit_code == 1 and "at least one control plane" in removed.output
    assert lab.source.read_text(encoding="utf-8") == before
    assert journal.load_open(lab.name) is None


def test_control_planes_are_added_and_removed(copy: Lab) -> None:
    lab = load_lab(copy.source)
    original = lab.source.read_text(encoding="utf-8")
    names = ["cpx", "cpy"] if lab.etcd_topology == "stacked" else ["cpx"]
    scale(lab, *(f"--add-control-plane={name}" for name in names))
    grown = verified(lab)
    assert [n.name for n in grown.control_planes][-len(names) :] == names
    every = sorted(n.name for n in grown.control_planes)
    assert all(backends == every for backends in haproxy_backends(grown).values())
    topo = Topology(grown)
    assert sorted(m.name for m in cluster.members(topo)) == sorted(m.name for m in topo.members)

    begun = time.monotonic()
    scale(grown, *(f"--remove={name}" for name in names))
    shrunk = verified(grown)
    assert time.monotonic() - begun < 1800
    assert lab.source.read_text(encoding="utf-8") == original
    every = sorted(n.name for n in shrunk.control_planes)
    assert all(backends == every for backends in haproxy_backends(shrunk).values())
    topo = Topology(shrunk)
    assert sorted(m.name for m in cluster.members(topo)) == sorted(m.name for m in topo.members)
    assert provision(shrunk, progress=Progress()).idempotent
