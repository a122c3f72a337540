"""Verification of a lab's cluster, part by part: ``run_verify`` runs the suites and
returns a :class:`VerifyReport` (also written as JUnit XML and Markdown)."""

from toolkit.verify.cluster import VerifyError
from toolkit.verify.report import CheckResult, VerifyReport
from toolkit.verify.run import GROUPS, run_verify

__all__ = ["GROUPS", "CheckResult", "VerifyError", "VerifyReport", "run_verify"]
