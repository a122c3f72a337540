"""Small helpers the suites share: failing a check with its evidence, reading flags,
asking a health endpoint again."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from typing import Any, NoReturn

import pytest
import yaml

from toolkit.lab.spec import Node
from toolkit.verify.cluster import Cluster, Run

# pytest's record_property fixture
RecordProperty = Callable[[str, object], None]
HEALTH_ATTEMPTS = 3
HEALTH_RETRY_S = 5


def fail(summary: str, *evidence: str) -> NoReturn:
    """Fail the current check with a one-line summary and the evidence below it."""
    pytest.fail("\n\n".join([summary, *(e for e in evidence if e)]), pytrace=False)


def expect(condition: object, summary: str, *evidence: str) -> None:
    if not condition:
        fail(summary, *evidence)


def registered(nodes_json: dict[str, Any], kube_node: Node) -> dict[str, Any]:
    """The Node object of ``kube_node`` (from the cluster's Nodes by name); a failed check
    listing the registered ones otherwise."""
    node = nodes_json.get(kube_node.name)
    if node is None:
        fail(f"{kube_node.name} is not registered in the cluster", ", ".join(sorted(nodes_json)))
    return dict(node)


def static_pod_flags(manifest_text: str) -> dict[str, str]:
    """The ``--flag=value`` arguments of a static Pod manifest's first container."""
    try:
        manifest: Any = yaml.safe_load(manifest_text)
        container = manifest["spec"]["containers"][0]
    except (yaml.YAMLError, KeyError, IndexError, TypeError):
        return {}
    flags = {}
    for arg in [*container.get("command", []), *container.get("args", [])]:
        if str(arg).startswith("--"):
            key, _, value = str(arg)[2:].partition("=")
            flags[key] = value
    return flags


def cmdline_flags(cmdline: str) -> dict[str, str]:
    """``--flag=value`` and ``--flag value`` arguments of a process's command line."""
    flags: dict[str, str] = {}
    words = shlex.split(cmdline)
    for index, word in enumerate(words):
        if not word.startswith("--"):
            continue
        key, equals, value = word[2:].partition("=")
        if not equals and index + 1 < len(words) and not words[index + 1].startswith("--"):
            value = words[index + 1]
        flags[key] = value
    return flags


def running_command(name: str) -> str:
    """The ids of the running containers called ``name``: none when it does not run."""
    return f"crictl ps --name '^{name}$' --state running -q"


def asked_again(cluster: Cluster, node: Node, command: str, ok: Callable[[Run], bool]) -> list[Run]:
    """The answers to a health command, asked again after a failed one, HEALTH_ATTEMPTS at
    most, HEALTH_RETRY_S apart (as kubeadm waits for health): on a loaded machine one slow
    round trip fails a single answer, where a broken component fails every one."""
    runs = [cluster.run(node, command)]
    while not ok(runs[-1]) and len(runs) < HEALTH_ATTEMPTS:
        time.sleep(HEALTH_RETRY_S)
        runs.append(cluster.run(node, command, fresh=True))
    return runs
