"""Where the toolkit finds its sources and keeps what it generates.

Generated files never go into the source tree: per-lab state lives under the state
directory and expensive artifacts (node image recipe stamps, bundles) under the cache.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
INVENTORIES_DIR = REPO_ROOT / "inventories"
VAGRANT_DIR = REPO_ROOT / "vagrant"
PLAYBOOKS_DIR = REPO_ROOT / "playbooks"
ROLES_DIR = REPO_ROOT / "roles"


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var)
    return Path(value) if value else Path.home() / fallback


def cache_dir() -> Path:
    """``$K8SLAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/k8slab`` (``~/.cache/k8slab``)."""
    explicit = os.environ.get("K8SLAB_CACHE_DIR")
    return Path(explicit) if explicit else _xdg("XDG_CACHE_HOME", ".cache") / "k8slab"


def state_root() -> Path:
    """``$K8SLAB_STATE_DIR``, else ``$XDG_STATE_HOME/k8slab`` (``~/.local/state/k8slab``)."""
    explicit = os.environ.get("K8SLAB_STATE_DIR")
    return Path(explicit) if explicit else _xdg("XDG_STATE_HOME", ".local/state") / "k8slab"


def lab_state_dir(lab_name: str) -> Path:
    return state_root() / lab_name


def lab_lock_file(lab_name: str) -> Path:
    """The lab's lock, beside its state directory rather than in it: ``destroy`` removes
    that directory while holding the lock, and ``up`` takes the lock before it exists."""
    return state_root() / ".locks" / f"{lab_name}.lock"


def cache_lock_file(name: str) -> Path:
    """A machine-level lock kept in the user's own cache (never a shared, world-writable
    folder such as /tmp, where anyone could hold it or plant a symlink in its place)."""
    return cache_dir() / "locks" / name
