"""Everything rendered from a lab spec: Vagrant's machine list, Ansible inventory, ssh config."""

from __future__ import annotations

import json
from typing import Any

import yaml

from toolkit import constants
from toolkit.bundle import cilium
from toolkit.bundle.store import bundle_dir, bundles_root
from toolkit.errors import HostError
from toolkit.hosts.engine import DockerNames, owner_labels
from toolkit.hosts.image import LOGIN_USER
from toolkit.hosts.ssh import SshTarget
from toolkit.lab import addons
from toolkit.lab.model import Login
from toolkit.lab.spec import Lab, Node
from toolkit.lab.state import LabState
from toolkit.versions import release

# The Debian 13 box for the VM providers (workstations with hardware virtualisation).
VM_BOX = "debian/trixie64"
# Where docker nodes see the controller's bundle cache (mounted read-only).
NODE_BUNDLES_DIR = "/opt/k8slab/bundles"
ROLE_NAMES = {"control_planes": "control-plane", "etcd": "etcd", "workers": "worker"}


def machines(
    lab: Lab, state: LabState, image: str | None = None, host_run_args: list[str] | None = None
) -> dict[str, Any]:
    """The machine list ``vagrant/Vagrantfile`` reads: one entry per node, per provider."""
    names = DockerNames(lab.name)
    hosts = [f"--add-host={node.name}:{node.address}" for node in lab.nodes]
    entries = []
    for node in lab.nodes:
        entry: dict[str, Any] = {
            "name": node.name,
            "hostname": node.name,
            "role": ROLE_NAMES[node.role],
            "address": str(node.address),
            "cpus": node.cpus,
            "memory_mb": node.memory_mb,
        }
        if lab.provider == "docker":
            entry["docker"] = {
                "container_name": names.container(node),
                "create_args": [
                    *(host_run_args or []),
                    *owner_labels(lab.name, state.root),
                    f"--volume={names.var_volume(node)}:/var",
                    f"--volume={state.public_key}:/etc/ssh/authorized_keys/{LOGIN_USER}:ro",
                    f"--volume={bundles_root()}:{NODE_BUNDLES_DIR}:ro",
                    f"--cpus={node.cpus}",
                    f"--memory={node.memory_mb}m",
                    *hosts,
                ],
            }
        entries.append(entry)
    return {
        "lab": lab.name,
        "provider": lab.provider,
        "network": {
            "name": names.network,
            "subnet": str(lab.network.subnet),
            "netmask": str(lab.network.subnet.netmask),
        },
        "ssh": {
            "username": LOGIN_USER,
            "private_key_path": str(state.private_key),
            "public_key_path": str(state.public_key),
        },
        "image": image,
        "box": VM_BOX,
        "hosts": {node.name: str(node.address) for node in lab.nodes},
        "machines": entries,
    }


def login(node: Node, state: LabState) -> Login:
    """How the toolkit, Ansible and ssh log in to a node: the spec's login on an existing
    host, the lab's own key pair on a host k8slab made."""
    return node.login or Login(LOGIN_USER, state.private_key)


def ssh_target(state: LabState, node: Node) -> SshTarget:
    """Where and as whom the Python side reaches a node, its key checked in known_hosts."""
    access = login(node, state)
    return SshTarget(
        node.name, str(node.address), access.user, access.key, state.known_hosts, access.port
    )


def _host_vars(node: Node) -> dict[str, Any]:
    own = (
        {
            "ansible_user": node.login.user,
            "ansible_ssh_private_key_file": str(node.login.key),
            "ansible_port": node.login.port,
        }
        if node.login
        else {}
    )
    return {
        "ansible_host": str(node.address),
        **own,
        "k8slab_node_address": str(node.address),
        # Empty: the interface that holds the node's address.
        "k8slab_lab_interface": node.interface or "",
        "k8slab_container_runtime": node.container_runtime,
        **constants.node_runtime_vars(node.container_runtime),
        "k8slab_zone": node.zone,
    }


def recorded_kinds(state: LabState) -> dict[str, str]:
    """Each reached host's ``systemd-detect-virt --container`` ("none": not a container)."""
    try:
        data = json.loads(state.host_kinds.read_text(encoding="utf-8"))
        return {name: str(entry["container"]) for name, entry in data.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _node_kind_vars(lab: Lab, state: LabState) -> dict[str, Any]:
    """What differs between container nodes and machines (VMs or not) for the roles,
    chosen by what the hosts said they are when last reached, never by the provider; left
    out until every host has been reached (every playbook run reaches them first)."""
    found: dict[str, Any] = {}
    if lab.provider == "docker":
        found["k8slab_bundle_dir_on_node"] = f"{NODE_BUNDLES_DIR}/{lab.kubernetes_version}"
    kinds = recorded_kinds(state)
    if any(node.name not in kinds for node in lab.nodes):
        return found
    containers = [node.name for node in lab.nodes if kinds[node.name] != "none"]
    if containers and len(containers) < len(lab.nodes):
        machines = [node.name for node in lab.nodes if node.name not in containers]
        raise HostError(
            f"lab {lab.name} mixes containers ({', '.join(containers)}) and machines "
            f"({', '.join(machines)}); the kubelet's cgroup driver is cluster-wide in "
            "kubeadm's configuration, so a lab's hosts must all be one or the other"
        )
    # systemd in a container does not own its cgroup tree, so the kubelet and containerd
    # manage cgroups directly, under the node container's own cgroup.
    found["k8slab_container_node"] = bool(containers)
    found["k8slab_cgroup_driver"] = "cgroupfs" if containers else "systemd"
    return found


def inventory(lab: Lab, state: LabState) -> dict[str, Any]:
    """An Ansible YAML inventory with kubespray's group names."""

    def group(nodes: list[Node]) -> dict[str, Any]:
        return {"hosts": {node.name: _host_vars(node) for node in nodes}}

    return {
        "all": {
            "vars": {
                "ansible_user": LOGIN_USER,
                "ansible_become": True,
                "ansible_ssh_private_key_file": str(state.private_key),
                # Ansible only checks host keys (Mitogen's connection would otherwise turn the
                # check off); the toolkit records each host's key on first contact.
                "ansible_host_key_checking": True,
                "ansible_ssh_common_args": (
                    f"-o StrictHostKeyChecking=accept-new "
                    f"-o UserKnownHostsFile={state.known_hosts} -o IdentitiesOnly=yes"
                ),
                "ansible_python_interpreter": "/usr/bin/python3",
                "k8slab_lab": lab.name,
                "k8slab_provider": lab.provider,
                "k8slab_kubernetes_version": lab.kubernetes_version,
                "k8slab_etcd_topology": lab.etcd_topology,
                "k8slab_cni": lab.cni,
                "k8slab_cloud_provider": lab.cloud_provider,
                "k8slab_region": lab.region,
                # What enforces NetworkPolicy: "" (nothing) or cilium, chained after the CNI.
                "k8slab_policy_agent": lab.policy_agent.name if lab.policy_agent else "",
                # Its manifest for the lab's CNI, inside the bundle's cilium part.
                "k8slab_policy_manifest": cilium.manifest_path(lab.cni),
                "k8slab_lab_subnet": str(lab.network.subnet),
                "k8slab_pod_cidr": str(lab.network.pod_cidr),
                "k8slab_service_cidr": str(lab.network.service_cidr),
                "k8slab_api_vip": str(lab.api_vip),
                "k8slab_api_port": lab.api_port,
                # LoadBalancer Services' addresses (MetalLB's IPAddressPool); none: no MetalLB.
                "k8slab_load_balancer_pool": [
                    str(entry) for entry in (lab.load_balancer.pool if lab.load_balancer else ())
                ],
                "k8slab_bundle_dir": str(bundle_dir(lab.kubernetes_version)),
                # Lab hosts here are cgroup v1; 1.35+ kubelets refuse that unless told not to.
                "k8slab_kubelet_fail_cgroup_v1": not release(
                    lab.kubernetes_version
                ).needs_fail_cgroup_v1_false,
                **_node_kind_vars(lab, state),
                # Node paths and ports the toolkit shares with the roles (toolkit/constants.py).
                **constants.inventory_vars(),
                # The add-ons it asks for, their namespace and memory (toolkit/lab/addons.py).
                **addons.inventory_vars(lab.addons),
            },
            "children": {
                "k8s_cluster": {
                    "children": {
                        "kube_control_plane": group(lab.control_planes),
                        "kube_node": group(lab.workers),
                    }
                },
                "etcd": group(lab.etcd_members),
                "external_etcd": group(lab.etcd_hosts),
            },
        }
    }


def inventory_yaml(lab: Lab, state: LabState) -> str:
    header = f"# Generated by k8slab from {lab.source}; edit the lab spec, not this file.\n"
    return header + yaml.safe_dump(inventory(lab, state), sort_keys=False)


def ssh_config(lab: Lab, state: LabState) -> str:
    blocks = [f"# Generated by k8slab for lab {lab.name}: ssh -F {state.ssh_config} NODE\n"]
    for node in lab.nodes:
        access = login(node, state)
        blocks.append(
            f"Host {node.name}\n"
            f"  HostName {node.address}\n"
            f"  Port {access.port}\n"
            f"  User {access.user}\n"
            f"  IdentityFile {access.key}\n"
            f"  IdentitiesOnly yes\n"
            f"  StrictHostKeyChecking accept-new\n"
            f"  UserKnownHostsFile {state.known_hosts}\n"
            f"  LogLevel ERROR\n"
        )
    return "\n".join(blocks)
