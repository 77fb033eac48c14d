"""The one writer: paths stay inside the output folder (compared resolved, not by prefix), writes are atomic."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from newsletter.base.errors import ContentError
from newsletter.base.writer import atomic_write, safe_join, write_files


@pytest.mark.parametrize("name", ["../x.eml", "/etc/passwd", "a/../../x", "..", ".", "../out-evil/x.eml"])
def test_safe_join_refuses_paths_that_leave_the_folder(tmp_path: Path, name: str) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(ContentError, match="escapes the output folder"):
        safe_join(tmp_path / "out", name)


def test_safe_join_is_not_fooled_by_a_sibling_with_the_same_prefix(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out-evil").mkdir()
    with pytest.raises(ContentError):
        safe_join(tmp_path / "out", "../out-evil/x")
    assert safe_join(tmp_path / "out", "sub/x.eml") == (tmp_path / "out" / "sub" / "x.eml").resolve()


def test_safe_join_refuses_a_link_out_of_the_folder(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    os.symlink(tmp_path, tmp_path / "out" / "link")
    with pytest.raises(ContentError):
        safe_join(tmp_path / "out", "link/x.eml")


def test_atomic_write_replaces_whole_files_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "email.html"
    atomic_write(target, "old")
    atomic_write(target, "new ✓")
    assert target.read_text(encoding="utf-8") == "new ✓"
    assert [p.name for p in tmp_path.iterdir()] == ["email.html"]


def test_failed_write_keeps_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "email.html"
    atomic_write(target, "previous")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)  # the failure a full disk gives, halfway through
    with pytest.raises(OSError):
        atomic_write(target, "new")
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["email.html"]


def test_write_files_checks_every_path_before_writing_any(tmp_path: Path) -> None:
    with pytest.raises(ContentError):
        write_files(tmp_path, {"a.txt": "a", "../b.txt": "b"})
    assert not (tmp_path / "a.txt").exists()
