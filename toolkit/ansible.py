"""Running Ansible through ansible-runner, with per-host stats as the result.

Idempotence and reachability are read from Ansible's own per-host stats (ok, changed,
failures, unreachable), never from words in its output.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_mitogen
import ansible_runner

from toolkit.errors import HostError
from toolkit.lab.state import LabState
from toolkit.paths import REPO_ROOT


@dataclass(frozen=True)
class RunStats:
    status: str
    ok: dict[str, int] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    unreachable: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_runner(cls, status: str, stats: dict[str, Any] | None) -> RunStats:
        stats = stats or {}
        return cls(
            status=status,
            ok=dict(stats.get("ok", {})),
            changed=dict(stats.get("changed", {})),
            failures=dict(stats.get("failures", {})),
            unreachable=dict(stats.get("dark", {})),
        )


def ansible_env() -> dict[str, str]:
    """The repo's ansible.cfg, the ansible commands of this Python environment first, and
    Mitogen's strategy unless $K8SLAB_ANSIBLE_STRATEGY names another (`linear`).

    Each module Ansible runs on a node starts a Python that compiles ansible's
    module_utils from a zip: about half a second of a 2-core machine's CPU per task and
    host. Mitogen keeps one interpreter per host for the whole run; a no-op provision of
    ha-stacked took 133 s with `linear` and 66 s with `mitogen_linear`.
    """
    bin_dir = Path(sys.executable).parent
    return {
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_STRATEGY_PLUGINS": str(
            Path(ansible_mitogen.__file__).parent / "plugins" / "strategy"
        ),
        "ANSIBLE_STRATEGY": os.environ.get("K8SLAB_ANSIBLE_STRATEGY", "mitogen_linear"),
    }


# The files of a private data dir's env/ folder that ansible-runner reads and prefers over
# the arguments it is given (env/envvars overrides `envvars`; env/extravars is passed too).
RUNNER_ENV_FILES = ("envvars", "extravars", "passwords", "settings", "cmdline", "ssh_key")


def runner_kwargs(state: LabState, name: str, **kwargs: Any) -> dict[str, Any]:
    """ansible-runner's arguments for one run, its private data dir ``<state>/ansible/<name>``
    made ready.

    Left to itself, ansible-runner writes `envvars` and `extravars` into the dir's env/
    folder on the first run only, and prefers those files on every later run: a lab would
    keep the PATH and Mitogen of the venv that first provisioned it, even once that venv
    is gone. So nothing is written there (`suppress_env_files`), and what an earlier run
    (or an older toolkit) left is removed: each run uses this process's environment.
    """
    data_dir = state.root / "ansible" / name
    data_dir.mkdir(parents=True, exist_ok=True)
    for stale in RUNNER_ENV_FILES:
        (data_dir / "env" / stale).unlink(missing_ok=True)
    return {
        "private_data_dir": str(data_dir),
        "inventory": str(state.inventory),
        "envvars": ansible_env(),
        "suppress_env_files": True,
        "quiet": True,
        **kwargs,
    }


def run_runner(state: LabState, name: str, **kwargs: Any) -> ansible_runner.Runner:
    """ansible-runner against the lab's inventory; its artifacts go to the state directory."""
    arguments = runner_kwargs(state, name, **kwargs)
    previous_path = os.environ.get("PATH", "")
    # ansible-runner looks the ansible commands up on this process's PATH.
    os.environ["PATH"] = arguments["envvars"]["PATH"]
    try:
        return ansible_runner.run(**arguments)
    finally:
        os.environ["PATH"] = previous_path


def run_module(
    state: LabState, module: str, args: str = "", pattern: str = "all", name: str = "adhoc"
) -> RunStats:
    """Run one module against every host matching ``pattern``."""
    run = run_runner(state, name, host_pattern=pattern, module=module, module_args=args)
    return RunStats.from_runner(run.status, run.stats)


def ping(state: LabState) -> RunStats:
    stats = run_module(state, "ansible.builtin.ping", name="ping")
    if stats.unreachable:
        raise HostError("unreachable over SSH: " + ", ".join(sorted(stats.unreachable)))
    return stats
