"""zssr's torch MATLAB-bicubic resize against blindsr's independent numpy implementation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from blindsr.degradation import imresize as reference_imresize
import zssr.resize
from zssr.resize import imresize


def as_torch(x: np.ndarray, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.as_tensor(x.transpose(2, 0, 1)[None], dtype=dtype)


def as_numpy(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).double().numpy()


@pytest.mark.parametrize("shape,scale", [((17, 23), 2.0), ((13, 9), 4.0), ((31, 20), 0.5), ((41, 37), 0.25),
                                         ((25, 18), 1 / 3), ((15, 22), 3.0), ((33, 29), 0.7), ((8, 12), 1.5)])
def test_matches_reference_by_scale(rng, shape, scale):
    x = rng.random(shape + (3,))
    ref = reference_imresize(x, scale)
    out = as_numpy(imresize(as_torch(x), scale))
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize("shape,size", [((16, 24), (32, 48)), ((17, 23), (9, 12)), ((20, 21), (80, 84)),
                                        ((19, 30), (7, 11))])
def test_matches_reference_by_size(rng, shape, size):
    x = rng.random(shape + (3,))
    ref = reference_imresize(x, output_shape=size)
    out = as_numpy(imresize(as_torch(x), size=size))
    np.testing.assert_allclose(out, ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize("scale,size", [(2.0, None), (0.5, None), (1 / 3, None), (4.0, None), (2.0, (9, 9))])
@pytest.mark.parametrize("banded", ["every axis", "the larger axis"])
def test_banded_resize_of_large_images_matches_dense(rng, monkeypatch, scale, size, banded):
    """Past DENSE_ELEMENTS an axis is resized from its taps, block by block (a photo of many
    megapixels): the dense operators' numbers (which the tests above hold to the reference) to
    rounding, with or without autograd."""
    x = as_torch(rng.random((5, 7, 3)) if size else rng.random((19, 26, 3)))
    whole = imresize(x, scale, size)
    operators = [o * i for o, i in zip(whole.shape[-2:], x.shape[-2:])]  # out x in per axis
    assert operators[0] < operators[1]
    monkeypatch.setattr(zssr.resize, "DENSE_ELEMENTS", 0 if banded == "every axis" else operators[0])
    monkeypatch.setattr(zssr.resize, "BLOCK_ELEMENTS", 50)  # many blocks
    with torch.no_grad():
        blocks = imresize(x, scale, size)
    assert blocks.shape == whole.shape and torch.allclose(blocks, whole, atol=1e-12, rtol=0)
    tracked = imresize(x.clone().requires_grad_(), scale, size)
    assert tracked.requires_grad and torch.allclose(tracked.detach(), whole, atol=1e-12, rtol=0)


@pytest.mark.parametrize("banded", ["no axis", "every axis", "the larger axis"])
def test_resize_added_into_a_tensor(rng, monkeypatch, banded):
    """``add_to`` receives add_to + resize, in place, on the dense and the banded paths alike: the
    reference's numbers plus the target's, bit for bit those of adding afterwards."""
    x = as_torch(rng.random((19, 26, 3)))
    target = as_torch(rng.random((38, 52, 3)))
    dense = {"no axis": 1 << 22, "every axis": 0, "the larger axis": 38 * 19}[banded]
    monkeypatch.setattr(zssr.resize, "DENSE_ELEMENTS", dense)
    monkeypatch.setattr(zssr.resize, "BLOCK_ELEMENTS", 50)
    expected = imresize(x, 2.0) + target
    into = target.clone()
    out = imresize(x, 2.0, add_to=into)
    assert out.data_ptr() == into.data_ptr() and torch.equal(out, expected)
    np.testing.assert_allclose(as_numpy(out), reference_imresize(as_numpy(x), 2.0) + as_numpy(target), atol=1e-12)
    # A target whose axes are laid out otherwise (a rotated output of the self-ensemble) as well.
    turned = target.transpose(-2, -1).contiguous().transpose(-2, -1)
    assert torch.equal(imresize(x, 2.0, add_to=turned), expected)
    with pytest.raises(RuntimeError if banded == "no axis" else ValueError):  # torch's add_, or ours
        imresize(x, 2.0, add_to=target[..., :-1].clone())


def test_float32_and_random_sizes(rng):
    for _ in range(10):
        shape = tuple(int(v) for v in rng.integers(5, 40, size=2))
        scale = float(rng.choice([0.25, 0.5, 2.0, 4.0]))
        x = rng.random(shape + (3,))
        ref = reference_imresize(x, scale)
        out = as_numpy(imresize(as_torch(x, torch.float32), scale))
        np.testing.assert_allclose(out, ref, atol=2e-6, rtol=0)


def test_scale_and_size_together(rng):
    """A 9-px father's 5-px son goes back to 9 px with the coordinates of s = 2 (not 9/5)."""
    x = rng.random((5, 5, 1))
    out = as_numpy(imresize(as_torch(x), 2.0, (9, 9)))
    full = reference_imresize(x, 2.0)  # 10 x 10 with the same coordinate map
    np.testing.assert_allclose(out[:8, :8], full[:8, :8], atol=1e-12)


def test_is_differentiable_and_keeps_constants():
    x = torch.full((1, 3, 11, 13), 0.3, dtype=torch.float64, requires_grad=True)
    y = imresize(x, 0.5)
    assert y.shape[-2:] == (math.ceil(11 / 2), math.ceil(13 / 2))
    torch.testing.assert_close(y, torch.full_like(y, 0.3))
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
