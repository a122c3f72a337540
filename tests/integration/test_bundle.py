"""The real bundle: its binaries run a control plane, its images load and run.

Builds the default version's bundle into the user's cache (a no-op when it is there), so
the first run takes as long as a cold build. K8SLAB_TEST_KUBERNETES=v1.35.4 tests another.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from toolkit.bundle import Manifest, build
from toolkit.progress import Progress
from toolkit.versions import DEFAULT_KUBERNETES_VERSION

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VERSION = os.environ.get("K8SLAB_TEST_KUBERNETES", DEFAULT_KUBERNETES_VERSION)
DOCKER_CONTAINERD = "/var/run/docker/containerd/containerd.sock"


@pytest.fixture(scope="module")
def bundle() -> tuple[Path, Manifest]:
    result = build(VERSION, progress=Progress())
    return result.path, result.manifest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _CA:
    """A throwaway CA issuing the loopback certificates of one test."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "k8slab-test-ca")])
        self.cert = (
            self._builder(name, self.key.public_key())
            .issuer_name(name)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.path = self._write("ca", self.cert, self.key)

    @staticmethod
    def _builder(name: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=2))
        )

    def _write(self, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Path:
        (self.folder / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (self.folder / f"{stem}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return self.folder / f"{stem}.crt"

    def issue(self, stem: str, common_name: str, organization: str = "") -> Path:
        """A server-and-client certificate for 127.0.0.1 and localhost."""
        key = ec.generate_private_key(ec.SECP256R1())
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        if organization:
            attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
        cert = (
            self._builder(x509.Name(attributes), key.public_key())
            .issuer_name(self.cert.subject)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        return self._write(stem, cert, key)


def _wait_for_ok(url: str, context: ssl.SSLContext, proc: subprocess.Popen[bytes]) -> str:
    """Poll ``url`` until it answers 200, at most 120 s, failing early if ``proc`` dies."""
    last = ""
    for _ in range(120):
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url, context=context, timeout=5) as response:
                body: str = response.read().decode()
                return body
        except OSError as exc:
            last = str(exc)
        time.sleep(1)
    raise AssertionError(f"{url} never answered 200 (last: {last}, exit {proc.poll()})")


@pytest.fixture
def etcd(bundle: tuple[Path, Manifest], tmp_path: Path) -> Iterator[tuple[str, _CA]]:
    folder, _ = bundle
    ca = _CA(tmp_path)
    ca.issue("etcd", "etcd")
    client_port, peer_port = _free_port(), _free_port()
    url = f"https://127.0.0.1:{client_port}"
    log = (tmp_path / "etcd.log").open("wb")
    proc = subprocess.Popen(
        [
            str(folder / "bin" / "etcd"),
            "--name=test",
            f"--data-dir={tmp_path / 'etcd-data'}",
            f"--listen-client-urls={url}",
            f"--advertise-client-urls={url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=test=http://127.0.0.1:{peer_port}",
            f"--cert-file={tmp_path / 'etcd.crt'}",
            f"--key-file={tmp_path / 'etcd.key'}",
            f"--trusted-ca-file={ca.path}",
            "--client-cert-auth",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        context = ssl.create_default_context(cafile=str(ca.path))
        context.load_cert_chain(tmp_path / "etcd.crt", tmp_path / "etcd.key")
        assert '"health":"true"' in _wait_for_ok(f"{url}/health", context, proc)
        yield url, ca
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_kube_apiserver_is_ready_against_the_bundles_etcd(
    bundle: tuple[Path, Manifest], etcd: tuple[str, _CA], tmp_path: Path
) -> None:
    folder, _ = bundle
    etcd_url, ca = etcd
    ca.issue("apiserver", "kube-apiserver")
    ca.issue("admin", "admin", organization="system:masters")
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "sa.key").write_bytes(
        sa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    port = _free_port()
    log_path = tmp_path / "kube-apiserver.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                str(folder / "bin" / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                f"--etcd-cafile={ca.path}",
                f"--etcd-certfile={tmp_path / 'apiserver.crt'}",
                f"--etcd-keyfile={tmp_path / 'apiserver.key'}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--tls-cert-file={tmp_path / 'apiserver.crt'}",
                f"--tls-private-key-file={tmp_path / 'apiserver.key'}",
                f"--client-ca-file={ca.path}",
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={tmp_path / 'sa.pub'}",
                f"--service-account-signing-key-file={tmp_path / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/12",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            context = ssl.create_default_context(cafile=str(ca.path))
            context.load_cert_chain(tmp_path / "admin.crt", tmp_path / "admin.key")
            try:
                body = _wait_for_ok(f"https://127.0.0.1:{port}/readyz", context, proc)
            except AssertionError:
                raise AssertionError(log_path.read_text()[-4000:]) from None
            assert body == "ok"
            version = _wait_for_ok(f"https://127.0.0.1:{port}/version", context, proc)
            assert json.loads(version)["gitVersion"] == VERSION
        finally:
            proc.terminate()
            proc.wait(timeout=60)


def test_kubeadm_lists_exactly_the_bundles_image_tags(bundle: tuple[Path, Manifest]) -> None:
    folder, manifest = bundle
    listed = subprocess.run(
        [
            str(folder / "bin" / "kubeadm"),
            "config",
            "images",
            "list",
            f"--kubernetes-version={VERSION}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    kubeadm_tags = [t for t in manifest.image_tags() if t.startswith("registry.k8s.io/")]
    assert listed == kubeadm_tags


@pytest.fixture
def containerd_namespace(bundle: tuple[Path, Manifest]) -> Iterator[list[str]]:
    """``ctr`` against the engine's containerd in a namespace of this test's own."""
    if not shutil.which("ctr") or not os.path.exists(DOCKER_CONTAINERD):
        pytest.skip("no ctr or no containerd socket of the docker engine here")
    ctr = ["ctr", "--address", DOCKER_CONTAINERD, "--namespace", f"k8slab-test-{os.getpid()}"]
    yield ctr
    for kind in ("containers", "images"):
        listed = subprocess.run([*ctr, kind, "ls", "-q"], capture_output=True, text=True)
        names = listed.stdout.split()
        if names:
            subprocess.run([*ctr, kind, "rm", *names], capture_output=True)
    subprocess.run([*ctr[:3], "namespaces", "rm", ctr[4]], capture_output=True)


def test_ctr_imports_every_image_under_its_kubeadm_tag_and_pause_runs(
    bundle: tuple[Path, Manifest], containerd_namespace: list[str]
) -> None:
    folder, manifest = bundle
    ctr = containerd_namespace
    for artifact in manifest.by_kind("image"):
        subprocess.run(
            [*ctr, "images", "import", str(folder / artifact.path)],
            check=True,
            capture_output=True,
        )
    listed = subprocess.run(
        [*ctr, "images", "ls", "-q"], check=True, capture_output=True, text=True
    ).stdout.split()
    assert sorted(listed) == sorted(manifest.image_tags())

    pause = next(t for t in manifest.image_tags() if "/pause:" in t)
    subprocess.run([*ctr, "run", "-d", pause, "k8slab-pause"], check=True, capture_output=True)
    try:
        tasks = subprocess.run(
            [*ctr, "tasks", "ls"], check=True, capture_output=True, text=True
        ).stdout
        assert "k8slab-pause" in tasks
        assert "RUNNING" in tasks
    finally:
        subprocess.run(
            [*ctr, "tasks", "kill", "-s", "SIGTERM", "k8slab-pause"], capture_output=True
        )
        for _ in range(20):
            gone = subprocess.run([*ctr, "tasks", "delete", "k8slab-pause"], capture_output=True)
            if gone.returncode == 0:
                break
            time.sleep(0.5)


def test_the_userland_images_carry_iptables_ipset_and_conntrack(
    bundle: tuple[Path, Manifest],
) -> None:
    folder, manifest = bundle
    proxy = next(a for a in manifest.by_kind("image") if "/kube-proxy:" in a.tag)
    subprocess.run(
        ["docker", "load", "-i", str(folder / proxy.path)], check=True, capture_output=True
    )
    out = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--entrypoint",
            "/bin/sh",
            proxy.tag,
            "-c",
            "iptables --version && command -v ipset && conntrack --version && kube-proxy --version",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "iptables v" in out
    assert "/usr/sbin/ipset" in out
    assert f"Kubernetes {VERSION}" in out


# How kubeadm's manifests (and flannel's DaemonSet) start each image, asked for its version.
IMAGE_COMMANDS = {
    "kube-apiserver": ["kube-apiserver", "--version"],
    "kube-controller-manager": ["kube-controller-manager", "--version"],
    "kube-scheduler": ["kube-scheduler", "--version"],
    "kube-proxy": ["/usr/local/bin/kube-proxy", "--version"],
    "etcd": ["etcd", "--version"],
    "coredns": ["-version"],  # the image's entrypoint is /coredns; kubeadm passes args
    "flannel": ["/opt/bin/flanneld", "--version"],
}


@pytest.mark.parametrize("name", IMAGE_COMMANDS)
def test_each_image_starts_its_command_as_kubeadm_does(
    bundle: tuple[Path, Manifest], name: str
) -> None:
    folder, manifest = bundle
    (image,) = [a for a in manifest.by_kind("image") if a.tag.rsplit(":", 1)[0].endswith(name)]
    subprocess.run(
        ["docker", "load", "-i", str(folder / image.path)], check=True, capture_output=True
    )
    command = IMAGE_COMMANDS[name]
    entrypoint = [] if name == "coredns" else ["--entrypoint", command[0]]
    args = command if name == "coredns" else command[1:]
    result = subprocess.run(
        ["docker", "run", "--rm", *entrypoint, image.tag, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # "v1.34.4" → "1.34.4", etcd's image revision "3.6.5-0" → "3.6.5"
    assert image.version.lstrip("v").split("-")[0] in output
