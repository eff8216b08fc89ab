"""The one atomic writer (:mod:`aip.files`): it never writes through a symbolic link, refuses a path under a file,
and leaves only temporary files of its own naming, which the next run removes."""

from __future__ import annotations

import os

import pytest
import torch

from aip import checkpoint, files
from aip.errors import AipError


def test_a_destination_that_is_a_symlink_is_refused_and_its_target_kept(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    link = tmp_path / "out" / "metrics.json"
    link.parent.mkdir()
    link.symlink_to(victim)
    for write in (lambda: files.write_text("x", link), lambda: files.write_bytes(b"x", link),
                  lambda: files.save_torch({"a": 1}, link), lambda: checkpoint.save_atomic({"a": 1}, link),
                  lambda: checkpoint.write_text_atomic("x", link)):
        with pytest.raises(AipError, match="symbolic link") as e:
            write()
        assert "\n" not in str(e.value) and str(link) in str(e.value)
    assert victim.read_text() == "mine" and link.is_symlink()
    assert sorted(p.name for p in link.parent.iterdir()) == ["metrics.json"]  # no temporary file left


def test_a_dangling_symlink_is_refused_and_nothing_is_created(tmp_path):
    link = tmp_path / "best.pt"
    link.symlink_to(tmp_path / "elsewhere" / "new.pt")
    with pytest.raises(AipError, match="symbolic link"):
        files.write_text("x", link)
    assert not (tmp_path / "elsewhere").exists()


def test_a_path_under_a_file_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(AipError, match="is a file, not a folder") as e:
        files.write_text("x", tmp_path / "afile" / "sub" / "metrics.json")
    assert "\n" not in str(e.value)
    with pytest.raises(AipError, match="is a file, not a folder"):
        with files.atomic_dir(tmp_path / "afile" / "sub"):
            pass
    assert (tmp_path / "afile").read_text() == "mine"


def test_a_folder_or_fifo_as_destination_is_named(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(AipError, match="is a folder"):
        files.write_text("x", tmp_path / "d")
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(AipError, match="named pipe"):
        files.write_text("x", tmp_path / "pipe")
    assert files.describe(tmp_path / "pipe") == "a named pipe (FIFO)"
    assert files.describe(tmp_path / "d") == "a folder"


def test_atomic_dir_refuses_a_symlinked_folder(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "keep.txt").write_text("mine")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(AipError, match="symbolic link"):
        with files.atomic_dir(tmp_path / "link"):
            pass
    assert (tmp_path / "real" / "keep.txt").read_text() == "mine"


def test_a_write_through_the_writer_is_plain_and_atomic(tmp_path):
    path = tmp_path / "sub" / "m.json"
    files.write_text("é", path)
    assert path.read_text(encoding="utf-8") == "é"
    assert oct(path.stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode
    with pytest.raises(RuntimeError):
        with files.atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError
    assert path.read_text(encoding="utf-8") == "é"
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.json"]


def test_stale_temporary_files_of_aips_naming_are_removed_and_nothing_else(tmp_path):
    torch.save({"a": 1}, tmp_path / ".last.pt.k2j4_x9a.tmp")  # what a kill during a write leaves
    (tmp_path / ".best.pt.abcdefgh.tmp").write_text("x")
    (tmp_path / ".audio.wav.abcdefgh.wav.tmp").write_text("x")
    keep = [".notes.tmp", "last.pt", ".last.pt.tmp", "user.abcdefgh.tmp", ".mine.txt.abcdefgh.tmp"]
    for name in keep:
        (tmp_path / name).write_text("mine")
    (tmp_path / ".curves.png.abcdefgh.tmp").symlink_to(tmp_path / "last.pt")  # a link is never removed
    removed = files.remove_stale_temps(tmp_path, ("last.pt", "best.pt", "audio.wav", "curves.png"))
    assert sorted(p.name for p in removed) == [".audio.wav.abcdefgh.wav.tmp", ".best.pt.abcdefgh.tmp",
                                               ".last.pt.k2j4_x9a.tmp"]
    assert all((tmp_path / n).read_text() == "mine" for n in keep)
    assert (tmp_path / ".curves.png.abcdefgh.tmp").is_symlink()
