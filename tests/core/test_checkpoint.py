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


class Wrapped(torch.nn.Module):
    """The shape of aip's models: a buffer set by the recipe (the input normalisation) around the network."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.full((3,), 0.5))
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                                       torch.nn.LazyLinear(2))
        self.net(torch.zeros(1, 3, 5, 5))


def _network_state() -> dict[str, torch.Tensor]:
    return {k: torch.randn_like(v.float()).to(v.dtype) for k, v in Wrapped().net.state_dict().items()}


@pytest.mark.parametrize("layout", ["bare", "in a dict", "DataParallel", "torch.compile", "Lightning"])
def test_a_network_saved_without_the_wrapper_or_with_another_loads(layout):
    net = _network_state()
    saved = {
        "bare": net,
        "in a dict": {"model": net, "epoch": 7, "best_acc": 0.9},
        "DataParallel": {"module." + k: v for k, v in net.items()},
        "torch.compile": {"_orig_mod." + k: v for k, v in net.items()},
        "Lightning": {"state_dict": {"model." + k: v for k, v in net.items()}, "epoch": 7},
    }[layout]
    model = Wrapped()
    checkpoint.load_state(model, checkpoint.state_dict_in(saved), what="teacher checkpoint t.pt", fix="-")
    loaded = model.state_dict()
    assert all(torch.equal(loaded["net." + k], v) for k, v in net.items())
    assert torch.equal(loaded["mean"], torch.full((3,), 0.5))  # what the recipe built stays


def test_a_network_state_lacking_a_tensor_is_still_refused_by_name():
    net = _network_state()
    del net["1.running_var"]  # a BatchNorm statistic: without it the network would compute something else
    with pytest.raises(AipError, match=r"teacher checkpoint t.pt does not fit the model \(missing keys mean, "
                                       r"net.0.weight"):
        checkpoint.load_state(Wrapped(), net, what="teacher checkpoint t.pt", fix="-")
    assert checkpoint.fit_keys(Wrapped(), net) is net


def test_safetensors_weights_load(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.ones(3)}, str(tmp_path / "model.safetensors"))
    assert torch.equal(checkpoint.load(tmp_path / "model.safetensors")["w"], torch.ones(3))
    (tmp_path / "bad.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(AipError, match="could not be read as safetensors"):
        checkpoint.load(tmp_path / "bad.safetensors")
