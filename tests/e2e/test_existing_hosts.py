"""End to end on hosts k8slab did not make (provider: existing): systemd host containers
started by plain `docker run` on a network of their own (tests/e2e/byoh_hosts.py), named
in a lab spec as existing hosts.

In order: the preflight refuses a spec whose hosts have a wrong key, no passwordless sudo,
swap on, too little memory, an address not their own and clocks apart, listing every
problem and changing nothing; `k8slab up` then brings the lab up on them, the container
branches chosen because the hosts say they are containers; verify passes; the
backup-restore and member-loss drills pass; control-plane-loss stops and starts a host
through the spec's host_power; `destroy` resets the hosts and leaves them running.

Destructive and slow: run by `scripts/test --full` as its own stage, `e2e-byoh`, never in
the per-lab stages nor in CI's default mode.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from tests.e2e import byoh_hosts
from tests.e2e.byoh_hosts import Hosts
from toolkit.cli import main
from toolkit.drills import run_drills
from toolkit.lab.spec import Lab, load_lab
from toolkit.lab.state import LabState
from toolkit.progress import Progress
from toolkit.verify import run_verify
from toolkit.verify.report import render_table

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.destructive]

# A swap area seen by one host only: its own mount namespace gets another /proc/swaps.
FAKE_SWAPS = "Filename\tType\tSize\tUsed\tPriority\n/swapfile\tfile\t1048576\t0\t-2\n"
# A clock 30 s ahead on one host only: a `date` first on its PATH (the machine's clock is
# every container's, and is not the test's to change).
FAST_DATE = '#!/bin/sh\nexec /usr/bin/date -d "@$(( $(/usr/bin/date +%s) + 30 ))" "$@"\n'


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    made = byoh_hosts.start(tmp_path_factory.mktemp("byoh-hosts"))
    try:
        yield made
    finally:
        byoh_hosts.remove()


@pytest.fixture(scope="module")
def lab(hosts: Hosts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    path = byoh_hosts.spec(hosts, tmp_path_factory.mktemp("byoh-spec"))
    CliRunner().invoke(main, ["destroy", "--yes", "--purge", str(path)])
    result = CliRunner().invoke(main, ["up", str(path)])
    assert result.exit_code == 0, result.output
    yield load_lab(path)
    CliRunner().invoke(main, ["destroy", "--yes", "--purge", str(path)])


def untouched(hosts: Hosts) -> list[str]:
    """What a refused preflight must not have left on any host."""
    found = []
    for node in hosts.names:
        leftovers = hosts.exec(
            node,
            "ls -d /etc/kubernetes /etc/sysctl.d/90-k8slab.conf /etc/modules-load.d/overlay.conf "
            "/etc/systemd/system/k8slab-contain-ranges.service 2>/dev/null; true",
        )
        found += [f"{node}: {path}" for path in leftovers.split()]
    return found


def test_preflight_refuses_listing_every_hosts_problem_and_changes_nothing(
    hosts: Hosts, tmp_path: Path
) -> None:
    hosts.write("cp3", "/etc/fake-swaps", FAKE_SWAPS)
    hosts.exec("cp3", "mount --bind /etc/fake-swaps /proc/swaps")
    hosts.write("w1", "/usr/local/bin/date", FAST_DATE, mode="755")
    try:
        path = byoh_hosts.spec(
            hosts,
            tmp_path,
            cp1={"ssh_key": str(hosts.wrong_key)},
            cp2={"ssh_user": byoh_hosts.NO_SUDO_USER},
            w1={"memory_mb": 10_000_000},
            w2={"address": str(byoh_hosts.GATEWAY), "ssh_port": byoh_hosts.PUBLISHED_SSH_PORT},
        )
        for command in (["preflight", str(path)], ["up", str(path)]):
            result = CliRunner().invoke(main, command)
            assert result.exit_code == 1, result.output
            output = result.output
            assert "problems on its hosts; nothing was changed on any of them" in output
            assert "cp1 (172.30.60.11): SSH refused admin with the key" in output
            assert "cp2 (172.30.60.12): `sudo -n true` fails for nosudo" in output
            assert (
                "cp3 (172.30.60.13): the machine that runs this container has 1024 MiB of swap on"
                in output
            )
            assert "w1 (172.30.60.21): has " in output and "a worker here needs 10000000" in output
            assert (
                "w2 (172.30.60.1): 172.30.60.1 (its address in the spec) is not one of its own"
                in output
            )
            assert "lab byoh: the hosts' clocks differ by " in output and "w1 +3" in output
        assert not LabState.of("byoh").inventory.exists()
        assert untouched(hosts) == []
    finally:
        hosts.exec("cp3", "umount /proc/swaps; rm -f /etc/fake-swaps", check=False)
        hosts.exec("w1", "rm -f /usr/local/bin/date", check=False)


def test_up_records_each_host_key_and_what_each_host_is(lab: Lab) -> None:
    state = LabState.of(lab.name)
    recorded = {line.split()[0] for line in state.known_hosts.read_text().splitlines()}
    for node in lab.nodes:
        port = node.login.port if node.login else 22
        assert (str(node.address) if port == 22 else f"[{node.address}]:{port}") in recorded
    kinds = json.loads(state.host_kinds.read_text())
    assert {entry["container"] for entry in kinds.values()} == {"docker"}
    variables = yaml.safe_load(state.inventory.read_text())["all"]["vars"]
    assert (variables["k8slab_container_node"], variables["k8slab_cgroup_driver"]) == (
        True,
        "cgroupfs",
    )
    assert "k8slab_bundle_dir_on_node" not in variables, "the bundle was copied, not mounted"


def test_every_check_passes(lab: Lab) -> None:
    report = run_verify(lab, progress=Progress())
    assert report.passed, render_table(report.results)


@pytest.mark.parametrize("drill", ["backup-restore", "member-loss", "control-plane-loss"])
def test_drill_passes(lab: Lab, drill: str) -> None:
    (result,), _, md_path = run_drills(lab, [drill])
    failed = [f"{c.name}: {c.detail}" for c in result.checks if not c.ok]
    assert result.passed, f"{result.error or ''} {failed} (report {md_path})"


def test_destroy_resets_the_hosts_and_leaves_them_running(lab: Lab, hosts: Hosts) -> None:
    state = LabState.of(lab.name)
    result = CliRunner().invoke(main, ["destroy", "--yes", str(lab.source)])
    assert result.exit_code == 0, result.output
    assert "hosts reset" in result.output and "left running" in result.output
    # Snapshots (backup-restore's) are kept, as on any lab; everything else is forgotten.
    assert not state.exists() or state.only_backups(), sorted(p.name for p in state.root.iterdir())
    for node in lab.nodes:
        assert hosts.running(node.name), f"{node.name} was stopped"
        # Through the engine: the lab's state, known_hosts included, is gone.
        output = hosts.exec(
            node.name,
            "ls -d /etc/kubernetes/manifests/* /var/lib/etcd/member 2>/dev/null; "
            "systemctl is-active kubelet; true",
        )
        assert output.split() == ["inactive"], f"{node.name}: {output}"
