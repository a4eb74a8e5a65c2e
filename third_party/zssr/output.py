"""Applying a trained network: full-image forward passes, back-projection, geometric self-ensemble.

Back-projection (Irani & Peleg 1991, as in the ZSSR code): y <- clip(y + bicubic_up(lr - down(y)),
0, 1), where down is the stage's own degradation, so the output's degraded version approaches the
input. The self-ensemble (ZSSR paper, Sec. 4) runs the network on transformed inputs, undoes each
transform, back-projects each result, takes the per-pixel median and back-projects that again -
the second round also happens with a single transform, exactly as the authors' ``final_test``
does, so ``back_projection_iters = 2`` means 2 + 2 passes.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from zssr.downscale import Downscaler
from zssr.geometry import inverse, transform
from zssr.network import SubPixelZSSRNet, ZSSRNet
from zssr.resize import imresize


def tiled(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, step: int, margin: int,
          factor: int = 1, out: torch.Tensor | None = None) -> torch.Tensor:
    """``fn(x)`` for an ``fn`` that maps (N, C, h, w) to (N, C', h * factor, w * factor) and whose
    outputs depend on at most ``margin`` input pixels around them: computed in tiles of at most
    ``step`` x ``step`` input pixels, each run with that margin, so the result equals one pass.
    Written into ``out`` when given (of the result's shape and dtype) and returned."""
    height, width = x.shape[-2:]
    if height <= step and width <= step:
        return fn(x) if out is None else out.copy_(fn(x))
    f = factor
    for top in range(0, height, step):
        for left in range(0, width, step):
            bottom, right = min(top + step, height), min(left + step, width)
            r0, c0 = max(top - margin, 0), max(left - margin, 0)
            r1, c1 = min(bottom + margin, height), min(right + margin, width)
            y = fn(x[..., r0:r1, c0:c1])
            if out is None:
                out = y.new_empty(*y.shape[:2], height * f, width * f)
            out[..., top * f:bottom * f, left * f:right * f] = \
                y[..., (top - r0) * f:(bottom - r0) * f, (left - c0) * f:(right - c0) * f]
    return out


@torch.no_grad()
def apply_net(net: ZSSRNet, x: torch.Tensor, tile: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """``clip(net(x), 0, 1)`` for x (1, C, H, W) in the network's dtype, computed in tiles of at most
    ``tile`` x ``tile`` output pixels with a margin of the network's receptive radius (into
    ``out`` when given)."""
    return tiled(net, x, tile, net.receptive_radius, out=out).clamp_(0.0, 1.0)


@torch.no_grad()
def apply_subpixel_net(net: SubPixelZSSRNet, lr: torch.Tensor, scale: int, size: Sequence[int],
                       tile: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """``clip(net.sr(lr, scale, size), 0, 1)`` for lr (1, C, h, w) in the network's dtype, the
    learned residual computed in tiles of at most ``tile`` x ``tile`` output pixels with a margin of
    the receptive radius in input pixels.

    ``out`` (only when ``size`` is exactly ``scale`` times lr's) receives the residual's tiles and
    then the upscale is added into it: residual + upscale, the numbers of upscale + residual (float
    addition commutes), with no output-sized buffer besides ``out``."""
    step = max(1, tile // scale)
    residual = tiled(lambda part: net.residual(part, scale), lr, step, net.receptive_radius, scale, out=out)
    if out is not None:
        return imresize(lr, scale, size, add_to=out).clamp_(0.0, 1.0)
    up = imresize(lr, scale, size).add_(residual[..., :size[0], :size[1]])  # residual + upscale, in place
    return up.clamp_(0.0, 1.0)


WIDEN_CHUNK = 1 << 20  # values converted per step by ``widen_in_place``
NARROWER = {torch.float64: torch.float32}  # the dtype half as wide that ``widen_in_place`` converts from


def widen_in_place(buffer: torch.Tensor, count: int) -> torch.Tensor:
    """The ``count`` values of a narrower dtype stored at the start of ``buffer``'s memory (its
    ``view(narrow dtype)[:count]``), converted to ``buffer``'s dtype in place: values [0, count) of
    the flat ``buffer`` afterwards, exactly as ``.to`` would convert them.

    From the top down: a wide value j covers the narrow values at and above 2j (for a dtype half
    as wide), so writing values [a, b) with a >= b / 2 only overwrites narrow values already
    converted, and reads none it overwrites; the last value converts through a copy."""
    flat = buffer.view(-1)
    narrow = flat.view(NARROWER[flat.dtype])
    end = count
    while end > 1:
        start = max((end + 1) // 2, end - WIDEN_CHUNK)
        flat[start:end].copy_(narrow[start:end])
        end = start
    if end == 1:
        flat[:1].copy_(narrow[:1].clone())
    return buffer


def upscale(net: ZSSRNet | SubPixelZSSRNet, lr: torch.Tensor, scale: int, size: Sequence[int],
            tile: int) -> torch.Tensor:
    """The network's SR of ``lr`` (1, C, h, w) at ``scale`` to ``size``, in ``lr``'s dtype.

    A float64 ``lr`` and a float32 network: the float32 result is made in the first half of the
    float64 result's memory and widened there (``widen_in_place``), the numbers of ``.to``
    without a float32 copy of the output beside the float64 one."""
    weight = next(net.parameters())
    narrow = lr.to(weight.dtype)
    out = None
    whole = tuple(size) == (lr.shape[-2] * scale, lr.shape[-1] * scale)  # the sub-pixel net's own size
    if NARROWER.get(lr.dtype) == weight.dtype and (whole or not isinstance(net, SubPixelZSSRNet)):
        shape = (*lr.shape[:-2], *size)
        wide = torch.empty(math.prod(shape), dtype=lr.dtype, device=lr.device)
        out = wide.view(weight.dtype)[:wide.numel()].view(shape)
    if isinstance(net, SubPixelZSSRNet):
        sr = apply_subpixel_net(net, narrow, scale, size, tile, out=out)
    else:
        sr = apply_net(net, imresize(narrow, scale, size), tile, out=out)
    if out is None:
        return sr.to(lr.dtype)
    return widen_in_place(wide, wide.numel()).view(shape)


def back_project(y: torch.Tensor, lr: torch.Tensor, down: Downscaler, iterations: int,
                 overwrite: bool = False) -> torch.Tensor:
    """``iterations`` back-projection steps of the SR image ``y`` (1, C, H, W) onto ``lr``.

    ``overwrite``: ``y`` is the caller's to lose, and every step sums its upscaled residual into
    it. Otherwise the first step's upscaled residual receives ``y`` (a new tensor; ``y`` is left
    alone) and the later steps sum into that. The same numbers either way, and no full-size
    buffer beside the image after the first step."""
    for _ in range(iterations):
        residual = lr - down(y)
        if overwrite:
            y = imresize(residual, down.scale, y.shape[-2:], add_to=y)
        else:
            y = imresize(residual, down.scale, y.shape[-2:]).add_(y)
            overwrite = True
        y.clamp_(0.0, 1.0)
    return y


def all_finite(x: torch.Tensor, rows: int = 256) -> bool:
    """Whether every value of ``x`` (..., H, W) is finite, a band of ``rows`` rows at a time:
    ``torch.isfinite`` of a float tensor makes a copy of its magnitudes, a gigabyte at 48 MP."""
    return all(bool(torch.isfinite(band).all()) for band in x.split(rows, dim=-2))


def median(stack: torch.Tensor) -> torch.Tensor:
    """Median over axis 0 with numpy's convention (mean of the two middle values when even)."""
    ordered = stack.sort(dim=0).values
    n = stack.shape[0]
    return (ordered[(n - 1) // 2] + ordered[n // 2]) / 2


def final_output(net: ZSSRNet | SubPixelZSSRNet, lr: torch.Tensor, down: Downscaler, transforms: Sequence[int],
                 bp_iterations: int, tile: int) -> torch.Tensor:
    """The stage's result for ``lr`` (1, C, h, w), float64 on any device: for each transform t,
    T_t^-1(SR(T_t(lr))) back-projected; then the median over transforms, back-projected again.
    Output (1, C, h * s, w * s)."""
    s = down.scale
    size = (lr.shape[-2] * s, lr.shape[-1] * s)
    outputs = []
    for t in transforms:
        turned = transform(lr, t)
        turned_size = size if t % 2 == 0 else size[::-1]
        # Each output is a new tensor (``inverse`` of the identity is no copy, but the upscale is new).
        outputs.append(back_project(inverse(upscale(net, turned, s, turned_size, tile), t), lr, down, bp_iterations,
                                    overwrite=True))
    # The median of one output is that output (exactly: (y + y) / 2 == y), without a stack and sort of it.
    combined = outputs.pop() if len(outputs) == 1 else median(torch.stack(outputs))
    return back_project(combined, lr, down, bp_iterations, overwrite=True)
