"""The redaction filter for kubeadm's output, on the shapes kubeadm really prints."""

# kubeadm's output is quoted as it prints it, long lines included.
# ruff: noqa: E501

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.helpers.modules import load_file

PLUGIN = Path(__file__).resolve().parents[2] / "roles" / "common" / "filter_plugins" / "kubeadm.py"

TOKEN = "k8slab.0123456789abcdef"
CERT_KEY = "9555b74008f24687eb964bd90a164ecb5760a89481d9c55a77c129b7db438168"
CA_HASH = "5b1ec3b8e5f9d0a2c4e6f8a0b2d4c6e8f0a1b3c5d7e9f1a3b5c7d9e1f3a5b7c9"
# The CA hash pins a public key and is no secret, but the join command hides it too.
SECRETS = [TOKEN, CERT_KEY]

# `kubeadm init --config ... --upload-certs` (v1.34), from the upload-certs phase on.
INIT_OUTPUT = f"""\
[upload-config] Storing the configuration used in ConfigMap "kubeadm-config" in the "kube-system" Namespace
[kubelet] Creating a ConfigMap "kubelet-config" in namespace kube-system with the configuration for the kubelets in the cluster
[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace
[upload-certs] Using certificate key:
{CERT_KEY}
[mark-control-plane] Marking the node cp1 as control-plane by adding the labels: [node-role.kubernetes.io/control-plane node.kubernetes.io/exclude-from-external-load-balancers]
[mark-control-plane] Marking the node cp1 as control-plane by adding the taints [node-role.kubernetes.io/control-plane:NoSchedule]
[bootstrap-token] Using token: {TOKEN}
[bootstrap-token] Configuring bootstrap tokens, cluster-info ConfigMap, RBAC Roles
[bootstrap-token] Creating the "cluster-info" ConfigMap in the "kube-public" namespace
[kubelet-finalize] Updating "/etc/kubernetes/kubelet.conf" to point to a rotatable kubelet client certificate and key
[addons] Applied essential addon: CoreDNS
[addons] Applied essential addon: kube-proxy

Your Kubernetes control-plane has initialized successfully!

To start using your cluster, you need to run the following as a regular user:

  mkdir -p $HOME/.kube
  sudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config
  sudo chown $(id -u):$(id -g) $HOME/.kube/config

You can now join any number of control-plane nodes running the following command on each as root:

  kubeadm join 172.30.2.100:8443 --token {TOKEN} \\
\t--discovery-token-ca-cert-hash sha256:{CA_HASH} \\
\t--control-plane --certificate-key {CERT_KEY}

Please note that the certificate-key gives access to cluster sensitive data, keep it secret!
As a safeguard, uploaded-certs will be deleted in two hours; If necessary, you can use
"kubeadm init phase upload-certs --upload-certs" to reload certs afterward.

Then you can join any number of worker nodes by running the following on each as root:

kubeadm join 172.30.2.100:8443 --token {TOKEN} \\
\t--discovery-token-ca-cert-hash sha256:{CA_HASH}
"""

# An init that fails late: the key was printed, then a phase after upload-certs failed.
FAILED_INIT_STDOUT = "\n".join(INIT_OUTPUT.splitlines()[:9])
FAILED_INIT_STDERR = """\
error: error execution phase bootstrap-token/cluster-info: unable to create ConfigMap: \
Post "https://172.30.2.100:8443/api/v1/namespaces/kube-public/configmaps?timeout=10s": \
net/http: request canceled (Client.Timeout exceeded while awaiting headers)
To see the stack trace of this error execute with --v=5 or higher"""

# kubeadm's configuration as `--v=5` or an error quoting it prints it.
CONFIG_YAML = f"""\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- token: "{TOKEN}"
  ttl: 1h0m0s
certificateKey: "{CERT_KEY}"
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
controlPlane:
  certificateKey: {CERT_KEY}
discovery:
  bootstrapToken:
    caCertHashes:
    - sha256:{CA_HASH}
    token: {TOKEN}
"""
CONFIG_JSON = f'{{"kind":"InitConfiguration","certificateKey":"{CERT_KEY}"}}'


@pytest.fixture(scope="module")
def plugin() -> ModuleType:
    return load_file("k8slab_filter_kubeadm", PLUGIN)


@pytest.fixture
def failure(plugin: ModuleType) -> Callable[[dict[str, Any]], str]:
    return plugin.FilterModule().filters()["k8slab_kubeadm_failure"]  # type: ignore[no-any-return]


def leaked(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def test_a_late_init_failure_prints_no_secret(failure: Callable[[dict[str, Any]], str]) -> None:
    said = failure({"rc": 1, "stdout": FAILED_INIT_STDOUT, "stderr": FAILED_INIT_STDERR})
    assert leaked(said) == []
    assert said.startswith("kubeadm exited 1:\n")
    assert "[upload-certs] Using certificate key:\n<redacted>\n" in said
    assert "[bootstrap-token] Using token: <token>" in said
    assert "error execution phase bootstrap-token/cluster-info" in said


def test_the_join_commands_print_no_secret(failure: Callable[[dict[str, Any]], str]) -> None:
    said = failure({"rc": 1, "stdout": INIT_OUTPUT, "stderr": ""})
    assert leaked(said) == []
    assert CA_HASH not in said
    assert "--control-plane --certificate-key <redacted>" in said
    assert "--discovery-token-ca-cert-hash <redacted>" in said
    assert "kubeadm join 172.30.2.100:8443 --token <redacted>" in said


def test_a_key_whose_label_the_tail_cut_off_is_still_redacted(
    failure: Callable[[dict[str, Any]], str],
) -> None:
    # Only the last 25 lines are shown: here the key's line is the first of them.
    stdout = f"[upload-certs] Using certificate key:\n{CERT_KEY}\n" + "\n".join(
        f"[addons] line {n}" for n in range(24)
    )
    said = failure({"rc": 1, "stdout": stdout})
    assert "[upload-certs]" not in said
    assert leaked(said) == []


@pytest.mark.parametrize("text", [CONFIG_YAML, CONFIG_JSON], ids=["yaml", "json"])
def test_the_configuration_prints_no_secret(
    failure: Callable[[dict[str, Any]], str], text: str
) -> None:
    said = failure({"rc": 3, "stderr": text})
    assert leaked(said) == []
    assert "certificateKey" in said


def test_digests_and_ordinary_output_are_kept(plugin: ModuleType) -> None:
    image = "registry.k8s.io/pause@sha256:" + "ab" * 32
    text = f"[preflight] Pulling images\nfailed to pull {image}\n[kubelet-check] Initial timeout"
    assert plugin.redact(text) == text
