"""The atomic writer: umask permissions, fsync, nothing half written, dead writers' leftovers."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import hib.io
from hib.io import WriteError, atomic_write, remove_stale_temporaries, write_text


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_files_get_the_permissions_of_the_umask(tmp_path: Path, umask: int, mode: int):
    old = os.umask(umask)
    try:
        path = write_text(tmp_path / "report.html", "<p>hi</p>\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_the_file_and_its_folder_are_flushed_before_and_after_the_rename(tmp_path, monkeypatch):
    synced, real_fsync = [], os.fsync
    monkeypatch.setattr(
        os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd))
    )
    write_text(tmp_path / "a.txt", "x")
    assert len(synced) == 2 and synced[0].endswith(".tmp") and synced[1] == str(tmp_path)


def test_a_failing_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path: Path):
    path = write_text(tmp_path / "a.txt", "old\n")

    def fails(p: Path) -> None:
        p.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(WriteError, match=f"cannot write {path}: No space left on device"):
        atomic_write(path, fails)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_only_dead_writers_temporaries_are_removed(tmp_path: Path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(dead.stdout)
    host = hib.io._HOST
    left = tmp_path / f".model.safetensors.{host}-{pid}.abc123.tmp"
    live = tmp_path / f".results.json.{host}-{os.getpid()}.def456.tmp"
    other_host = tmp_path / f".results.json.elsewhere-{pid}.xyz789.tmp"
    for p in (left, live, other_host):
        p.write_text("partial")
    assert remove_stale_temporaries(tmp_path) == [left]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other_host.name])
