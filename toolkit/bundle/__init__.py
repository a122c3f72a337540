"""Versioned, verified bundles of the Kubernetes binaries and images a lab installs."""

from toolkit.bundle.build import SOURCES, BuildResult, build
from toolkit.bundle.manifest import Artifact, Manifest
from toolkit.bundle.store import BundleStatus, bundle_dir, list_bundles, load, verify

__all__ = [
    "SOURCES",
    "Artifact",
    "BuildResult",
    "BundleStatus",
    "Manifest",
    "build",
    "bundle_dir",
    "list_bundles",
    "load",
    "verify",
]
