"""The preflight of existing hosts, judged from facts made up for the purpose: each problem
a host can have is found and named with its fix, every host's problems are listed at once,
and what the host scripts print is read right (the scripts themselves run here, on this
machine and loopback, reading only)."""

from __future__ import annotations

import getpass
import ipaddress
import platform
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paramiko
import pytest

from tests.helpers.exec_ssh import ExecServer
from tests.helpers.host_facts import good
from tests.helpers.lab_specs import existing, external, mutated, private_key, write_spec
from toolkit.hosts import ports, preflight
from toolkit.hosts.facts import FACTS_SCRIPT, KERNEL_MODULES, Clock, HostFacts, parse_facts
from toolkit.hosts.judge import clock_problem, judge_host, kinds_problem, vip_problem
from toolkit.hosts.preflight import PreflightError, run_preflight
from toolkit.hosts.ssh import SshTarget
from toolkit.lab.model import Lab, Login, Network, Node, Role
from toolkit.lab.spec import load_lab
from toolkit.lab.state import LabState


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    key = private_key(tmp_path / "id_ed25519")
    return load_lab(write_spec(tmp_path, mutated(lambda d: existing(d, key))))


def test_a_good_host_has_no_problem(lab: Lab) -> None:
    assert judge_host(lab, lab.node("cp1"), good("172.30.9.11")) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"sudo": False},
            "`sudo -n true` fails for admin (a password asked, sudo refused or missing)",
        ),
        (
            {"os_id": "ubuntu", "os_version": "24.04", "os_name": "Ubuntu 24.04"},
            "runs Ubuntu 24.04; k8slab's roles install the packages of Debian 13 (trixie)",
        ),
        ({"arch": "aarch64"}, "is aarch64; the bundle is built on this machine"),
        ({"systemd": "offline"}, "systemd says offline"),
        ({"python3": ""}, "has no python3"),
        ({"cpus": 1}, "has 1 CPUs; a control-plane here needs 2"),
        (
            {"memory_mib": 1024},
            "has 1024 MiB of memory (MemTotal); a control-plane here needs 1700",
        ),
        ({"var_free_gib": 1.5}, "has 1.5 GiB free on /var"),
        ({"cgroup_version": 0}, "has no cgroup filesystem"),
        ({"swap_mib": 2048}, "has 2048 MiB of swap on, and the kubelet refuses"),
        (
            {
                "swap_mib": 512,
                "container": "docker",
                "modules": {m: "present" for m in KERNEL_MODULES},
            },
            "the machine that runs this container has 512 MiB of swap on",
        ),
        (
            {"addresses": {"eth0": ["10.0.0.5/24"]}},
            "172.30.9.11 (its address in the spec) is not one of its own (10.0.0.5/24 on eth0)",
        ),
        (
            {"addresses": {"eth1": ["172.30.9.11/16"]}},
            "172.30.9.11 is on the network 172.30.0.0/16, but network.subnet is 172.30.9.0/24",
        ),
        (
            {"container": "docker", "modules": {"overlay": "present", "br_netfilter": "loadable"}},
            "kernel module br_netfilter is neither loaded nor built in, and a container cannot",
        ),
        (
            {"modules": {"overlay": "present", "br_netfilter": "missing"}},
            "kernel module br_netfilter is neither built into kernel 6.12.0-1-amd64 nor loadable",
        ),
    ],
    ids=[
        "sudo",
        "os",
        "arch",
        "systemd",
        "python",
        "cpus",
        "memory",
        "disk",
        "cgroup",
        "swap",
        "machine-swap",
        "address",
        "subnet",
        "container-module",
        "missing-module",
    ],
)
def test_each_problem_is_named_with_its_fix(
    lab: Lab, changes: dict[str, Any], expected: str
) -> None:
    problems = judge_host(lab, lab.node("cp1"), good("172.30.9.11", **changes))
    assert len(problems) == 1, problems
    assert expected in problems[0]


def test_the_interface_named_in_the_spec_must_hold_the_address(tmp_path: Path) -> None:
    key = private_key(tmp_path / "id_ed25519")

    def change(d: dict[str, Any]) -> None:
        existing(d, key)
        d["nodes"]["workers"][0]["interface"] = "eth0"

    lab = load_lab(write_spec(tmp_path, mutated(change)))
    problems = judge_host(lab, lab.node("w1"), good("172.30.9.21"))
    assert problems == [
        "172.30.9.21 is on eth1, not on eth0 (interface in the spec); name the interface "
        "that holds it, or leave it out"
    ]


@pytest.mark.parametrize(
    ("offsets", "flagged"),
    [
        ({"cp1": (0.0, 0.01), "cp2": (0.4, 0.01)}, False),
        ({"cp1": (0.0, 0.01), "cp2": (5.0, 0.01)}, True),
        # 2.5 s apart, but each reading took 0.6 s to come back: not provably apart.
        ({"cp1": (0.0, 0.3), "cp2": (2.5, 0.3)}, False),
        ({"cp1": (0.0, 0.01)}, False),
    ],
    ids=["close", "apart", "within-uncertainty", "one-host"],
)
def test_clocks_apart_beyond_their_reading_are_a_problem(
    offsets: dict[str, tuple[float, float]], flagged: bool
) -> None:
    problem = clock_problem({name: Clock(*pair) for name, pair in offsets.items()})
    assert (problem is not None) == flagged
    if problem:
        assert "the hosts' clocks differ by 5.0s (cp1 and cp2;" in problem


def test_containers_and_machines_do_not_mix() -> None:
    found = {"cp1": good("172.30.9.11", container="docker"), "cp2": good("172.30.9.12")}
    assert "some hosts are containers (cp1) and some are not (cp2)" in (kinds_problem(found) or "")
    assert kinds_problem({"cp2": found["cp2"]}) is None


def with_vip(address: str, holder: bool) -> HostFacts:
    cidrs = [f"{address}/24", *(["172.30.9.100/24"] if holder else [])]
    return good(address, addresses={"eth1": cidrs})


def test_the_vip_must_be_free_or_a_control_planes(lab: Lab) -> None:
    free = {"cp1": with_vip("172.30.9.11", False), "w1": with_vip("172.30.9.21", False)}
    assert vip_problem(lab, free, answers=False) is None
    assert vip_problem(lab, free, answers=None) is None, "no ping there: cannot tell"
    assert "172.30.9.100 answers ping, so another machine has it" in (
        vip_problem(lab, free, answers=True) or ""
    )
    on_cp = {**free, "cp1": with_vip("172.30.9.11", True)}
    assert vip_problem(lab, on_cp, answers=True) is None, "a provisioned lab's own VIP"
    on_worker = {**free, "w1": with_vip("172.30.9.21", True)}
    assert "is an address of w1, not a control plane" in (
        vip_problem(lab, on_worker, answers=None) or ""
    )


def test_the_ports_each_topology_needs(lab: Lab, tmp_path: Path) -> None:
    needs = {(n.source.name, n.target.name, n.port) for n in ports.required(lab)}
    assert ("w1", "cp1", 6443) in needs and ("w1", "cp2", 8443) in needs
    assert ("cp1", "w1", 10250) in needs and ("cp1", "cp2", 2380) in needs
    assert not any(source == target for source, target, _ in needs)
    assert not any(source == "w1" and port in (2379, 2380) for source, _, port in needs)
    key = private_key(tmp_path / "ext" / "id")
    ext = load_lab(write_spec(tmp_path / "e", mutated(lambda d: (existing(d, key), external(d)))))
    ext_needs = {(n.source.name, n.target.name, n.port) for n in ports.required(ext)}
    assert ("cp1", "etcd1", 2379) in ext_needs and ("etcd1", "etcd2", 2380) in ext_needs
    assert not any(port == 2380 and source.startswith("cp") for source, _, port in ext_needs)


def test_probe_verdicts_are_read_and_judged(lab: Lab) -> None:
    needs = [n for n in ports.required(lab) if n.source.name == "w1"]
    verdicts = ports.parse_verdicts(
        "172.30.9.11 6443 refused\n172.30.9.11 8443 open\n172.30.9.12 6443 timeout\ngarbage line\n"
    )
    problems = ports.unreached(needs, verdicts)
    assert problems[0] == (
        "does not reach cp2 (172.30.9.12) on TCP 6443 (the API server): timeout after 3s; let "
        "the hosts reach each other on it (a firewall between them drops it)"
    )
    # Every need without a verdict is a problem too: nothing passes unprobed.
    assert sum("not probed" in p for p in problems) == len(needs) - 3
    assert ports.probe_arguments(needs)[0] == "3"


def fake_reader(
    facts: dict[str, HostFacts | BaseException], clocks: dict[str, float]
) -> preflight.Reader:
    def read(target: SshTarget, trusted: Callable[[str, str, str], None]) -> Any:
        found = facts[target.name]
        if isinstance(found, BaseException):
            raise found
        trusted(target.address, "ssh-ed25519", f"SHA256:{target.name}")
        return found, Clock(clocks.get(target.name, 0.0), 0.01)

    return read


def test_every_hosts_problems_are_listed_at_once_and_nothing_is_probed_from_or_to_the_unreached(
    lab: Lab, isolated_state: Path
) -> None:
    facts: dict[str, HostFacts | BaseException] = {
        "cp1": good("172.30.9.11", swap_mib=1024),
        "cp2": good("172.30.9.12", sudo=False, memory_mib=1000),
        "cp3": paramiko.AuthenticationException("no"),
        "w1": good("172.30.9.99"),
    }
    probed: list[tuple[str, list[str]]] = []

    def prober(target: SshTarget, arguments: list[str]) -> str:
        probed.append((target.name, arguments))
        return "\n".join(f"{a.replace(':', ' ')} refused" for a in arguments[1:])

    pinged: list[tuple[str, str]] = []

    def pinger(target: SshTarget, address: str) -> bool:
        pinged.append((target.name, address))
        return True

    result = run_preflight(
        lab, reader=fake_reader(facts, {"w1": 9.0}), prober=prober, pinger=pinger
    )
    assert not result.passed
    lines = result.problem_lines()
    assert any(line.startswith("cp1 (172.30.9.11): has 1024 MiB of swap on") for line in lines)
    assert sum(line.startswith("cp2 (172.30.9.12): ") for line in lines) == 2
    assert any(
        line.startswith("cp3 (172.30.9.13): SSH refused admin with the key ") for line in lines
    )
    assert any(line.startswith("w1 (172.30.9.21): 172.30.9.21 (its address") for line in lines)
    assert any(line.startswith("lab demo: the hosts' clocks differ by 9.0s") for line in lines)
    assert pinged == [("cp1", "172.30.9.100")], "once, from a reached control plane"
    assert any(line.startswith("lab demo: api_endpoint.vip 172.30.9.100 answers") for line in lines)
    assert sorted(name for name, _ in probed) == ["cp1", "cp2", "w1"]
    assert not any("172.30.9.13" in arg for _, arguments in probed for arg in arguments)
    assert result.hosts[0].new_key == "ssh-ed25519 SHA256:cp1"
    with pytest.raises(PreflightError) as caught:
        result.raise_if_failed()
    message = str(caught.value)
    assert message.startswith(
        f"lab demo: {len(lines)} problems on its hosts; nothing was changed on any of them\n"
    )
    assert all(f"  {line}" in message for line in lines)


def test_hosts_that_pass_raise_nothing(lab: Lab, isolated_state: Path) -> None:
    facts: dict[str, HostFacts | BaseException] = {
        node.name: good(str(node.address)) for node in lab.nodes
    }

    def prober(target: SshTarget, arguments: list[str]) -> str:
        return "\n".join(f"{a.replace(':', ' ')} open" for a in arguments[1:])

    result = run_preflight(
        lab, reader=fake_reader(facts, {}), prober=prober, pinger=lambda target, vip: False
    )
    assert result.passed, result.problem_lines()
    assert all(check.summary.startswith("Debian GNU/Linux 13 (trixie), ") for check in result.hosts)
    result.raise_if_failed()


def test_host_facts_script_output_is_read() -> None:
    facts = parse_facts(
        "os_id=debian\nos_version=13\nos_name=Debian GNU/Linux 13 (trixie)\narch=x86_64\n"
        "cpus=2\nmemory_kib=2013264\nvar_free_kib=10485760\ncgroup_fs=cgroup2fs\n"
        "swap_kib=0\ncontainer=none\nsystemd=running\npython3=/usr/bin/python3\nsudo=yes\n"
        "addresses=lo=127.0.0.1/8 eth1=172.30.9.11/24 eth1=172.30.9.100/24 bad=x\n"
        "time_sync=chrony\nmodule.overlay=present\nmodule.br_netfilter=loadable\n"
    )
    assert (facts.cpus, facts.memory_mib, facts.var_free_gib) == (2, 1966, 10.0)
    assert facts.cgroup_version == 2 and facts.sudo and not facts.is_container
    assert facts.addresses["eth1"] == ["172.30.9.11/24", "172.30.9.100/24"]
    assert "bad" not in facts.addresses
    assert facts.interfaces_of(ipaddress.IPv4Address("172.30.9.100")) == ["eth1"]
    assert facts.modules == {"overlay": "present", "br_netfilter": "loadable"}
    assert parse_facts("") == HostFacts()


def test_host_facts_script_runs_here_and_reads_this_machine() -> None:
    script = FACTS_SCRIPT.read_text(encoding="utf-8")
    output = subprocess.run(
        ["sh", "-c", script, "host-facts.sh", *KERNEL_MODULES],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    facts = parse_facts(output)
    assert facts.arch == platform.machine()
    assert facts.cpus >= 1 and facts.memory_mib > 0
    assert facts.interfaces_of(ipaddress.IPv4Address("127.0.0.1")) == ["lo"]
    assert set(facts.modules) == set(KERNEL_MODULES)
    # What the kernel running the tests provides is present, however it provides it.
    with open("/proc/filesystems", encoding="utf-8") as filesystems:
        assert (facts.modules["overlay"] == "present") == ("overlay" in filesystems.read().split())


def test_port_probe_script_tells_open_from_refused_on_loopback() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: refused
    try:
        open_port, closed_port = listener.getsockname()[1], closed.getsockname()[1]
        script = ports.PROBE_SCRIPT.read_text(encoding="utf-8")
        output = subprocess.run(
            [
                "sh",
                "-c",
                script,
                "port-probe.sh",
                "2",
                f"127.0.0.1:{open_port}",
                f"127.0.0.1:{closed_port}",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    finally:
        listener.close()
        closed.close()
    assert ports.parse_verdicts(output) == {
        ("127.0.0.1", open_port): "open",
        ("127.0.0.1", closed_port): "refused",
    }


def test_a_host_is_read_and_probed_over_ssh_for_real(tmp_path: Path, isolated_state: Path) -> None:
    """The real reader, prober and pinger, through an SSH server on loopback that runs
    their commands on this machine: two nodes, both this machine."""
    server = ExecServer(paramiko.RSAKey.generate(2048))
    try:
        key = private_key(tmp_path / "id_ed25519")
        login = Login(getpass.getuser(), key, server.port)
        here = ipaddress.IPv4Address("127.0.0.1")
        lab = Lab(
            name="loop",
            provider="existing",
            kubernetes_version="v1.34.4",
            etcd_topology="stacked",
            container_runtime="containerd",
            cni="flannel",
            network=Network(
                ipaddress.IPv4Network("127.0.0.0/8"),
                ipaddress.IPv4Network("10.244.0.0/16"),
                ipaddress.IPv4Network("10.96.0.0/16"),
            ),
            api_vip=ipaddress.IPv4Address("127.0.0.100"),
            api_port=8443,
            nodes=tuple(
                Node(name, Role.CONTROL_PLANE, here, 1, 1, "containerd", login=login)
                for name in ("cp1", "cp2")
            ),
            source=tmp_path / "lab.yml",
        )
        result = run_preflight(lab)
        server.host_key = paramiko.RSAKey.generate(2048)  # the "host" re-created
        again = run_preflight(lab)
    finally:
        server.close()
    # A changed host key is refused, with the way out if the host really was re-created.
    for check in again.hosts:
        assert check.facts is None
        assert check.problems[0].startswith(f"host {check.node.name} (127.0.0.1) offers another")
        assert f"ssh-keygen -R '[127.0.0.1]:{server.port}'" in check.problems[0]
    os_release = dict(
        line.split("=", 1)
        for line in Path("/etc/os-release").read_text().splitlines()
        if "=" in line
    )
    for check in result.hosts:
        assert check.facts is not None, check.problems
        assert check.facts.os_name == os_release["PRETTY_NAME"].strip('"')
        assert check.facts.arch == platform.machine()
        assert check.clock is not None and abs(check.clock.offset_s) < 1 + check.clock.uncertainty_s
        # Every port the other "host" needs was probed, and reached (refused or open).
        assert not [p for p in check.problems if "does not reach" in p or "probes" in p]
    assert any(check.new_key.startswith("ssh-rsa SHA256:") for check in result.hosts)
    assert f"[127.0.0.1]:{server.port} ssh-rsa " in LabState.of("loop").known_hosts.read_text()
