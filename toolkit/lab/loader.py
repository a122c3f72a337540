"""Reading a lab spec file safely: a regular file of a spec's size, UTF-8 YAML without
anchors, aliases, merge keys, duplicate keys or deep nesting, whose top is a mapping.

Each refusal is one line naming the file and the fix (a :class:`SpecError`), raised before
the file can cost much time or memory.
"""

from __future__ import annotations

import errno
import stat
from pathlib import Path
from typing import Any

import yaml

from toolkit.errors import SpecError
from toolkit.lab.schema import display_path

# A spec of the shipped kind is under 1 KiB; PyYAML's pure-Python parser (the strict
# loader below needs it) reads a dense 32 KiB in about half a second on a busy 2-core host.
MAX_SPEC_BYTES = 32 * 1024
MAX_SPEC_DEPTH = 32


def read_spec(path: Path) -> dict[str, Any]:
    """The spec file's mapping; anything else, or a file that could cost much to read, is
    refused in one line naming the file and the fix."""
    return spec_mapping(read_spec_text(path), path)


def read_spec_text(path: Path) -> str:
    """The spec file's text, read with the same limits as :func:`read_spec` (for tools
    that edit a spec in place and must keep its comments)."""
    return _read_text(path)


def spec_mapping(text: str, path: Path) -> dict[str, Any]:
    """A spec's text, read as :func:`read_spec` reads its file (``path`` names it)."""
    data = _parse_yaml(text, path)
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise SpecError(
            f"{display_path(path)}: the lab spec must be a YAML mapping (key: value), "
            f"but it is {kind}"
        )
    return data


def _read_text(path: Path) -> str:
    """The file's text, read only once it is known to be a regular file of a spec's size."""
    where = display_path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise SpecError(f"{where}: cannot read it: it is {kind}; give the path of a lab.yml")
        if info.st_size > MAX_SPEC_BYTES:
            raise SpecError(f"{where}: {_too_big(info.st_size)}")
        with path.open("rb") as handle:
            raw = handle.read(MAX_SPEC_BYTES + 1)  # the file may have grown since stat()
    except FileNotFoundError:
        raise SpecError(f"{where}: file not found; create it (see inventories/single/)") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SpecError(
                f"{where}: is a symbolic link loop; point it at a real lab.yml"
            ) from None
        raise SpecError(f"{where}: cannot read it: {exc.strerror}; check its permissions") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(f"{where}: {_too_big(len(raw))}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"{where}: is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "a lab spec is YAML text"
        ) from None


def _too_big(size: int) -> str:
    shown = f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size} bytes"
    return (
        f"is {shown}; a lab spec is at most {MAX_SPEC_BYTES // 1024} KiB "
        "(the shipped ones are under 1 KiB): is this the right file?"
    )


def _too_deep_at(text: str) -> int | None:
    """The line where ``[``/``{`` nesting first passes MAX_SPEC_DEPTH, outside quotes and
    comments, or None. PyYAML's scanner slows down with every open flow level (20,000
    ``[`` took a second before the composer's own depth check was reached), so this
    linear look at the text comes first."""
    depth, quote, line, index = 0, "", 1, 0
    while index < len(text):
        char = text[index]
        if char == "\n":
            line += 1
        elif quote:
            if char == "\\" and quote == '"':
                index += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or text[index - 1] in " \t\n"):
            end = text.find("\n", index)
            index = len(text) if end < 0 else end
            continue
        elif char in "[{":
            depth += 1
            if depth > MAX_SPEC_DEPTH:
                return line
        elif char in "]}":
            depth = max(0, depth - 1)
        index += 1
    return None


def _parse_yaml(text: str, path: Path) -> Any:
    where = display_path(path)
    deep_at = _too_deep_at(text)
    if deep_at is not None:
        raise SpecError(
            f"{where}: line {deep_at}: nested more than {MAX_SPEC_DEPTH} levels deep; "
            "a lab spec needs four"
        )
    try:
        return yaml.load(text, Loader=_SpecLoader)  # a SafeLoader, only stricter
    except RecursionError:
        raise SpecError(f"{where}: nested too deeply to read; is this a lab spec?") from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise SpecError(
            f"{where}: line {line}: contains a control character (0x{exc.character:02x}); "
            "a lab spec is YAML text"
        ) from None
    except _Refused as exc:
        assert exc.problem_mark is not None
        raise SpecError(f"{where}: line {exc.problem_mark.line + 1}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise SpecError(f"{where}: not valid YAML{at}: {problem}") from None


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that a lab spec does not allow."""

    def __init__(self, problem: str, mark: yaml.Mark) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class _SpecLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader without what a lab spec never needs and a hostile file abuses.

    Anchors and aliases are refused where they appear (an alias bomb expands nine of them
    into 9**9 values), and so are merge keys and duplicate keys (YAML keeps the last one
    silently), each with its line. Nesting deeper than a spec's few levels is refused
    before Python's recursion limit turns it into a traceback.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in the stubs
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            sign = "*" if isinstance(event, yaml.AliasEvent) else "&"
            raise _Refused(
                f"{'alias' if sign == '*' else 'anchor'} {sign}{event.anchor}: anchors and "
                "aliases are not allowed in a lab spec; write each value out",
                event.start_mark,
            )
        if self._depth >= MAX_SPEC_DEPTH:
            raise _Refused(
                f"nested more than {MAX_SPEC_DEPTH} levels deep; a lab spec needs four",
                event.start_mark,
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _Refused(
                    "merge keys (<<) are not allowed in a lab spec; write each key out",
                    key_node.start_mark,
                )
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in first_line:
                    raise _Refused(
                        f"key {key!r} appears twice (first on line {first_line[key]}); keep one",
                        key_node.start_mark,
                    )
                first_line[key] = line
            except TypeError:  # an unhashable key: SafeLoader names it below
                pass
        return super().construct_mapping(node, deep)
