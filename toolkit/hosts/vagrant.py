"""Driving Vagrant: the repo's Vagrantfile, with one lab's machine list and state directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from dataclasses import dataclass

from toolkit import paths
from toolkit.errors import CommandError, HostError
from toolkit.lab.state import LabState
from toolkit.progress import SILENT, Progress
from toolkit.shell import run


@dataclass(frozen=True)
class Vagrant:
    state: LabState

    def env(self, provider: str) -> dict[str, str]:
        return {
            "VAGRANT_CWD": str(paths.VAGRANT_DIR),
            "VAGRANT_DOTFILE_PATH": str(self.state.vagrant_dotfile),
            "VAGRANT_DEFAULT_PROVIDER": provider,
            "VAGRANT_CHECKPOINT_DISABLE": "1",
            "VAGRANT_NO_COLOR": "1",
            "K8SLAB_MACHINES": str(self.state.machines),
        }

    def up(
        self,
        provider: str,
        progress: Progress = SILENT,
        timeout: float = 900,
        machines: tuple[str, ...] = (),
    ) -> None:
        """``vagrant up`` every machine (or only ``machines``), streaming Vagrant's lines
        as progress."""
        # The docker provider races when creating containers in parallel (a machine reads
        # another machine's container id), so machines are created one after the other.
        argv = ["vagrant", "up", f"--provider={provider}", "--no-parallel", *machines]
        log = self.state.logs / "vagrant-up.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        lines: list[str] = []
        with (
            log.open("a", encoding="utf-8") as handle,
            subprocess.Popen(
                argv,
                env={**os.environ, **self.env(provider)},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            ) as proc,
        ):
            assert proc.stdout is not None
            timed_out = threading.Event()

            def stop() -> None:
                timed_out.set()
                proc.kill()

            watchdog = threading.Timer(timeout, stop)
            watchdog.start()
            for line in proc.stdout:
                handle.write(line)
                lines.append(line)
                host, message = _split_vagrant_line(line)
                if message:
                    progress.say("vagrant", message, host)
            watchdog.cancel()
        if timed_out.is_set():
            raise HostError(
                f"`vagrant up` took more than {timeout:.0f}s and was stopped (log: {log})"
            )
        if proc.returncode != 0:
            raise CommandError(argv, proc.returncode, "".join(lines) + f"\n(log: {log})")

    def status(self, provider: str) -> dict[str, str]:
        """Each machine's state as Vagrant reports it (running, not_created, stopped...)."""
        if not self.state.vagrant_dotfile.exists():
            return {}
        result = run(
            ["vagrant", "status", "--machine-readable"], env=self.env(provider), timeout=120
        )
        states: dict[str, str] = {}
        for line in result.stdout.splitlines():
            fields = line.split(",")
            if len(fields) >= 4 and fields[2] == "state":
                states[fields[1]] = fields[3]
        return states

    def validate(self, provider: str) -> str:
        """``vagrant validate`` of the rendered machines; returns Vagrant's verdict."""
        argv = ["vagrant", "validate"]
        if provider == "virtualbox" and shutil.which("VBoxManage") is None:
            # Without VirtualBox, Vagrant refuses to look at its provider block at all;
            # the machines, network and ssh settings are still checked.
            argv.append("--ignore-provider")
        return run(argv, env=self.env(provider), timeout=120).stdout.strip()

    def destroy(self, provider: str, machines: tuple[str, ...] = ()) -> None:
        """``vagrant destroy`` every machine, or only ``machines`` (the machine list must
        still name them)."""
        if not self.state.vagrant_dotfile.exists() or not self.state.machines.exists():
            return
        run(
            ["vagrant", "destroy", "--force", *machines],
            env=self.env(provider),
            timeout=600,
            log=self.state.logs / "vagrant-destroy.log",
        )


def _split_vagrant_line(line: str) -> tuple[str, str]:
    """``==> cp1: Creating the container...`` -> ("cp1", "Creating the container...")."""
    text = line.strip()
    if not text.startswith("==> ") or ":" not in text:
        return "", ""
    host, _, message = text[4:].partition(": ")
    return host, message.strip()
