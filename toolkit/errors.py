"""Error types of the toolkit, one per kind of failure.

The CLI catches :class:`K8slabError` once and prints its message on one line; the
traceback is shown only with ``--debug``.
"""

from __future__ import annotations


class K8slabError(Exception):
    """Base of every error the toolkit reports to a user."""


class SpecError(K8slabError):
    """A lab spec is missing, unreadable or invalid."""


class LabNotFoundError(SpecError):
    """No lab of that name under inventories/."""


class LabNameError(K8slabError):
    """A LAB argument or lab name that is neither a valid lab name nor a path to a spec."""


class StateError(K8slabError):
    """A lab's state directory is not where or what it must be (e.g. outside the state root)."""


class HostError(K8slabError):
    """A lab host could not be created, reached or removed."""


class EngineError(HostError):
    """The docker engine is missing, not running or refuses what a lab needs."""


class ImageError(K8slabError):
    """The node image could not be built."""


class CommandError(K8slabError):
    """An external command failed; the message carries its output."""

    def __init__(self, argv: list[str], returncode: int, output: str) -> None:
        tail = "\n".join(output.strip().splitlines()[-15:])
        super().__init__(f"`{' '.join(argv)}` exited {returncode}: {tail}")
        self.argv = argv
        self.returncode = returncode
        self.output = output


class BundleError(K8slabError):
    """An artifact bundle could not be built, fetched, verified or found."""


class ConformanceError(K8slabError):
    """The suite could not be run (the lab or the bundle is not ready, the Pod failed)."""
