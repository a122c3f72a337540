"""Click parameter types shared by the commands."""

from __future__ import annotations

import click

from toolkit.lab.state import check_lab_argument


class LabParam(click.ParamType[str, str]):
    """LAB: a lab name or a path to a lab.yml, checked before any command uses it.

    A bad value raises the toolkit's own LabNameError (not click's usage error), so the
    CLI's error boundary prints it on one line like every other refusal.
    """

    name = "lab"

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        return check_lab_argument(value)


LAB = LabParam()
