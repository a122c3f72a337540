"""Ansible filters for kubeadm's output."""

from __future__ import annotations

import re
from typing import Any

# Each pattern keeps what names the secret and the space after it (group 1, so the lines
# stay as kubeadm printed them) and replaces the secret itself.
REDACTIONS = [
    # kubeadm join ... --token T --discovery-token-ca-cert-hash sha256:H
    #                  --control-plane --certificate-key K   (also written --flag=value)
    re.compile(r"((?:--token|--certificate-key|--discovery-token-ca-cert-hash)(?:[ \t]+|=))\S+"),
    # `kubeadm init --upload-certs` prints the key on the line AFTER this one.
    re.compile(r"(Using certificate key:\s*)\S+"),
    # kubeadm's configuration (InitConfiguration, JoinConfiguration.controlPlane), as YAML
    # or JSON, the value quoted or not.
    re.compile(r"""(["']?certificateKey["']?\s*[:=]\s*)["']?[^\s"',}]+["']?"""),
]
# A bootstrap token wherever it appears (`token: abcdef.0123456789abcdef` in a config).
BOOTSTRAP_TOKEN = re.compile(r"[a-z0-9]{6}\.[a-z0-9]{16}")
# The certificate key is 32 random bytes in hex; catch it anywhere else it is printed
# (an error quoting it, a line cut from its label). A digest written `sha256:<hex>` stays.
BARE_KEY = re.compile(r"(?<![0-9A-Fa-f:])[0-9A-Fa-f]{64}(?![0-9A-Fa-f])")


def redact(text: str) -> str:
    """``text`` with kubeadm's bootstrap tokens, certificate key and CA hash redacted."""
    for pattern in REDACTIONS:
        text = pattern.sub(r"\1<redacted>", text)
    text = BOOTSTRAP_TOKEN.sub("<token>", text)
    return BARE_KEY.sub("<redacted>", text)


def kubeadm_failure(result: dict[str, Any]) -> str:
    """The end of a failed kubeadm run's output, with tokens and keys redacted.

    The whole output is redacted before its tail is taken, so a secret whose label is cut
    off by the tail is still recognised.
    """
    output = "\n".join(part for part in (result.get("stdout"), result.get("stderr")) if part)
    tail = "\n".join(redact(output).strip().splitlines()[-25:])
    return f"kubeadm exited {result.get('rc')}:\n{tail}"


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"k8slab_kubeadm_failure": kubeadm_failure}
