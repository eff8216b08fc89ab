"""Checkpoints are written atomically: a failed write leaves the previous file intact."""

import pytest
import torch

from aip import checkpoint
from aip.errors import AipError


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("disk full")


def test_save_then_load(tmp_path):
    path = tmp_path / "ck.pt"
    checkpoint.save_atomic({"w": torch.ones(3)}, path)
    assert torch.equal(checkpoint.load(path)["w"], torch.ones(3))


def test_failed_write_keeps_previous_checkpoint_and_leaves_no_temp(tmp_path):
    path = tmp_path / "ck.pt"
    checkpoint.save_atomic({"step": 1}, path)
    with pytest.raises(RuntimeError):
        checkpoint.save_atomic({"step": 2, "bad": Unpicklable()}, path)
    assert checkpoint.load(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt"]


def test_corrupt_or_missing_checkpoint_is_a_user_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(AipError, match="could not be read"):
        checkpoint.load(bad)
    with pytest.raises(AipError, match="does not exist"):
        checkpoint.load(tmp_path / "missing.pt")


def test_rng_state_round_trip():
    state = checkpoint.rng_state()
    a = torch.rand(3)
    checkpoint.set_rng_state(state)
    assert torch.equal(torch.rand(3), a)


def test_atomic_files_get_the_mode_of_a_plain_file(tmp_path):
    import os

    from aip import files

    old = os.umask(0o022)
    try:
        files.write_text("x", tmp_path / "a.txt")
        checkpoint.save_atomic({"w": torch.ones(1)}, tmp_path / "b.pt")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.pt").stat().st_mode & 0o777 == 0o644
