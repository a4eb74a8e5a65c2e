"""The sub-pixel ZSSR network against a float64 reference built from scipy correlations and the
pixel-shuffle index formula, and its tiled application against one whole-image pass."""
from __future__ import annotations

import numpy as np
import torch
from scipy.signal import correlate

from zssr.network import SubPixelZSSRNet, ZSSRNet, build_network
from zssr.output import apply_subpixel_net, upscale
from zssr.resize import imresize


def reference_residual(net: SubPixelZSSRNet, lr: np.ndarray, scale: int) -> np.ndarray:
    """(C, h, w) -> (C, h * s, w * s): 3x3 correlations with zero padding, ReLUs, the head, then
    out[c, s*i + a, s*j + b] = head[c*s*s + a*s + b, i, j] (block-centre order)."""
    def conv(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
        return np.stack([sum(correlate(x[i], w[i], mode="same") for i in range(x.shape[0])) for w in weight])

    y = lr
    for layer in net.body:
        y = np.maximum(conv(y, layer.weight.detach().double().numpy()), 0.0)
    head = conv(y, net.heads[str(scale)].weight.detach().double().numpy())
    channels, h, w = lr.shape
    out = np.empty((channels, h * scale, w * scale))
    for c in range(channels):
        for a in range(scale):
            for b in range(scale):
                out[c, a::scale, b::scale] = head[c * scale * scale + a * scale + b]
    return out


def small_net(scales=(2, 4)) -> SubPixelZSSRNet:
    return SubPixelZSSRNet(3, depth=3, width=5, generator=torch.Generator().manual_seed(0), scales=scales).double()


def test_residual_matches_the_reference():
    net = small_net()
    lr = np.random.default_rng(0).random((3, 7, 9))
    for scale in (2, 4):
        got = net.residual(torch.as_tensor(lr[None]), scale)[0].detach().numpy()
        np.testing.assert_allclose(got, reference_residual(net, lr, scale), rtol=0, atol=1e-12)


def test_sr_adds_the_bicubic_upscale_and_cuts_to_size():
    net = small_net()
    lr = torch.rand(1, 3, 7, 9, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        for head in net.heads.values():
            head.weight.zero_()
        torch.testing.assert_close(net.sr(lr, 2, (14, 18)), imresize(lr, 2, (14, 18)), atol=0, rtol=0)
        net = small_net()
        full = net.sr(lr, 2, (14, 18))
        cut = net.sr(lr, 2, (13, 17))
    torch.testing.assert_close(cut - imresize(lr, 2, (13, 17)), (full - imresize(lr, 2, (14, 18)))[..., :13, :17],
                               atol=1e-12, rtol=0)


def test_tiled_application_equals_one_pass():
    net = small_net()
    lr = torch.rand(1, 3, 23, 31, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for scale in (2, 4):
        size = (23 * scale, 31 * scale)
        whole = apply_subpixel_net(net, lr, scale, size, tile=10_000)
        tiled = apply_subpixel_net(net, lr, scale, size, tile=8 * scale)
        torch.testing.assert_close(tiled, whole, atol=1e-12, rtol=0)
        torch.testing.assert_close(upscale(net, lr, scale, size, 8 * scale), whole, atol=1e-12, rtol=0)


def test_cost_per_output_pixel_is_a_quarter_at_x2():
    """The point of the sub-pixel body: at x2 its multiply-adds per output pixel are 1/4 of the
    paper's network (the head's extra output channels aside)."""
    paper = ZSSRNet(3, 8, 64)
    sub = build_network("lr", 3, 8, 64, 0.1, None, (2,))
    paper_per_output = sum(c.weight.numel() for c in paper.convs)  # MACs per pixel a layer runs on
    sub_per_output = (sum(c.weight.numel() for c in sub.body) + sub.heads["2"].weight.numel()) / 4
    assert sub_per_output / paper_per_output < 0.27
    assert isinstance(build_network("hr", 3, 8, 64, 0.1, None, (2,)), ZSSRNet)
