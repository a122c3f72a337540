"""What each step of an upgrade does on the lab: kubeadm's commands on a node, drains,
the kubelet's restart, and the target bundle delivered the way provisioning delivers it
(the artifacts role, through the runtime phase's playbooks, one node at a time).

Every action is safe to run again on a node that already went through it, which is what
lets a run cut short go on from the step it was in.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, replace

import yaml

from toolkit import kube
from toolkit.constants import APISERVER_PORT, KUBEADM_PATCHES_DIR
from toolkit.errors import HostError
from toolkit.etcd import cluster
from toolkit.etcd.topology import Topology
from toolkit.hosts import remote
from toolkit.lab.spec import Lab, Node
from toolkit.poll import wait_until
from toolkit.progress import Progress
from toolkit.provision.run import Phase, run_playbook
from toolkit.upgrade.plan import UpgradeError
from toolkit.versions import KubernetesRelease

KUBEADM_TIMEOUT_S = 900
# kubectl drain's own bound; PodDisruptionBudgets may make it wait for new replicas.
DRAIN_TIMEOUT_S = 300
NODE_BACK_TIMEOUT_S = 300
ETCD_HEALTHY_TIMEOUT_S = 180
UPGRADE_ARTIFACTS = Phase("upgrade-artifacts", "upgrade_artifacts.yml")
RUNTIME = Phase("runtime", "runtime.yml")
ETCD = Phase("etcd", "etcd.yml")


@dataclass(frozen=True)
class Context:
    """An upgrade under way: the lab as its spec says, the versions, and the same lab at
    the target version (whose inventory the playbooks get)."""

    lab: Lab
    current: KubernetesRelease
    target: KubernetesRelease
    progress: Progress

    @property
    def target_lab(self) -> Lab:
        return replace(self.lab, kubernetes_version=self.target.version)


# --- the target bundle, delivered ---------------------------------------------------------


def deliver(
    ctx: Context,
    phase: Phase,
    limit: str,
    tags: tuple[str, ...] = (),
    binaries: tuple[str, ...] = (),
) -> None:
    """Run one of provisioning's playbooks at the target version on ``limit``."""
    extravars = {"k8slab_upgrade_binaries": list(binaries)} if phase == UPGRADE_ARTIFACTS else {}
    run_playbook(ctx.target_lab, phase, extravars, tags=tags, limit=limit, progress=ctx.progress)


def stage_images(ctx: Context) -> None:
    """Every image of the target bundle on every node, before kubeadm rolls kube-proxy
    and CoreDNS to them cluster-wide."""
    deliver(ctx, UPGRADE_ARTIFACTS, "k8s_cluster", ("artifacts_select", "artifacts_images"))


def deliver_kubeadm(ctx: Context, node: Node) -> None:
    deliver(
        ctx, UPGRADE_ARTIFACTS, node.name, ("artifacts_select", "artifacts_install"), ("kubeadm",)
    )


def deliver_node(ctx: Context, node: Node) -> None:
    """The rest of the node's part of the bundle: the runtime phase, at the target."""
    deliver(ctx, RUNTIME, node.name)


# --- kubeadm -------------------------------------------------------------------------------


def _skipped_checks(ctx: Context, node: Node) -> str:
    """kubeadm 1.35's preflight fails a cgroup v1 host (its system validators assume the
    kubelet refuses one) unless the check is skipped; the kubelet is told
    ``failCgroupV1: false`` (:func:`allow_cgroup_v1`), so this check alone is skipped, on
    such hosts only."""
    if not ctx.target.needs_fail_cgroup_v1_false:
        return ""
    kind = remote.root(ctx.lab, node, "stat -f -c %T /sys/fs/cgroup/").strip()
    return "" if kind == "cgroup2fs" else " --ignore-preflight-errors=SystemVerification"


def kubeadm_plan(ctx: Context) -> str:
    """``kubeadm upgrade plan TARGET`` on the first control plane (the new kubeadm); its
    output. With the version given, kubeadm asks no server on the internet for one."""
    node = ctx.lab.control_planes[0]
    command = f"kubeadm upgrade plan {shlex.quote(ctx.target.version)}"
    return remote.root(ctx.lab, node, command + _skipped_checks(ctx, node), KUBEADM_TIMEOUT_S)


def kubeadm_apply(ctx: Context, node: Node) -> None:
    """``kubeadm upgrade apply``: the first control plane's components, the cluster's
    configuration and add-ons (CoreDNS, kube-proxy), and a stacked etcd member."""
    command = (
        f"kubeadm upgrade apply {shlex.quote(ctx.target.version)} --yes "
        f"--patches {KUBEADM_PATCHES_DIR}"
    )
    remote.root(ctx.lab, node, command + _skipped_checks(ctx, node), KUBEADM_TIMEOUT_S)


def kubeadm_node(ctx: Context, node: Node) -> None:
    """``kubeadm upgrade node``: a control plane's static Pods (and stacked etcd member),
    and on every node the kubelet's configuration, with the node's own patches."""
    command = f"kubeadm upgrade node --patches {KUBEADM_PATCHES_DIR}"
    remote.root(ctx.lab, node, command + _skipped_checks(ctx, node), KUBEADM_TIMEOUT_S)


def allow_cgroup_v1(ctx: Context) -> bool:
    """Add ``failCgroupV1: false`` to the cluster's kubelet configuration (kubeadm's
    kubelet-config ConfigMap, which ``kubeadm upgrade`` writes onto every node) when the
    target kubelet needs it, as a new lab of that version gets it from kubeadm init.
    Whether it changed anything."""
    if not ctx.target.needs_fail_cgroup_v1_false:
        return False
    found = kube.kubectl_json(ctx.lab, ["get", "configmap", "kubelet-config", "-n", "kube-system"])
    text = str(found["data"]["kubelet"])
    config = yaml.safe_load(text)
    if config.get("failCgroupV1") is False:
        return False
    if "failCgroupV1" in config:
        raise UpgradeError(
            f"lab {ctx.lab.name}: the cluster's kubelet configuration sets failCgroupV1: "
            f"{config['failCgroupV1']}; a {ctx.target.version} kubelet would not start on "
            "these cgroup v1 hosts. Set it to false (kube-system/kubelet-config) first"
        )
    patched = text.rstrip("\n") + "\nfailCgroupV1: false\n"
    if yaml.safe_load(patched).get("failCgroupV1") is not False:
        raise UpgradeError(f"lab {ctx.lab.name}: cannot add failCgroupV1 to kubelet-config")
    patch = json.dumps({"data": {"kubelet": patched}})
    args = ["patch", "configmap", "kubelet-config", "-n", "kube-system", "--type", "merge"]
    kube.kubectl_ok(ctx.lab, [*args, "-p", patch])
    return True


# --- the node around kubeadm --------------------------------------------------------------


def drain(lab: Lab, node: Node) -> None:
    """Evict every Pod but DaemonSets' (the eviction API, so PodDisruptionBudgets hold)."""
    kube.kubectl_ok(
        lab,
        [
            "drain",
            node.name,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            f"--timeout={DRAIN_TIMEOUT_S}s",
        ],
        timeout=DRAIN_TIMEOUT_S + 60,
    )


def uncordon(lab: Lab, node: Node) -> None:
    kube.kubectl_ok(lab, ["uncordon", node.name])


def restart_kubelet(lab: Lab, node: Node) -> None:
    remote.root(lab, node, "systemctl daemon-reload && systemctl restart kubelet")


def kubelet_versions(lab: Lab) -> dict[str, str]:
    """Each registered node's kubelet version."""
    nodes = kube.kubectl_json(lab, ["get", "nodes"])
    return {
        item["metadata"]["name"]: item["status"]["nodeInfo"]["kubeletVersion"]
        for item in nodes["items"]
    }


def cluster_version(lab: Lab) -> str:
    """The version kubeadm last set up the cluster's control plane at (its ClusterConfiguration)."""
    found = kube.kubectl_json(lab, ["get", "configmap", "kubeadm-config", "-n", "kube-system"])
    config = yaml.safe_load(found["data"]["ClusterConfiguration"])
    return str(config["kubernetesVersion"])


def apiserver_versions(lab: Lab) -> dict[str, str]:
    """Each control plane's own API server's version, asked directly (through the VIP one
    answers for all), from the first control plane with the cluster's client certificate."""
    found = {}
    for node in lab.control_planes:
        url = shlex.quote(f"https://{node.address}:{APISERVER_PORT}/version")
        command = f"curl -sS --max-time 10 {kube.APISERVER_CLIENT_CERT} {url}"
        answer = remote.root(lab, lab.control_planes[0], command)
        try:
            found[f"{node.name} API server"] = str(json.loads(answer)["gitVersion"])
        except (ValueError, KeyError, TypeError) as exc:
            raise UpgradeError(f"{node.name}: its API server's /version said {answer!r}") from exc
    return found


def _node_not_back(lab: Lab, node: Node, version: str) -> list[str]:
    problems = []
    nodes = kube.kubectl_json(lab, ["get", "node", node.name])
    if not kube.is_ready(nodes):
        problems.append(f"{node.name} not Ready")
    running = nodes["status"]["nodeInfo"]["kubeletVersion"]
    if running != version:
        problems.append(f"{node.name}'s kubelet is {running}")
    return problems + kube.pods_not_ready_on(lab, node)


def wait_node_back(lab: Lab, node: Node, version: str) -> float:
    """Wait (bounded) until ``node`` is Ready with its kubelet at ``version`` and every Pod
    on it Running and Ready; the seconds waited."""
    return wait_until(
        lambda: _node_not_back(lab, node, version),
        lambda problems: not problems,
        timeout_s=NODE_BACK_TIMEOUT_S,
        interval_s=3,
        what=f"{node.name} back at {version}",
        retry_on=(HostError, kube.ClusterError),
    )


# --- external etcd ---------------------------------------------------------------------------


def upgrade_etcd_member(ctx: Context, member: Node) -> None:
    """One external member: the target bundle's etcd (runtime phase), then the etcd role,
    which restarts a member whose binary was replaced and waits for it; then the whole
    cluster healthy with one leader, and this member at the target's etcd."""
    deliver(ctx, RUNTIME, member.name)
    deliver(ctx, ETCD, member.name)
    topo = Topology(ctx.lab)
    cluster.wait_healthy(topo, ETCD_HEALTHY_TIMEOUT_S)
    url = next(m.client_url for m in topo.members if m.node == member)
    status = cluster.health(topo).answered.get(url)
    if status is None or status.version != ctx.target.etcd:
        raise UpgradeError(
            f"{member.name}: etcd reports version {status.version if status else 'nothing'} "
            f"after its upgrade, not {ctx.target.etcd}"
        )
