"""Node-side constants the toolkit and the Ansible roles share: one home for both.

Python reads them from here; the rendered inventory (toolkit/lab/render.py) passes them to
Ansible as ``k8slab_*`` variables, and playbooks/group_vars/all.yml hands those to the
roles as inputs. A value changed here changes on the nodes at the next provision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The port every kube-apiserver binds on its node (kubeadm's default); the load balancer
# listens on the lab's own API port (the spec's api_port) in front of them.
APISERVER_PORT = 6443
# The secure ports the scheduler and the controller-manager serve /healthz on (their defaults).
SCHEDULER_PORT = 10259
CONTROLLER_MANAGER_PORT = 10257
# The cloud-controller-manager's secure port (upstream's default), on the control planes of
# a lab whose cloud_provider is k8slab; bound to loopback, as kubeadm binds the others.
CLOUD_CONTROLLER_MANAGER_PORT = 10258
# kubeadm's folder of static Pod manifests; the kubelet runs what is in it.
MANIFESTS_DIR = "/etc/kubernetes/manifests"
# etcd's data directory: kubeadm's stacked members and the etcd role's external members.
ETCD_DATA_DIR = "/var/lib/etcd"
# kubeadm's patches folder: init, join and upgrade read it (the kubelet role writes each
# container node's kubelet settings there, which `kubeadm upgrade` must apply again).
KUBEADM_PATCHES_DIR = "/etc/kubernetes/patches"
# etcd's plain-HTTP metrics listener (kubeadm's default port; /metrics and /health only):
# the monitoring add-on scrapes it on each member's lab address.
ETCD_METRICS_PORT = 2381
# Where `k8slab etcd restore` parks static Pod manifests while etcd is restored.
PARKED_MANIFESTS_DIR = "/etc/kubernetes/k8slab-parked"
# The toolkit's own work folder on a node (restores' snapshots, drills' probes).
NODE_STATE_DIR = "/var/lib/k8slab"
# A restore's staged snapshot and data on an etcd member.
ETCD_WORK_DIR = f"{NODE_STATE_DIR}/etcd"
# A drill's probe files and the admin credentials they use.
DRILL_DIR = f"{NODE_STATE_DIR}/drill"
# Where containerd sends a pull of an image a node lacks, whatever its registry: a port
# nothing listens on, so the pull fails at once. Every image a lab runs comes from the
# bundle, and lab nodes reach no registry outside the machine (Docker Hub included).
OFFLINE_REGISTRY = "https://127.0.0.1:1"
# k8slab's own registry name: the images its optional bundle parts build are tagged under
# it (conformance's test images, the add-ons'), so none can be taken for an upstream
# image, and a name the bundle lacks fails to pull instead of reaching a real registry.
# The base bundle keeps upstream's names (kubeadm asks for them), and its own flannel CNI
# plugin its module path, k8slab.local/flannel-cni.
IMAGE_REGISTRY = "k8slab.test"
# The sysctls Cilium's agent writes that are the whole machine's, not the node's, when
# nodes are containers sharing one kernel (pkg/datapath/loader/base.go): the bundle's
# manifests mask them read-only in the agent's view, the cilium role and verify check it.
CILIUM_MACHINE_SYSCTLS = ("kernel.unprivileged_bpf_disabled", "kernel.timer_migration")
# Where the artifacts role installs the bundle's binaries (kubeadm, kubelet, etcdctl...).
BIN_DIR = "/usr/local/bin"


@dataclass(frozen=True)
class CriRuntime:
    """A container runtime as the kubelet reaches it: the CRI socket and the unit serving it,
    and the optional bundle part it needs, if any (toolkit/bundle/parts.py)."""

    socket: str
    service: str
    bundle_part: str = ""

    @property
    def endpoint(self) -> str:
        """The socket as kubeadm's criSocket and crictl's --runtime-endpoint name it."""
        return f"unix://{self.socket}"


# Each runtime a spec's container_runtime may name (toolkit/lab/schema.py accepts these).
CRI_RUNTIMES = {
    "containerd": CriRuntime("/run/containerd/containerd.sock", "containerd.service"),
    # Docker Engine behind cri-dockerd, as Kubernetes supports it since dockershim's removal.
    "docker": CriRuntime("/run/cri-dockerd.sock", "cri-docker.service", "cri-dockerd"),
}
CONTAINERD = CRI_RUNTIMES["containerd"]

# What a spec's cloud_provider may name, each with the optional bundle part it needs:
# none (kubeadm's default: the kubelets set their own addresses, no cloud-controller-manager),
# or k8slab's own provider for lab hosts, a cloud-controller-manager with external kubelets.
CLOUD_PROVIDERS = {"none": "", "k8slab": "cloud-provider"}


def node_runtime_vars(runtime: str) -> dict[str, Any]:
    """One node's runtime as the rendered inventory gives it to that host."""
    cri = CRI_RUNTIMES[runtime]
    return {
        "k8slab_cri_socket": cri.socket,
        "k8slab_cri_endpoint": cri.endpoint,
        "k8slab_cri_service": cri.service,
    }


def inventory_vars() -> dict[str, Any]:
    """The constants as the rendered inventory gives them to every host."""
    return {
        "k8slab_apiserver_port": APISERVER_PORT,
        "k8slab_cloud_controller_manager_port": CLOUD_CONTROLLER_MANAGER_PORT,
        "k8slab_manifests_dir": MANIFESTS_DIR,
        "k8slab_kubeadm_patches_dir": KUBEADM_PATCHES_DIR,
        "k8slab_etcd_data_dir": ETCD_DATA_DIR,
        "k8slab_etcd_metrics_port": ETCD_METRICS_PORT,
        "k8slab_parked_manifests_dir": PARKED_MANIFESTS_DIR,
        "k8slab_etcd_work_dir": ETCD_WORK_DIR,
        "k8slab_drill_dir": DRILL_DIR,
        "k8slab_bin_dir": BIN_DIR,
        "k8slab_offline_registry": OFFLINE_REGISTRY,
        "k8slab_cilium_machine_sysctls": list(CILIUM_MACHINE_SYSCTLS),
    }
