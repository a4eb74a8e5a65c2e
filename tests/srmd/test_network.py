"""SRMD network layout: official keys, shapes and parameter counts; strict loading."""
from __future__ import annotations

import pytest
import torch

import srmd
from srmd.network import SRMD, build_srmd, state_dict_shapes

# Parameter counts: srmd_x2 and srmd_x4 from the spec; the others from the same layout
# (in_nc*128*9 + 128 + 10*(128*128*9 + 128) + 128*3s^2*9 + 3s^2).
PARAMETERS = {"srmd_x2": 1_511_692, "srmd_x3": 1_528_987, "srmd_x4": 1_553_200,
              "srmdnf_x2": 1_510_540, "srmdnf_x3": 1_527_835, "srmdnf_x4": 1_552_048}


def by_hand(in_nc: int, scale: int) -> int:
    return in_nc * 128 * 9 + 128 + 10 * (128 * 128 * 9 + 128) + 128 * 3 * scale**2 * 9 + 3 * scale**2


@pytest.mark.parametrize("name", sorted(srmd.MODELS))
def test_keys_shapes_and_counts(name):
    scale, noise_free = srmd.MODELS[name]
    net = SRMD(scale=scale, noise_free=noise_free)
    state = net.state_dict()
    expected_keys = [f"model.{2 * i}.{p}" for i in range(12) for p in ("weight", "bias")]
    assert list(state) == expected_keys
    in_nc = 18 if noise_free else 19
    assert state["model.0.weight"].shape == (128, in_nc, 3, 3)
    assert state["model.22.weight"].shape == (3 * scale**2, 128, 3, 3)
    assert state["model.22.bias"].shape == (3 * scale**2,)
    assert {k: tuple(v.shape) for k, v in state.items()} == state_dict_shapes(scale=scale, noise_free=noise_free)
    count = sum(p.numel() for p in net.parameters())
    assert count == PARAMETERS[name] == by_hand(in_nc, scale)
    assert isinstance(net.model[23], torch.nn.PixelShuffle)


def test_strict_loading_round_trip_and_refusal():
    torch.manual_seed(0)
    source = SRMD(scale=2)
    net = build_srmd(scale=2, state_dict=source.state_dict())
    for a, b in zip(source.state_dict().values(), net.state_dict().values()):
        assert torch.equal(a, b)
    assert not net.training
    with pytest.raises(RuntimeError):  # x2 weights into an x4 network: shapes differ
        build_srmd(scale=4, state_dict=source.state_dict())
    with pytest.raises(RuntimeError):  # noise-aware weights into the noise-free network
        build_srmd(scale=2, noise_free=True, state_dict=source.state_dict())


def test_forward_shape_and_channel_check():
    net = SRMD(scale=3, noise_free=True).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 18, 10, 7))
    assert out.shape == (1, 3, 30, 21)
    with pytest.raises(ValueError, match="18"):
        net(torch.rand(1, 19, 10, 7))
    with pytest.raises(ValueError, match="scale"):
        SRMD(scale=5)


def test_state_dict_file_is_read_weights_only(tmp_path):
    torch.manual_seed(1)
    path = tmp_path / "w.pth"
    torch.save(SRMD(scale=2).state_dict(), path)
    state = srmd.load_state_dict(str(path))
    build_srmd(scale=2, state_dict=state)
    torch.save({"model": object.__new__(SRMD)}, tmp_path / "pickled.pth")
    with pytest.raises(Exception):
        srmd.load_state_dict(str(tmp_path / "pickled.pth"))
