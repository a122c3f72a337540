"""The preflight of hosts k8slab did not make: every host is read at once (SSH with its
login, sudo, OS, CPU, memory, disk, cgroups, swap, kernel modules, addresses, clock) and
probes the ports the lab needs on the others, and a control plane pings the API's VIP;
each host's problems (``toolkit.hosts.judge``) are reported together, before anything on
any host changes. Reading goes through functions a test replaces with fakes.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import paramiko

from toolkit.errors import HostError
from toolkit.hosts import ports
from toolkit.hosts.facts import Clock, HostFacts, read_host
from toolkit.hosts.judge import (
    clock_problem,
    describe,
    judge_host,
    kinds_problem,
    ssh_problem,
    vip_problem,
)
from toolkit.hosts.ssh import SshTarget, run_command, script_command
from toolkit.lab import render
from toolkit.lab.model import Lab, Node
from toolkit.lab.state import LabState
from toolkit.progress import SILENT, Progress

Reader = Callable[[SshTarget, Callable[[str, str, str], None]], tuple[HostFacts, Clock]]
Prober = Callable[[SshTarget, list[str]], str]
# Whether an address answers ping from the host (None: the host cannot tell, no ping).
Pinger = Callable[[SshTarget, str], bool | None]


class PreflightError(HostError):
    """Some existing host cannot carry the lab; every problem found is in the message."""


@dataclass
class HostCheck:
    node: Node
    facts: HostFacts | None = None
    clock: Clock | None = None
    # "TYPE SHA256:..." when its host key was trusted on first use by this preflight.
    new_key: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        """What the host is, in a line."""
        return describe(self.facts, self.clock) if self.facts else "not reached"


@dataclass
class Preflight:
    lab: Lab
    hosts: list[HostCheck]
    # Problems of the hosts together (clocks, kinds), not of one host.
    lab_problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.lab_problems and not any(host.problems for host in self.hosts)

    def problem_lines(self) -> list[str]:
        lines = [f"{h.node.name} ({h.node.address}): {p}" for h in self.hosts for p in h.problems]
        return lines + [f"lab {self.lab.name}: {p}" for p in self.lab_problems]

    def raise_if_failed(self) -> None:
        if self.passed:
            return
        lines = self.problem_lines()
        raise PreflightError(
            f"lab {self.lab.name}: {len(lines)} problem{'s' if len(lines) > 1 else ''} on its "
            "hosts; nothing was changed on any of them\n" + "\n".join(f"  {p}" for p in lines)
        )


def read_with_ssh(
    target: SshTarget, on_new_key: Callable[[str, str, str], None]
) -> tuple[HostFacts, Clock]:
    return read_host(target, timeout=20, on_new_key=on_new_key)


def probe_with_ssh(target: SshTarget, arguments: list[str]) -> str:
    command = script_command(ports.PROBE_SCRIPT, *arguments)
    return run_command(target, command, timeout=ports.PROBE_TIMEOUT_S + 30)[1]


def ping_with_ssh(target: SshTarget, address: str) -> bool | None:
    # ping exits 1 when nothing answered, 2 and more when it could not ask (no rights).
    command = (
        "command -v ping >/dev/null || { echo unknown; exit 0; }; "
        f"ping -c 2 -W 1 {address} >/dev/null 2>&1; "
        "case $? in 0) echo answers ;; 1) echo silent ;; *) echo unknown ;; esac"
    )
    verdict = run_command(target, command, timeout=30)[1].strip()
    return {"answers": True, "silent": False}.get(verdict)


def run_preflight(
    lab: Lab,
    progress: Progress = SILENT,
    reader: Reader = read_with_ssh,
    prober: Prober = probe_with_ssh,
    pinger: Pinger = ping_with_ssh,
) -> Preflight:
    """Read and judge every host at once, then probe the ports between those reached and
    ping the VIP from a control plane when no host holds it."""
    state = LabState.of(lab.name)
    state.ensure_root()
    targets = {node.name: render.ssh_target(state, node) for node in lab.nodes}
    checks = [HostCheck(node) for node in lab.nodes]

    def read(check: HostCheck) -> None:
        def trusted(name: str, kind: str, fingerprint: str) -> None:
            check.new_key = f"{kind} {fingerprint}"
            progress.say("ssh", f"host key trusted on first use: {kind} {fingerprint}", name)

        try:
            check.facts, check.clock = reader(targets[check.node.name], trusted)
        except (HostError, TimeoutError, OSError, paramiko.SSHException) as exc:
            check.problems.append(ssh_problem(targets[check.node.name], exc))
            return
        check.problems += judge_host(lab, check.node, check.facts)

    needs = ports.required(lab)

    def probe(check: HostCheck) -> None:
        mine = [need for need in needs if need.source == check.node and _reached(checks, need)]
        if not mine:
            return
        try:
            output = prober(targets[check.node.name], ports.probe_arguments(mine))
        except (HostError, TimeoutError, OSError, paramiko.SSHException) as exc:
            check.problems.append(f"the port probes did not run: {exc or type(exc).__name__}")
            return
        check.problems += ports.unreached(mine, ports.parse_verdicts(output))

    with ThreadPoolExecutor(max_workers=min(8, len(checks))) as pool:
        list(pool.map(read, checks))
        list(pool.map(probe, [check for check in checks if check.facts is not None]))
    result = Preflight(lab, checks)
    clocks = {check.node.name: check.clock for check in checks if check.clock is not None}
    found = {check.node.name: check.facts for check in checks if check.facts is not None}
    answers = None
    pinging = [c for c in checks if c.facts is not None and c.node in lab.control_planes]
    if pinging and not any(f.interfaces_of(lab.api_vip) for f in found.values()):
        try:
            answers = pinger(targets[pinging[0].node.name], str(lab.api_vip))
        except (HostError, TimeoutError, OSError, paramiko.SSHException):
            answers = None
    for problem in (clock_problem(clocks), kinds_problem(found), vip_problem(lab, found, answers)):
        if problem:
            result.lab_problems.append(problem)
    return result


def _reached(checks: list[HostCheck], need: ports.Need) -> bool:
    return any(c.node == need.target and c.facts is not None for c in checks)
