"""KernelGAN's networks (Bell-Kligler et al., NeurIPS 2019, Sec. 3), written for speed.

Every module holds R independent networks ("runs") with stacked parameters (leading dimension R):
restarts train side by side in the same tensor operations, so the per-operation overhead that
dominates these small networks on a CPU is paid once, and a GPU gets R times the work per launch.
Runs never mix: each slice of every operation reads and writes its own run only, and each run
draws its initial weights from its own generator. On the CPU a run's numbers also do not depend on
how many runs share an operation or where the run sits among them, so a run trained alone or beside
others gives the same result bit for bit and the runs can be split over processes (``train.train``).
Most operations are like that by construction; three are written for it: D's first layer is a
patch matrix and a batched product (a grouped convolution's forward depends on the group count),
the power iteration's u^T W is a product and a sum (a batched product of one row per matrix
depends on the batch), and the sigmoid is applied run by run (a vectorised loop computes the
elements after its last full vector another way, so on stacked runs they would depend on the run's
position).

Generator: a deep *linear* network (six bias-free, unpadded convolutions 7-5-3-1-1-1, stride 2 on
the last). Being linear, G(x) equals one strided correlation of x with G's 13x13 impulse response k.
We keep the deep parameterisation (it optimises better, paper Sec. 3.1) but compute k from the
weights by composing the filters directly - the 1x1 layers collapse to a vector, each larger layer
folds in with one matrix product and one overlap-add - and apply k as a single strided
correlation. Same function and same gradients as the layer-by-layer network (``layerwise_forward``,
kept as the reference and for benchmarks) at a fraction of the cost.

Discriminator: spectral-normalised 7x7 conv, five [1x1 conv -> BatchNorm -> ReLU], 1x1 conv,
sigmoid. BatchNorm always runs in training mode on batches of one crop, which is exactly a
per-crop normalisation; written that way, the real and the fake crop of a D step go through one
batched forward with the same result as two separate forwards (up to spectral norm's power
iteration, which then runs once per D step instead of once per crop).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def compose_kernel(weights: Sequence[torch.Tensor]) -> torch.Tensor:
    """Impulse responses (correlation kernels) of R stacks of bias-free valid convolutions.

    Args:
        weights: per layer, in forward order, the R runs' conv weights (R, C_out, C_in, kh, kw);
            the first layer has C_in = 1 and the last C_out = 1.

    Returns:
        (R, K, K), K = 1 + sum(kh - 1): run r maps x to corr(x, k[r]) (before any stride).
        Correlation composes by full convolution: corr(corr(x, a), b) = corr(x, a * b); with
        channels, E_prev[c, i+p, j+q] = sum_o w[o, c, i, j] E[o, p, q], computed as one batched
        matrix product followed by an overlap-add (``F.fold``).
    """
    eff = weights[-1][:, 0]  # (R, C, p, q): response of the remaining stack to each input channel
    for w in reversed(weights[:-1]):
        runs, c_out, c_in, kh, kw = w.shape
        p, q = eff.shape[-2:]
        # (R, p*q, c_in*kh*kw); this operand order is several times faster than its transpose.
        products = eff.reshape(runs, c_out, p * q).transpose(1, 2) @ w.reshape(runs, c_out, c_in * kh * kw)
        if kh == kw == 1:
            eff = products.transpose(1, 2).reshape(runs, c_in, p, q)
            continue
        blocks = products.view(runs, p * q, c_in, kh * kw).transpose(1, 2).reshape(runs, c_in * p * q, kh * kw)
        eff = F.fold(blocks, output_size=(kh + p - 1, kw + q - 1), kernel_size=(p, q))
    return eff[:, 0]


def grouped_layerwise(x: torch.Tensor, weights: Sequence[torch.Tensor], stride: int) -> torch.Tensor:
    """R stacks applied layer by layer as grouped convolutions: x (N, R, H, W) -> (N, R, h, w)."""
    runs = weights[0].shape[0]
    last = len(weights) - 1
    for i, w in enumerate(weights):
        x = F.conv2d(x, w.reshape(-1, *w.shape[2:]), stride=stride if i == last else 1, groups=runs)
    return x


class DeepLinearGenerator(nn.Module):
    """R generators G: bias-free linear convolutions; colour channels are processed as a batch of
    gray images (one kernel per run shared by all channels)."""

    def __init__(self, runs: int = 1, structure: Sequence[int] = (7, 5, 3, 1, 1, 1), channels: int = 64,
                 stride: int = 2, init_gain: float = 0.1, generators: Sequence[torch.Generator] | None = None):
        """``generators``: one per run, each drawing that run's weights layer by layer."""
        super().__init__()
        gens = list(generators) if generators is not None else [None] * runs
        sizes = list(structure)
        ins = [1] + [channels] * (len(sizes) - 1)
        outs = [channels] * (len(sizes) - 1) + [1]
        self.weights = nn.ParameterList()
        for c_in, c_out, k in zip(ins, outs, sizes):
            fan_in, fan_out = c_in * k * k, c_out * k * k
            std = init_gain * math.sqrt(2.0 / (fan_in + fan_out))
            w = per_run(gens, lambda g: torch.empty(c_out, c_in, k, k).normal_(0.0, std, generator=g))
            self.weights.append(nn.Parameter(w))  # xavier-normal, gain 0.1 (authors' init)
        self.runs = runs
        self.stride = stride
        self.kernel_size = 1 + sum(k - 1 for k in sizes)

    def kernel(self) -> torch.Tensor:
        """The runs' (R, K, K) correlation kernels, differentiable w.r.t. every weight."""
        return compose_kernel(list(self.weights))

    def forward(self, x: torch.Tensor, kernel: torch.Tensor | None = None) -> torch.Tensor:
        """Collapsed forward: x (N, R, H, W) -> (N, R, h, w), one strided correlation per run."""
        k = self.kernel() if kernel is None else kernel
        return F.conv2d(x, k.unsqueeze(1), stride=self.stride, groups=self.runs)

    def impulse_response(self) -> torch.Tensor:
        """The kernels as the authors compute them: a delta pushed through every layer."""
        k = self.kernel_size
        w0 = self.weights[0]
        delta = torch.zeros(1, self.runs, 2 * k - 1, 2 * k - 1, dtype=w0.dtype, device=w0.device)
        delta[0, :, k - 1, k - 1] = 1.0
        return grouped_layerwise(delta, list(self.weights), 1)[0].flip([1, 2])

    def layerwise_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The same function computed layer by layer, as the authors' code does."""
        return grouped_layerwise(x, list(self.weights), self.stride)


def spectral_normalised(weight: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
                        power_iteration: bool, eps: float = 1e-12) -> torch.Tensor:
    """weight / sigma(weight) for a stack of matrices (L, rows, cols) (Miyato et al. 2018).

    As ``torch.nn.utils.spectral_norm``: one power iteration per call when ``power_iteration``,
    updating the buffers u (L, rows) and v (L, cols) in place outside the autograd graph; the
    gradient flows through sigma = u^T W v with u, v held constant.
    """
    if power_iteration:
        with torch.no_grad():
            # u^T W as a product and a sum: a batched matrix product of one row per matrix gives
            # a matrix numbers that depend on how many matrices share the call.
            v.copy_(F.normalize((u.unsqueeze(2) * weight).sum(1), dim=1, eps=eps))
            u.copy_(F.normalize(torch.bmm(weight, v.unsqueeze(2)).squeeze(2), dim=1, eps=eps))
    sigma = torch.bmm(u.unsqueeze(1), torch.bmm(weight, v.unsqueeze(2)))
    return weight / sigma


def per_run(generators: Sequence[torch.Generator | None], draw) -> torch.Tensor:
    """One tensor per run, each from that run's own generator, stacked along a leading run axis."""
    return torch.stack([draw(g) for g in generators])


def _default_init(shape: tuple[int, ...], fan_in: int,
                  generator: torch.Generator | None) -> torch.Tensor:
    """PyTorch's default conv init (kaiming-uniform, a = sqrt(5)): U(-1/sqrt(fan_in), +...).
    This is what actually ran in the authors' D: their xavier init touched the spectral-norm
    wrapper's derived weight, not the parameter."""
    return (torch.rand(shape, generator=generator) * 2 - 1) / math.sqrt(fan_in)


class PatchMatrix(torch.autograd.Function):
    """The patch matrix of R runs' crops: x (R, N, C, H, W) -> (R, C * k * k, N * h * w), row
    (c, i, j) and column (crop, y, x) holding x[r, crop, c, y + i, x + j] (h = H - k + 1).

    The same numbers as ``F.unfold`` of the crops followed by moving the crop axis into the
    columns, and the same gradient (the same ``F.fold``, bit for bit: tested), but the forward
    is one strided copy instead of those two, which are slow on these small crops
    (docs/BENCHMARKS.md, 'kernel-faster').
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, k: int) -> torch.Tensor:
        runs, n, c, h, w = x.shape
        ctx.shape, ctx.k = x.shape, k
        windows = x.unfold(3, k, 1).unfold(4, k, 1)  # (R, N, C, h, w, k, k), a view
        return windows.permute(0, 2, 5, 6, 1, 3, 4).reshape(runs, c * k * k, n * (h - k + 1) * (w - k + 1))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        runs, n, c, h, w = ctx.shape
        k = ctx.k
        cols = grad.view(runs, c * k * k, n, -1).transpose(1, 2).reshape(runs * n, c * k * k, -1)
        return F.fold(cols, (h, w), k).view(runs, n, c, h, w), None


class PatchDiscriminator(nn.Module):
    """R discriminators D: per-patch real/fake maps, receptive field ``kernel_size``.

    Input (R, N, 3, H, W) (run r's N crops), output (R, N, 1, H - k + 1, W - k + 1) in (0, 1).
    The 1x1 layers run as batched matrix products on (R, C, N * positions) feature matrices.
    """

    def __init__(self, runs: int = 1, channels: int = 64, layers: int = 7, kernel_size: int = 7,
                 in_channels: int = 3, generators: Sequence[torch.Generator] | None = None):
        """``generators``: one per run, each drawing that run's weights, then its spectral norms'
        starting vectors."""
        super().__init__()
        gens = list(generators) if generators is not None else [None] * runs
        hidden = layers - 2
        patch = in_channels * kernel_size**2
        self.first_weight = nn.Parameter(per_run(gens, lambda g: _default_init((channels, patch), patch, g)))
        self.first_bias = nn.Parameter(torch.zeros(runs, channels))
        self.hidden_weight = nn.Parameter(per_run(gens, lambda g: _default_init((hidden, channels, channels),
                                                                                channels, g)))
        self.hidden_bias = nn.Parameter(torch.zeros(runs, hidden, channels))
        self.bn_weight = nn.Parameter(per_run(gens, lambda g: torch.empty(hidden, channels).normal_(1.0, 0.02,
                                                                                                    generator=g)))
        self.bn_bias = nn.Parameter(torch.zeros(runs, hidden, channels))
        self.last_weight = nn.Parameter(per_run(gens, lambda g: _default_init((1, channels), channels, g)))
        self.last_bias = nn.Parameter(torch.zeros(runs, 1))
        for name, (n, rows, cols) in {"first": (1, channels, patch), "hidden": (hidden, channels, channels),
                                      "last": (1, 1, channels)}.items():
            for side, size in (("u", rows), ("v", cols)):
                start = per_run(gens, lambda g: F.normalize(torch.randn(n, size, generator=g), dim=1))
                self.register_buffer(f"{side}_{name}", start.reshape(runs * n, size) if n > 1 else start[:, 0])
        self.runs = runs
        self.kernel_size = kernel_size
        self.in_channels = in_channels

    def forward(self, x: torch.Tensor, detach_params: bool = False) -> torch.Tensor:
        """``detach_params``: gradients flow to the input only, and the spectral norms' power
        iteration is left to the D step (G's step needs no D gradients; one power iteration per
        training iteration, where the authors' code runs one per D forward)."""

        def param(p: torch.Tensor) -> torch.Tensor:
            return p.detach() if detach_params else p

        iterate = self.training and not detach_params
        runs, n, c_in, h, w = x.shape
        k = self.kernel_size
        w_first = spectral_normalised(param(self.first_weight), self.u_first, self.v_first, iterate)
        oh, ow = h - k + 1, w - k + 1
        c = w_first.shape[1]
        cols = n * oh * ow
        # The 7x7 layer as a patch matrix and a batched product: its backward is much cheaper on
        # the CPU than a convolution's backward-data (G's step), and unlike a grouped
        # convolution's forward, a run's numbers do not depend on the number of runs.
        patches = PatchMatrix.apply(x, k)
        feat = torch.baddbmm(param(self.first_bias)[:, :, None], w_first, patches)
        hidden = self.hidden_weight.shape[1]
        w_hidden = spectral_normalised(param(self.hidden_weight).reshape(-1, c, c), self.u_hidden,
                                       self.v_hidden, iterate).view(runs, hidden, c, c)
        b_hidden = param(self.hidden_bias)
        # BatchNorm in training mode on one crop normalises each channel over that crop's
        # positions: a GroupNorm with one group per (run, channel, crop).
        gamma = param(self.bn_weight).repeat_interleave(n, dim=2)
        beta = param(self.bn_bias).repeat_interleave(n, dim=2)
        for i in range(hidden):
            feat = torch.baddbmm(b_hidden[:, i, :, None], w_hidden[:, i], feat)
            feat = F.group_norm(feat.view(1, runs * c * n, oh * ow), runs * c * n,
                                gamma[:, i].reshape(-1), beta[:, i].reshape(-1), eps=1e-5)
            feat = F.relu(feat.view(runs, c, cols))
        w_last = spectral_normalised(param(self.last_weight), self.u_last, self.v_last, iterate)
        out = torch.baddbmm(param(self.last_bias)[:, :, None], w_last, feat)
        return torch.stack([torch.sigmoid(o) for o in out]).view(runs, n, 1, oh, ow)  # run by run: module docstring
