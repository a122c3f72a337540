"""Click parameter types and decorators shared by the commands."""

from __future__ import annotations

import functools
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import click

from toolkit.errors import SpecError
from toolkit.lab import spec
from toolkit.lab.state import check_lab_argument, is_lab_name, lab_lock

P = ParamSpec("P")
R = TypeVar("R")


class LabParam(click.ParamType[str, str]):
    """LAB: a lab name or a path to a lab.yml, checked before any command uses it.

    A bad value raises the toolkit's own LabNameError (not click's usage error), so the
    CLI's error boundary prints it on one line like every other refusal.
    """

    name = "lab"

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        return check_lab_argument(value)


LAB = LabParam()


def only_some(
    flag: str, dest: str, choices: list[str] | tuple[str, ...], what: str
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A repeatable ``--flag NAME`` limiting a command to some of ``choices`` (all by default)."""
    return click.option(
        flag,
        dest,
        multiple=True,
        type=click.Choice(choices),
        help=f"Run only this {what} (repeatable).",
    )


def changes_lab(command: Callable[P, R]) -> Callable[P, R]:
    """Run a command that changes its ``lab`` under the lab's lock, from the moment its
    arguments are parsed until it returns or fails; another such command on the same lab
    is refused at once with the holder named.

    Locks are taken here, at the CLI boundary, never in the library: a drill that calls
    verify, or a test that calls the library, never waits on itself. Commands that only
    read (validate, labs, status, etcd backups) and the user's own hands on the lab
    (kubectl, ssh, e.g. to watch a drill) take no lock.
    """

    @functools.wraps(command)
    def locked(*args: P.args, **kwargs: P.kwargs) -> R:
        name = _lab_name(str(kwargs["lab"]))
        if name is None:  # an unreadable spec: the command refuses it before changing anything
            return command(*args, **kwargs)
        with lab_lock(name, _command_line()):
            return command(*args, **kwargs)

    return locked


def _lab_name(value: str) -> str | None:
    """The name a LAB argument locks: itself, or the name in the spec file it points to."""
    if is_lab_name(value):
        return value
    try:
        return spec.load_lab(value).name
    except SpecError:
        return None


def _command_line() -> str:
    """This process's command line as a user would type it, for whoever finds the lab busy."""
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
