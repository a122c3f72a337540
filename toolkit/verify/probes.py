"""Probes run inside test Pods (``kubectl exec``): a TCP connection, a name lookup."""

from __future__ import annotations

from toolkit.verify.cluster import Cluster, Run

ATTEMPTS = 5


def in_pod(
    cluster: Cluster, key: str, script: str, container: str = "", timeout: float = 30
) -> Run:
    """Run a bash ``script`` in the Pod ``key`` (namespace/name)."""
    namespace, name = key.split("/")
    args = ["exec", "-n", namespace, name]
    if container:
        args += ["-c", container]
    return cluster.kubectl(*args, "--", "bash", "-c", script, timeout=timeout)


def tcp_probe(target: str, port: int, attempts: int = ATTEMPTS) -> str:
    """Bash: connect (bounded retries), print what the server says."""
    return (
        f"for i in $(seq {attempts}); do "
        f"timeout 3 bash -c 'exec 3<>/dev/tcp/{target}/{port} && cat <&3' && exit 0; sleep 1; "
        "done; exit 1"
    )
