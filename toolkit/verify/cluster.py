"""The verify suites' way into a lab: testinfra hosts built from the lab's state (its
ssh_config and inventory), kubectl on the first control plane, and bounded polling.

Every command runs on a lab host over SSH (one multiplexed connection per host), so
probes of Pod, Service and VIP addresses start inside the lab.
"""

from __future__ import annotations

import base64
import json
import shlex
import shutil
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import testinfra
import yaml

from toolkit.errors import K8slabError
from toolkit.kube import apply_command, kubectl_command
from toolkit.lab.spec import Lab, Node
from toolkit.lab.state import LabState
from toolkit.poll import poll

OUTPUT_TAIL_LINES = 25
BATCH_MARK = "@@k8slab-verify@@"
T = TypeVar("T")


class VerifyError(K8slabError):
    """A verification run could not start (no state, unknown group, unreachable lab)."""


@dataclass(frozen=True)
class Run:
    """A command's result, and the evidence a failed check shows for it."""

    host: str
    command: str
    exit_status: int
    output: str  # stdout and stderr
    stdout: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    @property
    def evidence(self) -> str:
        lines = self.output.rstrip().splitlines()
        if len(lines) > OUTPUT_TAIL_LINES:
            skipped = len(lines) - OUTPUT_TAIL_LINES
            lines = [f"... ({skipped} lines before)", *lines[-OUTPUT_TAIL_LINES:]]
        body = "\n".join(lines) if lines else "(no output)"
        return f"{self.host}$ {self.command}\n(exit {self.exit_status})\n{body}"


@dataclass(frozen=True)
class InventoryHost:
    name: str
    address: str
    groups: frozenset[str]


def read_inventory(path: Path) -> dict[str, InventoryHost]:
    """Hosts of the lab's Ansible inventory with the groups each belongs to."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise VerifyError(f"{path}: cannot read the lab's inventory ({exc})") from exc
    found: dict[str, dict[str, Any]] = {}
    groups: dict[str, set[str]] = {}

    def walk(name: str, group: dict[str, Any], parents: tuple[str, ...]) -> None:
        for host, variables in ((group or {}).get("hosts") or {}).items():
            found.setdefault(host, {}).update(variables or {})
            groups.setdefault(host, set()).update((name, *parents))
        for child, sub in ((group or {}).get("children") or {}).items():
            walk(child, sub, (*parents, name))

    walk("all", data.get("all") or {}, ())
    return {
        name: InventoryHost(
            name,
            str(variables.get("k8slab_node_address") or variables.get("ansible_host", "")),
            frozenset(groups[name]),
        )
        for name, variables in found.items()
    }


class Cluster:
    """A lab as the checks see it: its spec, its hosts and its API."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.state = LabState.of(lab.name)
        for needed in (self.state.ssh_config, self.state.inventory):
            if not needed.is_file():
                raise VerifyError(
                    f"lab {lab.name}: {needed} is missing; bring the lab up first "
                    f"(k8slab up {lab.name})"
                )
        self.inventory = read_inventory(self.state.inventory)
        missing = [n.name for n in lab.nodes if n.name not in self.inventory]
        if missing:
            raise VerifyError(
                f"lab {lab.name}: {self.state.inventory} lacks hosts {', '.join(missing)} of "
                f"the spec {lab.source}; run k8slab up {lab.name} to render it again"
            )
        self._control_dir = Path(tempfile.mkdtemp(prefix="k8slab-verify-ssh-"))
        self._hosts: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._prefetched: dict[tuple[str, str], Run] = {}

    @property
    def kube_nodes(self) -> list[Node]:
        """The nodes that run a kubelet: control planes and workers."""
        return self.lab.control_planes + self.lab.workers

    @property
    def first(self) -> Node:
        return self.lab.control_planes[0]

    def host(self, name: str) -> Any:
        """The testinfra host for a lab node (ssh backend, multiplexed, sudo)."""
        with self._lock:
            if name not in self._hosts:
                self._hosts[name] = testinfra.get_host(
                    f"ssh://{name}",
                    ssh_config=str(self.state.ssh_config),
                    # testinfra %-formats the ssh command line: %% is a literal % for ssh.
                    controlpath=str(self._control_dir / "%%C"),
                    controlpersist=120,
                    timeout=10,
                    sudo=True,
                )
            return self._hosts[name]

    def run(self, node: Node | str, command: str, timeout: float = 30, fresh: bool = False) -> Run:
        """Run a shell command as root on a node, bounded by ``timeout`` seconds.

        A command that :meth:`prefetch` ran already is answered from memory unless
        ``fresh`` (for polling loops).
        """
        name = node if isinstance(node, str) else node.name
        if not fresh and (name, command) in self._prefetched:
            return self._prefetched[(name, command)]
        wrapped = f"timeout -k 2 {int(timeout)} sh -c {shlex.quote(command)}"
        try:
            result = self.host(name).run(wrapped)
        except RuntimeError as exc:  # testinfra's ssh backend: ssh itself failed (exit 255)
            return Run(name, command, 255, f"ssh to {name} failed: {exc}")
        output = (result.stdout or "") + (result.stderr or "")
        return Run(name, command, result.rc, output, result.stdout or "")

    def run_until(
        self,
        node: Node | str,
        command: str,
        accept: Callable[[Run], bool],
        timeout_s: float,
        interval_s: float = 2,
    ) -> Run:
        """The command's answer once ``accept`` takes it: the prefetched answer if it does,
        else fresh answers until one does or ``timeout_s`` has passed (bounded, by
        :func:`toolkit.poll.poll`). The last answer either way: a failed check shows it."""
        run = self.run(node, command)
        if accept(run):
            return run
        fresh = poll(lambda: self.run(node, command, fresh=True), accept, timeout_s, interval_s)
        return fresh.value

    def prefetch(self, commands: dict[str, list[str]], timeout: float = 30) -> None:
        """Run read-only commands on many nodes at once: one SSH session per node, all
        nodes in parallel. Each command is bounded by ``timeout``; ``run`` answers them."""
        work = {name: list(dict.fromkeys(cmds)) for name, cmds in commands.items() if cmds}
        if not work:
            return
        with ThreadPoolExecutor(max_workers=len(work)) as pool:
            batches = pool.map(
                lambda item: self._run_batch(item[0], item[1], timeout), work.items()
            )
            for runs in batches:
                self._prefetched.update({(r.host, r.command): r for r in runs})

    def _run_batch(self, name: str, commands: list[str], timeout: float) -> list[Run]:
        # Every command in the background, so that one slow command does not hold up the
        # others; then each one's exit status, stdout and stderr on a line of its own.
        lines = ["d=$(mktemp -d)"]
        for index, command in enumerate(commands):
            lines.append(
                f"(timeout -k 2 {int(timeout)} sh -c {shlex.quote(command)} "
                f'>"$d/{index}.o" 2>"$d/{index}.e" </dev/null; echo $? >"$d/{index}.r") &'
            )
        lines.append("wait")
        for index in range(len(commands)):
            lines.append(
                f'echo "{BATCH_MARK} {index} $(cat "$d/{index}.r") '
                f'$(base64 -w0 <"$d/{index}.o") $(base64 -w0 <"$d/{index}.e")"'
            )
        lines.append('rm -rf "$d"')
        batch = self.run(name, "\n".join(lines), timeout=timeout + 15, fresh=True)
        runs = []
        found = {}
        for line in batch.stdout.splitlines():
            fields = line.split(" ")
            if len(fields) >= 3 and fields[0] == BATCH_MARK:
                found[int(fields[1])] = fields[2:]
        for index, command in enumerate(commands):
            if index not in found:
                continue  # not answered: run() will run it on its own
            status, *encoded = found[index]
            out, err = (
                base64.b64decode(e).decode(errors="replace") for e in (*encoded, "", "")[:2]
            )
            runs.append(Run(name, command, int(status), out + err, out))
        return runs

    def kubectl(self, *args: str, timeout: float = 60) -> Run:
        return self.run(self.first, kubectl_command(args), timeout=timeout)

    def kubectl_json(self, *args: str, timeout: float = 60) -> Any:
        run = self.kubectl(*args, "-o", "json", timeout=timeout)
        if not run.ok:
            raise VerifyError(f"kubectl failed:\n{run.evidence}")
        return json.loads(run.stdout)

    def apply(self, manifest: str, timeout: float = 60) -> Run:
        return self.run(self.first, apply_command(manifest), timeout=timeout)

    def journal(self, node: Node | str, unit: str, lines: int = 15) -> str:
        run = self.run(node, f"journalctl -u {unit} -n {lines} --no-pager -o short-iso")
        return f"journal of {unit}:\n{run.output.rstrip()}"

    def close(self) -> None:
        """Stop the multiplexing SSH masters this run started."""
        for host in self._hosts.values():
            backend = host.backend
            if getattr(backend, "controlpath", None):
                backend.run_local(
                    "ssh -F %s -o ControlPath=%s -O exit %s",
                    backend.ssh_config,
                    str(self._control_dir / "%C"),
                    backend.host.name,
                )
        shutil.rmtree(self._control_dir, ignore_errors=True)


def eventually(
    probe: Callable[[], T], accept: Callable[[T], bool], timeout_s: float, interval_s: float = 2
) -> tuple[bool, T]:
    """Call ``probe`` until ``accept`` says yes or ``timeout_s`` has passed (bounded): whether
    it did, and the last value (a failed check shows it). :func:`toolkit.poll.poll`."""
    outcome = poll(probe, accept, timeout_s, interval_s)
    return outcome.ok, outcome.value
