"""Host facts for tests of the preflight's judgement."""

from __future__ import annotations

import dataclasses
import platform
from typing import Any

from toolkit.hosts.facts import HostFacts


def good(address: str, **changes: Any) -> HostFacts:
    """A host that passes: Debian 13, this machine's architecture, enough of everything."""
    facts = HostFacts(
        os_id="debian",
        os_version="13",
        os_name="Debian GNU/Linux 13 (trixie)",
        arch=platform.machine(),
        kernel="6.12.0-1-amd64",
        cpus=4,
        memory_mib=7900,
        var_free_gib=40.0,
        cgroup_version=2,
        swap_mib=0,
        container="none",
        systemd="running",
        python3="/usr/bin/python3",
        sudo=True,
        addresses={"lo": ["127.0.0.1/8"], "eth1": [f"{address}/24"]},
        time_sync="systemd-timesyncd",
        modules={"overlay": "loadable", "br_netfilter": "loadable"},
    )
    return dataclasses.replace(facts, **changes)
