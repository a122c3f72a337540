"""Files replaced whole, so a reader (or a run killed in the middle) sees the old text or
the new one, never a part: written beside the file, synced, renamed over it, the folder
synced so the rename survives a crash too."""

from __future__ import annotations

import os
from pathlib import Path


def replace_file(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` as ``path``'s whole content, durably, with permissions ``mode``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), mode)  # os.open's mode is narrowed by the umask
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
