"""Small helpers the suites share: failing a check with its evidence, reading flags."""

from __future__ import annotations

import shlex
from typing import Any, NoReturn

import pytest
import yaml


def fail(summary: str, *evidence: str) -> NoReturn:
    """Fail the current check with a one-line summary and the evidence below it."""
    pytest.fail("\n\n".join([summary, *(e for e in evidence if e)]), pytrace=False)


def expect(condition: object, summary: str, *evidence: str) -> None:
    if not condition:
        fail(summary, *evidence)


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
