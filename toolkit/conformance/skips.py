"""Which specs a conformance run skips: the default list (``default-skips.txt``) and the
user's ``--skip``, joined into the one regex go-runner passes to ginkgo (``E2E_SKIP``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from toolkit.errors import K8slabError

DEFAULT_SKIPS = resources.files("toolkit.conformance") / "default-skips.txt"


class SkipListError(K8slabError):
    """A skip list or a --focus/--skip regex that ginkgo would refuse."""


@dataclass(frozen=True)
class Skip:
    regex: str
    reason: str


def parse(text: str, where: str = "the skip list") -> list[Skip]:
    """One regex a line; the comment lines right above a run of regex lines are the
    reason of each of them."""
    skips: list[Skip] = []
    comments: list[str] = []
    after_regex = False
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            comments, after_regex = [], False
        elif line.startswith("#"):
            if after_regex:
                comments, after_regex = [], False
            comments.append(line.lstrip("#").strip())
        else:
            check_regex(line, f"{where} line {number}")
            skips.append(Skip(line, " ".join(comments)))
            after_regex = True
    return skips


def default_skips() -> list[Skip]:
    return parse(DEFAULT_SKIPS.read_text(encoding="utf-8"), str(DEFAULT_SKIPS))


def check_regex(regex: str, what: str) -> str:
    """``regex`` if Python can compile it. Go's RE2, which ginkgo uses, accepts less than
    Python (no look-around, no backreferences): those are refused here too, so that a bad
    pattern fails now, not after the images are imported."""
    if any(ord(c) < 32 or ord(c) == 127 for c in regex):
        raise SkipListError(f"{what}: {regex!r} holds a control character (a line break?)")
    if re.search(r"\(\?<?[=!]|\\[1-9]", regex):
        raise SkipListError(f"{what}: {regex!r} uses look-around or a backreference (not RE2)")
    try:
        re.compile(regex)
    except re.error as exc:
        raise SkipListError(f"{what}: {regex!r} is not a regular expression: {exc}") from None
    return regex


def skip_regex(user: list[str], use_defaults: bool = True) -> str:
    """The ``E2E_SKIP`` regex: the user's ``--skip`` patterns and (unless told not to) the
    default ones, each a group of an alternation; empty when there are none."""
    patterns = [check_regex(p, "--skip") for p in user]
    if use_defaults:
        patterns += [s.regex for s in default_skips()]
    unique = list(dict.fromkeys(patterns))
    if len(unique) == 1:
        return unique[0]
    return "|".join(f"(?:{p})" for p in unique)
