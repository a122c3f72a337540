"""Editing a lab spec in place: nodes added to or removed from ``nodes.<role>``, every other
line (comments, blank lines, the order and style of what is there) kept as it was.

The edit is made on the text, at the positions PyYAML's composer gives for each node, in
the style the list already has (block or flow items, one-line or multi-line mappings);
the result is then read back as a spec and must be the same lab plus or minus exactly
those nodes, or nothing is written.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import yaml

from toolkit.errors import SpecError
from toolkit.lab.loader import MAX_SPEC_BYTES, spec_mapping
from toolkit.lab.model import Lab, Role
from toolkit.lab.schema import display_path
from toolkit.lab.spec import parse_lab


@dataclass(frozen=True)
class NewNode:
    """A node to add: its group under ``nodes:``, name and address, and its zone in a lab
    with a cloud ("" in one without)."""

    role: Role
    name: str
    address: ipaddress.IPv4Address
    zone: str = ""


def lab_from_text(text: str, path: Path) -> Lab:
    """The lab a spec text describes, validated as ``load_lab`` validates its file."""
    if len(text.encode("utf-8")) > MAX_SPEC_BYTES:
        raise SpecError(f"{display_path(path)}: the edited spec would pass {MAX_SPEC_BYTES} bytes")
    return parse_lab(spec_mapping(text, path), path)


def edited(before: Lab, text: str, add: list[NewNode], remove: list[str]) -> tuple[str, Lab]:
    """The spec text with ``add`` appended to their groups and ``remove`` taken out, and
    the lab it describes, checked to be ``before`` plus and minus exactly those nodes."""
    for name in remove:
        text = _remove(text, before.source, name)
    for node in add:
        text = _add(text, before.source, node)
    after = lab_from_text(text, before.source)
    problem = difference_problem(before, after, add, remove)
    if problem:
        raise SpecError(
            f"{display_path(before.source)}: the edit went wrong ({problem}); unchanged"
        )
    return text, after


def difference_problem(before: Lab, after: Lab, add: list[NewNode], remove: list[str]) -> str:
    """How ``after`` differs from ``before`` beyond the nodes added and removed ("" if not)."""
    if dataclasses.replace(after, nodes=()) != dataclasses.replace(before, nodes=()):
        return "a setting other than the nodes changed"
    kept = [node for node in before.nodes if node.name not in remove]
    expected = [(n.role, n.name, n.address) for n in kept] + [
        (n.role, n.name, n.address) for n in add
    ]
    got = [(n.role, n.name, n.address) for n in after.nodes]
    if sorted(got) != sorted(expected):
        names = sorted(name for _, name, _ in got)
        return f"nodes are {names}, expected {sorted(name for _, name, _ in expected)}"
    by_name = {node.name: node for node in after.nodes}
    changed = [node.name for node in kept if by_name[node.name] != node]
    if changed:
        return f"nodes {', '.join(changed)} changed"
    return ""


# --- where things are in the text ------------------------------------------------------------


def _compose(text: str, path: Path) -> yaml.MappingNode:
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(root, yaml.MappingNode):
        raise SpecError(f"{display_path(path)}: the lab spec must be a YAML mapping")
    return root


def _value(mapping: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    for key_node, value_node in mapping.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return key_node, value_node
    return None


def _nodes_mapping(root: yaml.MappingNode, path: Path) -> yaml.MappingNode:
    found = _value(root, "nodes")
    if found is None or not isinstance(found[1], yaml.MappingNode) or found[1].flow_style:
        raise SpecError(
            f"{display_path(path)}: nodes: must be a block mapping of groups to edit it in place"
        )
    return found[1]


def _last_content_line(lines: list[str], end: yaml.Mark) -> int:
    """The last line (0-based) holding text of a node that ends at ``end``: PyYAML ends a
    block node where the next token begins, past any blank and comment lines."""
    line = end.line
    if line >= len(lines) or not lines[line][: end.column].strip():
        line -= 1
    while line > 0 and (not lines[line].strip() or lines[line].lstrip().startswith("#")):
        line -= 1
    return line


def _entry(node: NewNode, style_of: yaml.Node | None, dash_col: int) -> list[str]:
    """The new item's lines, in the style of the group's last item."""
    pad = " " * dash_col
    if isinstance(style_of, yaml.MappingNode) and not style_of.flow_style:
        key_pad = " " * style_of.start_mark.column
        zone = [f"{key_pad}zone: {node.zone}\n"] if node.zone else []
        return [f"{pad}- name: {node.name}\n", f"{key_pad}address: {node.address}\n", *zone]
    flow_zone = f", zone: {node.zone}" if node.zone else ""
    return [f"{pad}- {{name: {node.name}, address: {node.address}{flow_zone}}}\n"]


def _add(text: str, path: Path, node: NewNode) -> str:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    nodes = _nodes_mapping(_compose("".join(lines), path), path)
    flow_item = f"{{name: {node.name}, address: {node.address}}}"
    found = _value(nodes, node.role.value)
    if found is None:  # no such group yet: a new key after the last group
        key_col = nodes.value[0][0].start_mark.column
        at = _last_content_line(lines, nodes.end_mark) + 1
        lines[at:at] = [f"{' ' * key_col}{node.role.value}:\n", *_entry(node, None, key_col + 2)]
        return "".join(lines)
    key, group = found
    if isinstance(group, yaml.SequenceNode) and group.flow_style:
        offset = group.end_mark.index - 1  # at the closing ]
        joined = "".join(lines)
        insert = f", {flow_item}" if group.value else flow_item
        return joined[:offset] + insert + joined[offset:]
    if isinstance(group, yaml.SequenceNode) and group.value:
        at = _last_content_line(lines, group.value[-1].end_mark) + 1
        lines[at:at] = _entry(node, group.value[-1], group.start_mark.column)
        return "".join(lines)
    if isinstance(group, yaml.ScalarNode) and group.value in ("", "~", "null"):
        at = key.start_mark.line + 1
        lines[key.start_mark.line] = lines[key.start_mark.line][: key.end_mark.column] + ":\n"
        lines[at:at] = _entry(node, None, key.start_mark.column + 2)
        return "".join(lines)
    raise SpecError(f"{display_path(path)}: nodes.{node.role.value}: is not a list to add to")


def _item_name(item: yaml.Node) -> str | None:
    if not isinstance(item, yaml.MappingNode):
        return None
    found = _value(item, "name")
    return found[1].value if found and isinstance(found[1], yaml.ScalarNode) else None


def _remove(text: str, path: Path, name: str) -> str:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    nodes = _nodes_mapping(_compose("".join(lines), path), path)
    for key, group in nodes.value:
        if not isinstance(group, yaml.SequenceNode):
            continue
        names = [_item_name(item) for item in group.value]
        if name not in names:
            continue
        index = names.index(name)
        item = group.value[index]
        joined = "".join(lines)
        if group.flow_style:
            if index + 1 < len(group.value):
                start, end = item.start_mark.index, group.value[index + 1].start_mark.index
            elif index > 0:
                start, end = group.value[index - 1].end_mark.index, item.end_mark.index
            else:
                start, end = item.start_mark.index, item.end_mark.index
            return joined[:start] + joined[end:]
        first, last = item.start_mark.line, _last_content_line(lines, item.end_mark)
        del lines[first : last + 1]
        if len(group.value) == 1:  # the group is empty now: say so, as a list
            row = key.start_mark.line
            lines[row] = lines[row][: key.end_mark.column] + ": []\n"
        return "".join(lines)
    raise SpecError(f"{display_path(path)}: has no node {name!r} under nodes:")
