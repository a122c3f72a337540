from __future__ import annotations

from pathlib import Path

import pytest

from toolkit import doctor


def fake_vagrant(bin_dir: Path, plugin_list: str) -> None:
    script = bin_dir / "vagrant"
    script.write_text(f"#!/bin/sh\ncat <<'EOF'\n{plugin_list}\nEOF\n")
    script.chmod(0o755)


@pytest.mark.parametrize(
    ("plugin_list", "ok"),
    [
        ("vagrant-libvirt (0.11.2, system)", True),
        ("No plugins installed.", False),
        ("vagrant-libvirt-extra (1.0.0, global)", False),
    ],
)
def test_the_libvirt_plugin_is_reported_with_its_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plugin_list: str, ok: bool
) -> None:
    fake_vagrant(tmp_path, plugin_list)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    check = doctor._vagrant_plugin("vagrant-libvirt", "vagrant-libvirt", "libvirt labs")
    assert check.ok is ok
    assert check.fix == ("" if ok else "apt-get install -y vagrant-libvirt")


def test_the_checks_name_the_libvirt_plugin() -> None:
    names = [check.name for check in doctor.run_checks()]
    assert "vagrant plugin: vagrant-libvirt" in names


def test_the_python_checks_follow_the_package_metadata() -> None:
    names = doctor.runtime_requirements()
    assert {"ansible-core", "ansible-runner", "paramiko", "click"} <= set(names)
    assert not {"pytest", "molecule", "ansible-lint"} & set(names), "dev extras are not needed"
