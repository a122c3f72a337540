"""Renamed copies of shipped lab specs, for end-to-end tests that change a lab's shape
(scale, upgrade): the copy has a name and a subnet of its own, so its hosts, network and
state never touch the lab it was copied from, and the copy's comments stay (a test of an
in-place spec edit sees a real spec)."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterator
from pathlib import Path

from click.testing import CliRunner

from toolkit.cli import main
from toolkit.lab.loader import read_spec_text
from toolkit.lab.spec import Lab, available_labs, load_lab, spec_path

# Copies live in 172.30.200.0/24 and up: the shipped labs use 172.30.1-9.
COPY_SUBNET_BASE = 200
_IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")


def copy_subnet(source: str) -> ipaddress.IPv4Network:
    """The copy's own /24: one per shipped lab, never one a shipped lab uses."""
    index = available_labs().index(source)
    return ipaddress.IPv4Network(f"172.30.{COPY_SUBNET_BASE + index}.0/24")


def copy_lab(source: str, into: Path, suffix: str) -> Lab:
    """``inventories/<source>/lab.yml`` as ``<into>/<source>-<suffix>/lab.yml``: renamed, and
    every address of its subnet (the subnet itself, the VIP, each node) moved to the copy's
    own subnet at the same offset. Returns the copy, loaded (so validated)."""
    original = load_lab(source)
    old, new = original.network.subnet, copy_subnet(source)
    name = f"{original.name}-{suffix}"

    def moved(match: re.Match[str]) -> str:
        address = ipaddress.IPv4Address(match.group(0))
        if address not in old:
            return match.group(0)
        return str(new.network_address + (int(address) - int(old.network_address)))

    text = read_spec_text(spec_path(source))
    text, renamed = re.subn(
        rf"^name: {re.escape(original.name)}\s*$", f"name: {name}", text, flags=re.M
    )
    assert renamed == 1, f"{source}: no top-level name line to rename"
    path = into / name / "lab.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_IPV4.sub(moved, text), encoding="utf-8")
    copy = load_lab(path)
    assert copy.network.subnet == new and len(copy.nodes) == len(original.nodes)
    return copy


def up_copy(source: str, into: Path, suffix: str) -> Iterator[Lab]:
    """A fixture's body: the copy (see :func:`copy_lab`) brought up from nothing, yielded,
    then destroyed with its backups (K8SLAB_KEEP_LABS=1: left up)."""
    lab = copy_lab(source, into, suffix)
    spec = str(lab.source)
    CliRunner().invoke(main, ["destroy", "--purge", spec])
    result = CliRunner().invoke(main, ["up", spec])
    assert result.exit_code == 0, result.output
    yield lab
    if not os.environ.get("K8SLAB_KEEP_LABS"):
        CliRunner().invoke(main, ["destroy", "--purge", spec])
