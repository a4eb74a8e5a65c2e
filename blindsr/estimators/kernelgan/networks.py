"""KernelGAN's networks (Bell-Kligler et al., NeurIPS 2019, Sec. 3), written for speed.

Generator: a deep *linear* network (six bias-free, unpadded convolutions 7-5-3-1-1-1, stride 2 on
the last). Being linear, G(x) equals one strided correlation of x with G's 13x13 impulse response k.
We keep the deep parameterisation (it optimises better, paper Sec. 3.1) but compute k from the
weights by composing the filters directly - the 1x1 layers collapse to a vector, each larger layer
folds in with one matrix product and one overlap-add - then apply k as a single strided
convolution. Same function and same gradients as the layer-by-layer network
(``layerwise_forward``, kept as the reference and for benchmarks) at a small fraction of the cost.

Discriminator: spectral-normalised 7x7 conv, five [1x1 conv -> BatchNorm -> ReLU], 1x1 conv,
sigmoid. BatchNorm always runs in training mode on batches of one crop, which is exactly a
per-sample normalisation; written that way, the real and the fake crop of a D step go through one
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
    """Impulse response (as a correlation kernel) of a stack of bias-free valid convolutions.

    Args:
        weights: conv weights in forward order, shapes (C_out, C_in, kh, kw); the first has
            C_in = 1 and the last C_out = 1.

    Returns:
        (K, K) tensor, K = 1 + sum(kh - 1), such that the stack maps x to corr(x, K) (before any
        stride). Correlation composes by full convolution: corr(corr(x, a), b) = corr(x, a * b);
        with channels, E_prev[c, i+p, j+q] = sum_o w[o, c, i, j] E[o, p, q], computed as one
        matrix product followed by an overlap-add (``F.fold``).
    """
    eff = weights[-1][0]  # (C, p, q): response of the remaining stack to each input channel
    for w in reversed(weights[:-1]):
        c_out, c_in, kh, kw = w.shape
        p, q = eff.shape[-2:]
        # (p*q, c_in*kh*kw); this operand order is ~5x faster than its transpose on CPU.
        products = eff.reshape(c_out, p * q).t() @ w.reshape(c_out, c_in * kh * kw)
        if kh == kw == 1:
            eff = products.t().reshape(c_in, p, q)
            continue
        blocks = products.view(p * q, c_in, kh * kw).transpose(0, 1).reshape(1, c_in * p * q, kh * kw)
        eff = F.fold(blocks, output_size=(kh + p - 1, kw + q - 1), kernel_size=(p, q))[0]
    return eff[0]


class DeepLinearGenerator(nn.Module):
    """G: bias-free linear convolutions; colour channels are a batch of gray images (one kernel
    shared by all channels). Input (N, 1, H, W) -> output (N, 1, (H - K)//s + 1, ...)."""

    def __init__(self, structure: Sequence[int] = (7, 5, 3, 1, 1, 1), channels: int = 64,
                 stride: int = 2, init_gain: float = 0.1, generator: torch.Generator | None = None):
        super().__init__()
        sizes = list(structure)
        ins = [1] + [channels] * (len(sizes) - 1)
        outs = [channels] * (len(sizes) - 1) + [1]
        self.weights = nn.ParameterList()
        for c_in, c_out, k in zip(ins, outs, sizes):
            w = torch.empty(c_out, c_in, k, k)
            fan_in, fan_out = c_in * k * k, c_out * k * k
            w.normal_(0.0, init_gain * math.sqrt(2.0 / (fan_in + fan_out)), generator=generator)
            self.weights.append(nn.Parameter(w))  # xavier-normal, gain 0.1 (authors' init)
        self.stride = stride
        self.kernel_size = 1 + sum(k - 1 for k in sizes)

    def kernel(self) -> torch.Tensor:
        """G's (K, K) correlation kernel, differentiable w.r.t. every weight."""
        return compose_kernel(list(self.weights))

    def forward(self, x: torch.Tensor, kernel: torch.Tensor | None = None) -> torch.Tensor:
        """Collapsed forward: one strided correlation with ``kernel`` (computed if not given)."""
        k = self.kernel() if kernel is None else kernel
        return F.conv2d(x, k[None, None], stride=self.stride)

    def impulse_response(self) -> torch.Tensor:
        """The kernel as the authors compute it: a delta pushed through every layer."""
        k = self.kernel_size
        delta = torch.zeros(1, 1, 2 * k - 1, 2 * k - 1, dtype=self.weights[0].dtype,
                            device=self.weights[0].device)
        delta[0, 0, k - 1, k - 1] = 1.0
        out = delta
        for w in self.weights:
            out = F.conv2d(out, w)
        return out[0, 0].flip([0, 1])

    def layerwise_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The same function computed layer by layer, as the authors' code does."""
        last = len(self.weights) - 1
        for i, w in enumerate(self.weights):
            x = F.conv2d(x, w, stride=self.stride if i == last else 1)
        return x


def spectral_normalised(weight: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
                        power_iteration: bool, eps: float = 1e-12) -> torch.Tensor:
    """weight / sigma(weight) for a stack of matrices (L, rows, cols) (Miyato et al. 2018).

    As ``torch.nn.utils.spectral_norm``: one power iteration per call when ``power_iteration``,
    updating the buffers u (L, rows) and v (L, cols) in place outside the autograd graph; the
    gradient flows through sigma = u^T W v with u, v held constant.
    """
    if power_iteration:
        with torch.no_grad():
            v.copy_(F.normalize(torch.bmm(u.unsqueeze(1), weight).squeeze(1), dim=1, eps=eps))
            u.copy_(F.normalize(torch.bmm(weight, v.unsqueeze(2)).squeeze(2), dim=1, eps=eps))
    sigma = torch.bmm(u.unsqueeze(1), torch.bmm(weight, v.unsqueeze(2)))
    return weight / sigma


def _default_init(shape: tuple[int, ...], fan_in: int,
                  generator: torch.Generator | None) -> torch.Tensor:
    """PyTorch's default conv init (kaiming-uniform, a = sqrt(5)): U(-1/sqrt(fan_in), +...).
    This is what actually ran in the authors' D: their xavier init touched the spectral-norm
    wrapper's derived weight, not the parameter."""
    return (torch.rand(shape, generator=generator) * 2 - 1) / math.sqrt(fan_in)


class PatchDiscriminator(nn.Module):
    """D: per-patch real/fake map of a (N, 3, H, W) input, receptive field ``kernel_size``.

    Output (N, 1, H - kernel_size + 1, W - kernel_size + 1) in (0, 1). The 1x1 layers are stored
    stacked, (layers - 2, C, C), and run as matrix products on a (C, N * positions) feature matrix.
    """

    def __init__(self, channels: int = 64, layers: int = 7, kernel_size: int = 7,
                 in_channels: int = 3, generator: torch.Generator | None = None):
        super().__init__()
        hidden = layers - 2
        patch = in_channels * kernel_size**2
        self.first_weight = nn.Parameter(_default_init((1, channels, patch), patch, generator))
        self.first_bias = nn.Parameter(torch.zeros(channels))
        self.hidden_weight = nn.Parameter(_default_init((hidden, channels, channels), channels, generator))
        self.hidden_bias = nn.Parameter(torch.zeros(hidden, channels))
        self.bn_weight = nn.Parameter(torch.empty(hidden, channels).normal_(1.0, 0.02, generator=generator))
        self.bn_bias = nn.Parameter(torch.zeros(hidden, channels))
        self.last_weight = nn.Parameter(_default_init((1, 1, channels), channels, generator))
        self.last_bias = nn.Parameter(torch.zeros(1))
        for name, (n, rows, cols) in {"first": (1, channels, patch), "hidden": (hidden, channels, channels),
                                      "last": (1, 1, channels)}.items():
            self.register_buffer(f"u_{name}", F.normalize(torch.randn(n, rows, generator=generator), dim=1))
            self.register_buffer(f"v_{name}", F.normalize(torch.randn(n, cols, generator=generator), dim=1))
        self.kernel_size = kernel_size
        self.in_channels = in_channels

    def forward(self, x: torch.Tensor, detach_params: bool = False) -> torch.Tensor:
        """``detach_params``: gradients flow to the input only (G's step needs no D gradients)."""

        def param(p: torch.Tensor) -> torch.Tensor:
            return p.detach() if detach_params else p

        n = x.shape[0]
        k = self.kernel_size
        w_first = spectral_normalised(param(self.first_weight), self.u_first, self.v_first, self.training)
        feat = F.conv2d(x, w_first.view(-1, self.in_channels, k, k), param(self.first_bias))
        c, oh, ow = feat.shape[1:]
        feat = feat.view(n, c, oh * ow).transpose(0, 1).reshape(c, n * oh * ow)
        w_hidden = spectral_normalised(param(self.hidden_weight), self.u_hidden, self.v_hidden,
                                       self.training)
        b_hidden = param(self.hidden_bias)
        # BatchNorm in training mode on one crop normalises each channel over that crop's
        # positions: a GroupNorm with one group per (channel, crop).
        gamma = param(self.bn_weight).repeat_interleave(n, dim=1)
        beta = param(self.bn_bias).repeat_interleave(n, dim=1)
        for i in range(w_hidden.shape[0]):
            feat = torch.addmm(b_hidden[i][:, None], w_hidden[i], feat)
            feat = F.group_norm(feat.view(1, c * n, oh * ow), c * n, gamma[i], beta[i], eps=1e-5)
            feat = F.relu(feat.view(c, n * oh * ow))
        w_last = spectral_normalised(param(self.last_weight), self.u_last, self.v_last, self.training)
        out = torch.addmm(param(self.last_bias)[:, None], w_last[0], feat)
        return torch.sigmoid(out).view(n, 1, oh, ow)
