"""``k8slab certs`` without hosts: kubeadm's and openssl's answers read, what expires soon,
the renewal's order and its refusal of an unhealthy lab, the table's exit status."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from toolkit.certs import expiry, run
from toolkit.certs.expiry import CertError, Certificate, expiring, parse_enddates, parse_kubeadm
from toolkit.cli import main
from toolkit.etcd import cluster
from toolkit.lab.spec import Lab, load_lab

KUBEADM = {
    "kind": "CertificateExpirationInfo",
    "apiVersion": "output.kubeadm.k8s.io/v1alpha3",
    "certificates": [
        {
            "name": "admin.conf",
            "expirationDate": "2027-11-28T21:00:00Z",
            "residualTime": 31535000,
            "externallyManaged": False,
            "caName": "ca",
            "missing": False,
        },
        {
            "name": "apiserver-etcd-client",
            "expirationDate": "2027-11-20T10:00:00Z",
            "residualTime": 30000000,
            "externallyManaged": True,
            "caName": "etcd-ca",
            "missing": False,
        },
        {"name": "etcd-server", "expirationDate": "0001-01-01T00:00:00Z", "missing": True},
    ],
    "certificateAuthorities": [
        {"name": "ca", "expirationDate": "2036-11-26T21:00:00Z", "externallyManaged": False}
    ],
}


def test_kubeadms_account_is_read_with_what_surrounds_it() -> None:
    text = "[check-expiration] Reading configuration\n" + json.dumps(KUBEADM) + "\nW1128 warn\n"
    found = parse_kubeadm("cp1", text)
    assert [(c.name, c.authority, c.managed_by) for c in found] == [
        ("ca", True, "kubeadm"),
        ("admin.conf", False, "kubeadm"),
        ("apiserver-etcd-client", False, "external"),
    ]
    assert found[1].not_after == datetime(2027, 11, 28, 21, tzinfo=UTC)


def test_kubeadm_without_json_is_an_error() -> None:
    with pytest.raises(CertError, match="cp1: kubeadm certs check-expiration said no JSON"):
        parse_kubeadm("cp1", "error: couldn't read the configuration")


def test_an_etcd_members_files_are_read_from_openssl() -> None:
    text = "\n".join(
        f"{name} notAfter=Nov 28 21:00:00 {2036 if name == 'ca' else 2027} GMT"
        for name in expiry.ETCD_FILES
    )
    found = parse_enddates("etcd1", text)
    assert [c.name for c in found] == [
        "etcd-ca",
        "etcd-server",
        "etcd-peer",
        "etcd-healthcheck-client",
    ]
    assert found[0].authority and found[0].not_after.year == 2036
    with pytest.raises(CertError, match="no expiry read for peer"):
        parse_enddates("etcd1", "\n".join(text.splitlines()[:2] + text.splitlines()[3:]))


def test_what_expires_within_the_days_given() -> None:
    now = datetime(2026, 11, 28, tzinfo=UTC)
    soon = Certificate("cp1", "apiserver", False, now + timedelta(days=29), "kubeadm")
    later = Certificate("cp1", "ca", True, now + timedelta(days=3650), "kubeadm")
    assert expiring([soon, later], now, 30) == [soon]


@pytest.fixture
def external(isolated_state: Path) -> Lab:
    return load_lab("ha-external")


def test_renewal_goes_one_control_plane_then_one_member_at_a_time(
    external: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    done: list[str] = []
    healthy = type("Health", (), {"problems": []})()
    monkeypatch.setattr(run.kube, "apiservers_not_ready", lambda lab: [])
    monkeypatch.setattr(cluster, "health", lambda topo: healthy)
    monkeypatch.setattr(
        run, "renew_control_plane", lambda lab, n, p: done.append(f"kubeadm {n.name}")
    )
    monkeypatch.setattr(run, "reissue_etcd_member", lambda lab, n, p: done.append(f"etcd {n.name}"))
    monkeypatch.setattr(run, "refresh_admin_kubeconfig", lambda lab: done.append("kubeconfig"))
    monkeypatch.setattr(run, "certificates", lambda lab: [])
    run.renew(external)
    assert done == [
        "kubeadm cp1",
        "kubeadm cp2",
        "kubeadm cp3",
        "etcd etcd1",
        "etcd etcd2",
        "etcd etcd3",
        "kubeconfig",
    ]


def test_renewal_refuses_an_unhealthy_lab(external: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    healthy = type("Health", (), {"problems": []})()
    monkeypatch.setattr(cluster, "health", lambda topo: healthy)
    monkeypatch.setattr(
        run.kube, "apiservers_not_ready", lambda lab: ["the API server on cp2 is not ready: x"]
    )
    monkeypatch.setattr(run, "renew_control_plane", lambda *a: pytest.fail("renewed anyway"))
    with pytest.raises(CertError, match="nothing was renewed: the API server on cp2"):
        run.renew(external)


def test_the_table_exits_1_when_one_expires_within_30_days(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = datetime.now(UTC)
    found: list[Any] = [Certificate("cp1", "ca", True, now + timedelta(days=3650), "kubeadm")]
    monkeypatch.setattr("toolkit.cli.certs.certificates", lambda lab: found)
    result = CliRunner().invoke(main, ["certs", "ha-stacked"])
    assert result.exit_code == 0, result.output
    assert "cp1       ca (CA)" in result.output
    found.append(Certificate("cp2", "apiserver", False, now + timedelta(days=10), "kubeadm"))
    result = CliRunner().invoke(main, ["certs", "ha-stacked"])
    assert result.exit_code == 1 and "expiring within 30 days: cp2/apiserver" in result.output


def test_the_renewed_admin_kubeconfig_replaces_the_lab_s_whole_and_private(
    isolated_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = load_lab("single")
    state = run.LabState.of(lab.name)
    state.write_text(state.kubeconfig, "old\n", 0o600)

    def fetch(lab: Lab, node: object, remote_path: str, local: Path) -> str:
        assert remote_path == "/etc/kubernetes/admin.conf"
        local.write_text("renewed\n")
        return "sha"

    monkeypatch.setattr(run.remote, "fetch", fetch)
    run.refresh_admin_kubeconfig(lab)
    assert state.kubeconfig.read_text() == "renewed\n"
    assert state.kubeconfig.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in state.root.iterdir() if p.name.startswith(".")) == []

    def unreachable(lab: Lab, node: object, remote_path: str, local: Path) -> str:
        local.write_text("half")
        raise run.HostError("cp1: connection reset")

    monkeypatch.setattr(run.remote, "fetch", unreachable)
    with pytest.raises(run.HostError):
        run.refresh_admin_kubeconfig(lab)
    assert state.kubeconfig.read_text() == "renewed\n"
    assert not state.kubeconfig.with_name(".kubeconfig.partial").exists()
