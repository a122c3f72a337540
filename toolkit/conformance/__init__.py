"""Upstream's conformance suite run inside a lab (``k8slab conformance``): see run.py."""

from toolkit.conformance.run import Options, Result, run_conformance, summary_lines

__all__ = ["Options", "Result", "run_conformance", "summary_lines"]
