"""Ansible filters for kubeadm's output."""

from __future__ import annotations

import re
from typing import Any

SECRET_FLAGS = re.compile(
    r"(--token|--certificate-key|--discovery-token-ca-cert-hash)(\s+|=)\S+"
)
SECRET_FIELDS = re.compile(r"([a-z0-9]{6}\.[a-z0-9]{16})")


def kubeadm_failure(result: dict[str, Any]) -> str:
    """The end of a failed kubeadm run's output, with tokens and keys redacted."""
    output = "\n".join(part for part in (result.get("stdout"), result.get("stderr")) if part)
    tail = "\n".join(output.strip().splitlines()[-25:])
    redacted = SECRET_FIELDS.sub("<token>", SECRET_FLAGS.sub(r"\1 <redacted>", tail))
    return f"kubeadm exited {result.get('rc')}:\n{redacted}"


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"k8slab_kubeadm_failure": kubeadm_failure}
