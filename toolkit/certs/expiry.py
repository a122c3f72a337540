"""When a lab's certificates expire, as data: kubeadm's own account of the control planes'
(``kubeadm certs check-expiration -o json``) and openssl's of the external etcd members'."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from toolkit.errors import K8slabError

# The files of an external etcd member's PKI (the etcd role's names), CA first.
ETCD_FILES = ("ca", "server", "peer", "healthcheck-client")
OPENSSL_DATE = "%b %d %H:%M:%S %Y %Z"


class CertError(K8slabError):
    """A certificate could not be read, or renewing them failed."""


@dataclass(frozen=True)
class Certificate:
    host: str
    name: str
    authority: bool
    not_after: datetime
    # kubeadm: kubeadm renews it; external: signed by a CA kubeadm lacks the key of;
    # etcd: the etcd role's (external etcd members).
    managed_by: str

    def left(self, now: datetime) -> timedelta:
        return self.not_after - now


def parse_kubeadm(host: str, text: str) -> list[Certificate]:
    """``kubeadm certs check-expiration -o json`` (kubeadm's CertificateExpirationInfo)."""
    try:
        # kubeadm may print a line before the JSON, and warnings after it.
        data, _ = json.JSONDecoder().raw_decode(text[text.index("{") :])
    except ValueError as exc:
        raise CertError(f"{host}: kubeadm certs check-expiration said no JSON: {exc}") from exc
    found = []
    for key, authority in (("certificateAuthorities", True), ("certificates", False)):
        for entry in data.get(key) or []:
            if entry.get("missing"):
                continue
            when = datetime.fromisoformat(entry["expirationDate"].replace("Z", "+00:00"))
            managed = "external" if entry.get("externallyManaged") else "kubeadm"
            found.append(Certificate(host, entry["name"], authority, when, managed))
    return found


def enddates_command(pki: str) -> str:
    """Shell printing ``NAME notAfter=DATE`` for each file of an etcd member's PKI."""
    return "; ".join(
        f"printf '%s ' {name}; openssl x509 -noout -enddate -in {pki}/{name}.crt"
        for name in ETCD_FILES
    )


def parse_enddates(host: str, text: str) -> list[Certificate]:
    """What :func:`enddates_command` printed."""
    found = []
    for line in text.splitlines():
        name, _, rest = line.partition(" notAfter=")
        if name not in ETCD_FILES or not rest:
            continue
        try:
            when = datetime.strptime(rest.strip(), OPENSSL_DATE).replace(tzinfo=UTC)
        except ValueError as exc:
            raise CertError(f"{host}: unreadable expiry of {name}.crt: {rest!r}") from exc
        found.append(Certificate(host, f"etcd-{name}", name == "ca", when, "etcd"))
    missing = set(ETCD_FILES) - {c.name.removeprefix("etcd-") for c in found}
    if missing:
        raise CertError(f"{host}: no expiry read for {', '.join(sorted(missing))}: {text!r}")
    return found


def expiring(certificates: list[Certificate], now: datetime, days: int) -> list[Certificate]:
    """The certificates that expire within ``days`` of ``now`` (or already have)."""
    return [c for c in certificates if c.left(now) < timedelta(days=days)]
