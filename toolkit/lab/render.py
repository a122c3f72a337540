"""Everything rendered from a lab spec: Vagrant's machine list, Ansible inventory, ssh config."""

from __future__ import annotations

from typing import Any

import yaml

from toolkit import constants
from toolkit.bundle.store import bundle_dir, bundles_root
from toolkit.hosts.engine import DockerNames, owner_labels
from toolkit.hosts.image import LOGIN_USER
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


def _host_vars(node: Node) -> dict[str, Any]:
    return {
        "ansible_host": str(node.address),
        "k8slab_node_address": str(node.address),
        "k8slab_container_runtime": node.container_runtime,
        **constants.node_runtime_vars(node.container_runtime),
    }


def _node_kind_vars(lab: Lab) -> dict[str, Any]:
    """What differs between container nodes and VM nodes for the roles."""
    if lab.provider == "docker":
        return {
            "k8slab_container_node": True,
            # systemd in a container does not own its cgroup tree, so the kubelet and
            # containerd manage cgroups directly, under the node container's own cgroup.
            "k8slab_cgroup_driver": "cgroupfs",
            "k8slab_bundle_dir_on_node": f"{NODE_BUNDLES_DIR}/{lab.kubernetes_version}",
        }
    return {"k8slab_container_node": False, "k8slab_cgroup_driver": "systemd"}


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
                "k8slab_lab_subnet": str(lab.network.subnet),
                "k8slab_pod_cidr": str(lab.network.pod_cidr),
                "k8slab_service_cidr": str(lab.network.service_cidr),
                "k8slab_api_vip": str(lab.api_vip),
                "k8slab_api_port": lab.api_port,
                "k8slab_bundle_dir": str(bundle_dir(lab.kubernetes_version)),
                # Lab hosts here are cgroup v1; 1.35+ kubelets refuse that unless told not to.
                "k8slab_kubelet_fail_cgroup_v1": not release(
                    lab.kubernetes_version
                ).needs_fail_cgroup_v1_false,
                **_node_kind_vars(lab),
                # Node paths and ports the toolkit shares with the roles (toolkit/constants.py).
                **constants.inventory_vars(),
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
        blocks.append(
            f"Host {node.name}\n"
            f"  HostName {node.address}\n"
            f"  User {LOGIN_USER}\n"
            f"  IdentityFile {state.private_key}\n"
            f"  IdentitiesOnly yes\n"
            f"  StrictHostKeyChecking accept-new\n"
            f"  UserKnownHostsFile {state.known_hosts}\n"
            f"  LogLevel ERROR\n"
        )
    return "\n".join(blocks)
