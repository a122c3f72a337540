"""Changing a lab spec in place: the one hand-written file stays the source of truth, so an
operation that changes what the lab is (``k8slab upgrade``) records it there.

The file is edited as text, one line, so its comments and layout stay as they were; the
result is read back through the whole validation (``parse_lab``) before it replaces the
file, atomically.
"""

from __future__ import annotations

import re

from toolkit.errors import SpecError
from toolkit.files import replace_file
from toolkit.lab.loader import read_spec_text, spec_mapping
from toolkit.lab.model import Lab
from toolkit.lab.schema import display_path
from toolkit.lab.spec import parse_lab

# A top-level ``kubernetes_version:`` line: its value (plain or quoted) and what follows it.
VERSION_LINE = re.compile(
    r"^kubernetes_version:[ \t]*(?P<value>\"[^\"\n]*\"|'[^'\n]*'|[^\s#]+)[^\n]*$",
    re.MULTILINE,
)


def with_kubernetes_version(text: str, version: str, where: str) -> str:
    """``text`` with its top-level ``kubernetes_version`` set to ``version``, every other
    byte unchanged; a spec without exactly one such line is refused."""
    found = list(VERSION_LINE.finditer(text))
    if len(found) != 1:
        raise SpecError(
            f"{where}: cannot record kubernetes_version {version}: the spec has "
            f"{len(found)} top-level `kubernetes_version:` lines, not one; set it by hand"
        )
    match = found[0]
    return f"{text[: match.start('value')]}{version}{text[match.end('value') :]}"


def record_kubernetes_version(lab: Lab, version: str) -> Lab:
    """Write ``version`` into the lab's spec file and return the lab as the file now says.

    The edited text is validated whole before it replaces the file; refused, with the file
    unchanged, when it would not validate or would describe another lab (name, nodes,
    addresses): only the version may change.
    """
    path = lab.source
    where = display_path(path)
    text = read_spec_text(path)
    edited = with_kubernetes_version(text, version, where)
    changed = parse_lab(spec_mapping(edited, path), path)
    if changed.kubernetes_version != version or _without_version(changed) != _without_version(lab):
        raise SpecError(f"{where}: editing kubernetes_version changed more than the version")
    if edited != text:
        replace_file(path, edited, path.stat().st_mode & 0o7777)
    return changed


def _without_version(lab: Lab) -> tuple[object, ...]:
    return (lab.name, lab.provider, lab.etcd_topology, lab.cni, lab.network, lab.api_vip, lab.nodes)
