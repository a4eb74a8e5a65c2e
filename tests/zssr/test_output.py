"""Back-projection, tiled forward passes and the ensemble median."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from blindsr.degradation import degrade, random_kernels
from tests.conftest import textured_image
from zssr.downscale import Downscaler
from zssr import output, resize
from zssr.network import SubPixelZSSRNet, ZSSRNet
from zssr.output import all_finite, apply_net, back_project, final_output, median, tiled, upscale, widen_in_place
from zssr.resize import imresize


def test_back_projection_makes_the_output_consistent(rng):
    """Downscaling the back-projected image with the kernel reproduces the LR image."""
    k = random_kernels(rng)[2].array
    hr = textured_image(rng, 64, 48)
    lr = torch.as_tensor(degrade(hr, k, 2).transpose(2, 0, 1)[None])
    down = Downscaler(k, 2, torch.device("cpu"))
    y = imresize(lr, 2.0)
    before = float(torch.mean((down(y) - lr) ** 2))
    y = back_project(y, lr, down, 30)
    after = float(torch.mean((down(y) - lr) ** 2))
    assert after < before / 100
    assert 10 * np.log10(1 / after) > 50


def test_back_projection_in_place_gives_the_same_image(rng):
    """``overwrite=True`` writes every step into the caller's tensor (a full-size copy fewer on
    a large photo) with the numbers of the default, which leaves the caller's tensor alone."""
    k = random_kernels(rng)[2].array
    lr = torch.as_tensor(degrade(textured_image(rng, 40, 32), k, 2).transpose(2, 0, 1)[None])
    down = Downscaler(k, 2, torch.device("cpu"))
    start = imresize(lr, 2.0)
    kept = start.clone()
    separate = back_project(start, lr, down, 3)
    assert torch.equal(start, kept) and separate.data_ptr() != start.data_ptr()
    in_place = back_project(start, lr, down, 3, overwrite=True)
    assert in_place.data_ptr() == start.data_ptr() and torch.equal(in_place, separate)


def test_all_finite_checks_every_band():
    x = torch.rand(1, 3, 10, 7, dtype=torch.float64)
    assert all_finite(x, rows=3)
    for value in (float("nan"), float("inf"), -float("inf")):
        for row in (0, 4, 9):  # the first, a middle and the last (partial) band
            bad = x.clone()
            bad[0, 2, row, 6] = value
            assert not all_finite(bad, rows=3)


def test_tiled_forward_equals_whole_image():
    net = ZSSRNet(3, depth=4, width=8, generator=torch.Generator().manual_seed(0)).double()
    x = torch.rand(1, 3, 37, 53, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    whole = apply_net(net, x, tile=1000)
    tiled = apply_net(net, x, tile=16)
    torch.testing.assert_close(tiled, whole, atol=1e-12, rtol=0)


@pytest.mark.parametrize("count", [0, 1, 2, 3, 17, 1000])
def test_widening_in_place_converts_as_to_does(monkeypatch, count):
    """Every float32 value, signed zeros and infinities included, becomes the float64 value
    ``.to`` makes of it, for chunks of one value up to all of them."""
    values = torch.randn(count, generator=torch.Generator().manual_seed(count), dtype=torch.float64) * 1e3
    narrow = values.float()
    narrow[::5] = -0.0
    narrow[3::7] = float("inf")
    for chunk in (1, 3, 1 << 20):
        monkeypatch.setattr(output, "WIDEN_CHUNK", chunk)
        buffer = torch.empty(count, dtype=torch.float64)
        buffer.view(torch.float32)[:count].copy_(narrow)
        got = widen_in_place(buffer, count)
        want = narrow.to(torch.float64)
        assert got.data_ptr() == buffer.data_ptr() and torch.equal(got, want)
        assert torch.equal(torch.signbit(got), torch.signbit(want))


def float32_upscale(net, lr: torch.Tensor, scale: int, size, tile: int) -> torch.Tensor:
    """The output stage as it was: the float32 SR (bicubic upscale + tiled residual, or the
    tiled network on the upscale) clipped in its own tensors, then converted to float64."""
    narrow = lr.float()
    if isinstance(net, SubPixelZSSRNet):
        residual = tiled(lambda part: net.residual(part, scale), narrow, max(1, tile // scale),
                         net.receptive_radius, scale)
        sr = imresize(narrow, scale, size) + residual[..., :size[0], :size[1]]
    else:
        sr = tiled(net, imresize(narrow, scale, size), tile, net.receptive_radius)
    return sr.clamp(0.0, 1.0).to(torch.float64)


@pytest.mark.parametrize("banded", [False, True])
def test_float64_upscale_of_a_float32_network_equals_converting_its_output(monkeypatch, banded):
    """The float64 result made in its own memory gives the numbers of the float32 output
    converted, for both networks, x2 and x4, whole and cut sizes, one tile and several, with
    the resize's dense operators and (``banded``) its tap-by-tap blocks."""
    if banded:
        monkeypatch.setattr(resize, "DENSE_ELEMENTS", 100)
        monkeypatch.setattr(resize, "BLOCK_ELEMENTS", 50)
    nets = [SubPixelZSSRNet(3, depth=3, width=8, generator=torch.Generator().manual_seed(0), scales=(2, 4)),
            ZSSRNet(3, depth=3, width=8, generator=torch.Generator().manual_seed(0))]
    lr = torch.rand(1, 3, 23, 31, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 1.2 - 0.1
    with torch.no_grad():
        for net in nets:
            for scale in (2, 4):
                for size in ((23 * scale, 31 * scale), (23 * scale - 1, 31 * scale - 3)):
                    for tile in (8 * scale, 10_000):
                        got = upscale(net, lr, scale, size, tile)
                        assert got.dtype == torch.float64 and got.is_contiguous()
                        assert torch.equal(got, float32_upscale(net, lr, scale, size, tile))
                        assert math.prod(got.shape) == 3 * math.prod(size)


def test_median_follows_numpy(rng):
    for n in (1, 2, 7, 8):
        stack = rng.random((n, 1, 3, 4, 5))
        np.testing.assert_allclose(median(torch.as_tensor(stack)).numpy(), np.median(stack, axis=0))


def test_ensemble_of_an_equivariant_net_equals_its_single_pass(rng):
    """A net that only adds the bicubic input is rotation/mirror equivariant, so the 8-transform
    ensemble must reproduce the single pass exactly: transforms and their inverses line up."""
    net = ZSSRNet(3, depth=2, width=4).double()
    with torch.no_grad():
        for conv in net.convs:
            conv.weight.zero_()
    lr = torch.as_tensor(rng.random((1, 3, 12, 20)))
    down = Downscaler(None, 2, torch.device("cpu"))
    single = final_output(net, lr, down, (0,), 2, tile=64)
    ensemble = final_output(net, lr, down, tuple(range(8)), 2, tile=64)
    assert single.shape == (1, 3, 24, 40)
    torch.testing.assert_close(ensemble, single, atol=1e-12, rtol=0)
