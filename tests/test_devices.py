"""aip.devices: where small parameters are drawn, and their copy to the device."""

from __future__ import annotations

import torch

from aip.devices import HOST, params_device, upload


def test_parameters_are_drawn_on_the_host_for_cuda_only():
    assert params_device(torch.device("cuda", 0)) == HOST
    assert params_device(torch.device("cpu")) == torch.device("cpu")
    assert params_device(torch.device("meta")) == torch.device("meta")


def test_upload_keeps_a_tensor_already_there_and_moves_others():
    t = torch.arange(6.0)
    assert upload(t, torch.device("cpu")) is t
    moved = upload(t, torch.device("meta"))
    assert moved.device.type == "meta" and moved.shape == t.shape
