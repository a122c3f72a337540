"""The check a kubelet's serving certificate request must pass before the addons role
approves it: for its own node's name and addresses only, from that node, for serving.

kube-controller-manager never approves kubelet-serving requests itself (a node could ask
for any name or address), so the role approves each one that this filter finds nothing
wrong with, and fails on one it does.
"""

from __future__ import annotations

import base64
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

SIGNER = "kubernetes.io/kubelet-serving"
ALLOWED_USAGES = {"digital signature", "key encipherment", "server auth"}


def k8slab_kubelet_serving_csr_problems(
    csr: dict[str, Any], node: str, addresses: list[str]
) -> list[str]:
    """What is wrong with CertificateSigningRequest ``csr`` as node ``node``'s serving
    certificate request, whose only addresses are ``addresses`` (nothing: approve it)."""
    spec = csr.get("spec", {})
    name = csr.get("metadata", {}).get("name", "?")
    identity = f"system:node:{node}"
    problems = []
    if spec.get("signerName") != SIGNER:
        problems.append(f"signer is {spec.get('signerName')!r}, not {SIGNER}")
    if spec.get("username") != identity:
        problems.append(f"asked by {spec.get('username')!r}, not {identity}")
    usages = set(spec.get("usages") or [])
    if "server auth" not in usages or not usages <= ALLOWED_USAGES:
        problems.append(f"usages {sorted(usages)} are not a serving certificate's")
    try:
        request = x509.load_pem_x509_csr(base64.b64decode(spec.get("request", "")))
    except ValueError as exc:
        return [f"{name}: {p}" for p in [*problems, f"the request is not a PEM CSR ({exc})"]]
    common = [a.value for a in request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = [a.value for a in request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    if common != [identity] or orgs != ["system:nodes"]:
        problems.append(f"subject is {request.subject.rfc4514_string()!r}")
    try:
        sans = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        sans = x509.SubjectAlternativeName([])
    names = set(sans.get_values_for_type(x509.DNSName))
    ips = {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    if not names | ips:
        problems.append("it names no DNS name or address")
    if names - {node}:
        problems.append(f"DNS names {sorted(names - {node})} are not the node's")
    if ips - set(addresses):
        problems.append(f"addresses {sorted(ips - set(addresses))} are not the node's")
    others = [e.oid.dotted_string for e in request.extensions if e.oid != sans.oid]
    if others:
        problems.append(f"it asks for other extensions too ({', '.join(others)})")
    return [f"{name}: {p}" for p in problems]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"k8slab_kubelet_serving_csr_problems": k8slab_kubelet_serving_csr_problems}
