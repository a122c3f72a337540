import os
import stat
from pathlib import Path

import pytest

from toolkit.files import replace_file


def test_replace_file_writes_the_whole_text_with_the_mode_asked(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    path.write_text("old\n")
    old_umask = os.umask(0o077)
    try:
        replace_file(path, "new\n", 0o644)
    finally:
        os.umask(old_umask)
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["journal.json"]


def test_replace_file_private_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "upgrade.json"
    replace_file(path, "{}\n", 0o600)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_replace_file_leaves_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    path = tmp_path / "lab.yml"
    path.write_text("name: a\n")
    with pytest.raises(UnicodeEncodeError):
        replace_file(path, "\udcff", 0o644)
    assert path.read_text() == "name: a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab.yml"]


def test_replace_file_never_follows_a_planted_link_at_the_partial_name(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("keep\n")
    (tmp_path / ".state.json.partial").symlink_to(target)
    with pytest.raises(OSError):
        replace_file(tmp_path / "state.json", "x\n")
    assert target.read_text() == "keep\n"
