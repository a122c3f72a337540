"""Leader leases (coordination.k8s.io/v1 Lease): whether a live leader on a control plane
holds one. The scheduler, the controller-manager and the cloud-controller-manager each
elect their leader through a lease in kube-system; the holder renews it every few seconds
and its identity is ``<hostname>_<uuid>`` (host network: the node's name)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

DEFAULT_DURATION_S = 15  # leaseDurationSeconds when the lease does not say
# A leader renews every few seconds, well inside the duration; the slack absorbs a slow
# API round trip and a busy machine (verify runs on two cores beside the lab).
SLACK_S = 10


def renewed_at(lease: dict[str, Any]) -> float | None:
    """When the lease was last renewed (epoch seconds), or None if never."""
    renewed = lease.get("spec", {}).get("renewTime")
    if not renewed:
        return None
    return datetime.fromisoformat(str(renewed).replace("Z", "+00:00")).timestamp()


def problems(
    lease: dict[str, Any], control_planes: Collection[str], now: float, since: float = 0.0
) -> list[str]:
    """What keeps ``lease`` from having a live leader on one of ``control_planes`` at epoch
    ``now``; with ``since`` (e.g. a restart), a renewal before it does not count."""
    spec = lease.get("spec", {})
    holder = str(spec.get("holderIdentity") or "")
    found = []
    if holder.split("_", 1)[0] not in control_planes:
        found.append(f"held by {holder!r}, not by a control plane")
    at = renewed_at(lease)
    limit = int(spec.get("leaseDurationSeconds") or DEFAULT_DURATION_S) + SLACK_S
    if at is None:
        found.append("never renewed")
    elif at < since:
        found.append(f"not renewed since {now - since:.0f} s ago")
    elif now - at > limit:
        found.append(f"last renewed {now - at:.0f} s ago (a leader renews within {limit} s)")
    return found
