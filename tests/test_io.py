"""Atomic writes: the final file appears whole with the mode a plain open() gives, or not at all."""

from __future__ import annotations

import os
import stat

import pytest

from pyterrier_hybrid._io import atomic_path


def test_written_file_has_the_mode_of_a_plain_open(tmp_path):
    with atomic_path(tmp_path / "sub" / "a.txt") as tmp:
        tmp.write_text("x", encoding="utf-8")
    (tmp_path / "plain.txt").write_text("x", encoding="utf-8")
    mode = stat.S_IMODE(os.stat(tmp_path / "sub" / "a.txt").st_mode)
    assert mode == stat.S_IMODE(os.stat(tmp_path / "plain.txt").st_mode)
    assert (tmp_path / "sub" / "a.txt").read_text(encoding="utf-8") == "x"


def test_failure_leaves_neither_file_nor_temporary(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a.txt") as tmp:
        tmp.write_text("half", encoding="utf-8")
        raise RuntimeError("writer failed")
    assert list(tmp_path.iterdir()) == []
