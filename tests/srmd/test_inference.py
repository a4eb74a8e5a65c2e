"""Tiled inference: the same result as one pass, tiles covering the image exactly once."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import srmd


@pytest.fixture(scope="module")
def net():
    """Random weights that keep activations alive through 12 layers (He initialisation) and put
    every output inside (0, 1), so the comparison is not hidden by the final clamp."""
    torch.manual_seed(0)
    model = srmd.SRMD(scale=2).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight"):
                torch.nn.init.kaiming_normal_(p, nonlinearity="relu")
            else:
                p.zero_()
        model.model[22].weight.mul_(0.05)
        model.model[22].bias.fill_(0.5)
    return model


def test_tile_grid_covers_each_pixel_once():
    for h, w, tile in [(37, 23, 10), (10, 10, 10), (5, 40, 16), (8, 8, None), (8, 8, 100)]:
        cover = np.zeros((h, w), int)
        for top, left, bottom, right in srmd.tile_grid(h, w, tile):
            cover[top:bottom, left:right] += 1
        assert np.all(cover == 1)
        assert srmd.tile_count(h, w, tile) == len(srmd.tile_grid(h, w, tile))


@pytest.mark.parametrize("tile", [16, 25, 40])
def test_tiled_equals_untiled(net, tile):
    rng = np.random.default_rng(1)
    rgb = rng.random((53, 61, 3))
    vector = np.append(rng.standard_normal(15) * 0.1, 10 / 255)
    whole = srmd.upscale(net, rgb, vector, tile=None)
    calls = []
    tiled = srmd.upscale(net, rgb, vector, tile=tile, progress=calls.append)
    assert whole.shape == tiled.shape == (106, 122, 3)
    assert whole.dtype == np.float32
    assert np.abs(whole - tiled).max() <= 1e-5
    assert len(calls) == srmd.tile_count(53, 61, tile)
    assert 0.0 < whole.min() and whole.max() < 1.0
    assert whole.std() > 1e-3


def test_input_checks(net):
    with pytest.raises(ValueError, match="RGB"):
        srmd.upscale(net, np.zeros((8, 8)), np.zeros(16))
    with pytest.raises(ValueError, match="channels"):
        srmd.upscale(net, np.zeros((8, 8, 3)), np.zeros(15))
    with pytest.raises(ValueError, match="positive"):
        srmd.tile_grid(8, 8, 0)


def test_output_is_clamped_to_the_unit_range():
    model = srmd.SRMD(scale=2, noise_free=True).eval()
    with torch.no_grad():
        model.model[22].bias.fill_(5.0)
        model.model[22].weight.zero_()
    out = srmd.upscale(model, np.zeros((6, 5, 3)), np.zeros(15), tile=None)
    assert np.all(out == 1.0)
