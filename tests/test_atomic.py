"""Atomic writes: all or nothing, and the file gets the permissions of any other new file."""

from __future__ import annotations

import os
import stat

import pytest

from zoomin.atomic import atomic_path, usual_mode


def test_a_finished_write_replaces_the_target_with_the_umasks_permissions(tmp_path):
    target = tmp_path / "out.txt"
    old = os.umask(0o027)
    try:
        with atomic_path(target) as tmp:
            tmp.write_text("done")
        assert target.read_text() == "done"
        assert stat.S_IMODE(target.stat().st_mode) == 0o640 == usual_mode()
    finally:
        os.umask(old)


def test_a_failed_write_leaves_neither_target_nor_temporary_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
