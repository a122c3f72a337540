"""The addons role's check of a kubelet's serving certificate request: approved only when it
is for the node's own name and addresses, from that node, for serving, on real CSRs."""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.helpers.modules import load_file

PLUGIN = Path(__file__).resolve().parents[2] / "roles" / "addons" / "filter_plugins" / "csr.py"
check: Callable[..., list[str]] = load_file(
    "addons_csr_filter", PLUGIN
).k8slab_kubelet_serving_csr_problems

KEY = ec.generate_private_key(ec.SECP256R1())


def _csr(
    common: str = "system:node:w1",
    org: str = "system:nodes",
    names: tuple[str, ...] = ("w1",),
    ips: tuple[str, ...] = ("172.30.1.21",),
    extra: x509.ExtensionType | None = None,
    **spec: Any,
) -> dict[str, Any]:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if extra is not None:
        builder = builder.add_extension(extra, critical=False)
    pem = builder.sign(KEY, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    return {
        "metadata": {"name": "csr-abc"},
        "spec": {
            "signerName": "kubernetes.io/kubelet-serving",
            "username": "system:node:w1",
            "usages": ["digital signature", "server auth"],
            "request": base64.b64encode(pem).decode(),
            **spec,
        },
    }


def test_the_node_s_own_request_passes() -> None:
    assert check(_csr(), "w1", ["172.30.1.21"]) == []


@pytest.mark.parametrize(
    ("csr", "problem"),
    [
        (_csr(names=("w1", "cp1")), "DNS names ['cp1'] are not the node's"),
        (
            _csr(ips=("172.30.1.21", "172.30.1.100")),
            "addresses ['172.30.1.100'] are not the node's",
        ),
        (_csr(username="system:node:w2"), "asked by 'system:node:w2', not system:node:w1"),
        (_csr(common="system:node:w2"), "subject is"),
        (_csr(org="system:masters"), "subject is"),
        (_csr(signerName="kubernetes.io/kube-apiserver-client-kubelet"), "signer is"),
        (_csr(usages=["client auth"]), "are not a serving certificate's"),
        (_csr(usages=["server auth", "client auth"]), "are not a serving certificate's"),
        (_csr(names=(), ips=()), "it names no DNS name or address"),
        (
            _csr(extra=x509.BasicConstraints(ca=True, path_length=None)),
            "it asks for other extensions too",
        ),
        (_csr(request=base64.b64encode(b"junk").decode()), "the request is not a PEM CSR"),
    ],
)
def test_a_request_beyond_the_node_s_identity_is_refused_naming_why(
    csr: dict[str, Any], problem: str
) -> None:
    problems = check(csr, "w1", ["172.30.1.21"])
    assert any(problem in p and p.startswith("csr-abc: ") for p in problems), problems
