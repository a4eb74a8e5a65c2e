"""Back-projection, tiled forward passes and the ensemble median."""
from __future__ import annotations

import numpy as np
import torch

from blindsr.degradation import degrade, random_kernels
from tests.conftest import textured_image
from zssr.downscale import Downscaler
from zssr.network import ZSSRNet
from zssr.output import all_finite, apply_net, back_project, final_output, median
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
