"""The fast KernelGAN networks against straightforward references (float64)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from blindsr.estimators.kernelgan.networks import DeepLinearGenerator, PatchDiscriminator, compose_kernel


def random_generator(seed: int) -> DeepLinearGenerator:
    g = DeepLinearGenerator(generator=torch.Generator().manual_seed(seed)).double()
    with torch.no_grad():
        for w in g.weights:  # larger than the 0.1-gain init so that every path matters
            w.normal_(0, 0.3, generator=torch.Generator().manual_seed(seed + w.numel()))
    return g


def test_collapsed_forward_equals_layerwise_outputs_and_gradients():
    g = random_generator(0)
    x = torch.randn(3, 1, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    target = torch.randn(3, 1, 26, 26, dtype=torch.float64, generator=torch.Generator().manual_seed(2))

    def grads(forward):
        g.zero_grad()
        out = forward(x)
        ((out - target) ** 2).sum().backward()
        return out.detach(), [w.grad.clone() for w in g.weights]

    out_fast, grad_fast = grads(g.forward)
    out_ref, grad_ref = grads(g.layerwise_forward)
    assert out_fast.shape == out_ref.shape == (3, 1, 26, 26)
    scale = out_ref.abs().max()
    assert (out_fast - out_ref).abs().max() <= 1e-12 * scale
    for a, b in zip(grad_fast, grad_ref):
        assert (a - b).abs().max() <= 1e-11 * b.abs().max()


def test_composed_kernel_equals_impulse_response_and_numpy():
    g = random_generator(3)
    k = g.kernel()
    assert k.shape == (13, 13)
    assert torch.allclose(k, g.impulse_response(), atol=1e-13 * float(k.detach().abs().max()))
    # Independent float64 numpy reference: correlate a delta through each layer, channel by channel.
    from scipy.signal import correlate2d
    weights = [w.detach().numpy() for w in g.weights]
    feats = [np.zeros((25, 25))]
    feats[0][12, 12] = 1.0
    for w in weights:
        feats = [sum(correlate2d(f, w[o, c], mode="valid") for c, f in enumerate(feats)) for o in range(w.shape[0])]
    assert np.allclose(feats[0][::-1, ::-1], k.detach().numpy(), atol=1e-12 * np.abs(feats[0]).max())


def test_compose_kernel_generic_structures():
    gen = torch.Generator().manual_seed(5)
    weights = [torch.randn(4, 1, 3, 3, generator=gen, dtype=torch.float64),
               torch.randn(5, 4, 2, 2, generator=gen, dtype=torch.float64),
               torch.randn(1, 5, 1, 1, generator=gen, dtype=torch.float64)]
    x = torch.randn(2, 1, 11, 11, generator=gen, dtype=torch.float64)
    ref = x
    for w in weights:
        ref = F.conv2d(ref, w)
    k = compose_kernel(weights)
    assert torch.allclose(F.conv2d(x, k[None, None]), ref, atol=1e-12)


class ReferenceD(nn.Module):
    """The authors' D, built from torch.nn: spectral_norm wrappers and BatchNorm2d."""

    def __init__(self):
        super().__init__()
        sn = nn.utils.spectral_norm
        self.first = sn(nn.Conv2d(3, 64, 7))
        layers = []
        for _ in range(5):
            layers += [sn(nn.Conv2d(64, 64, 1)), nn.BatchNorm2d(64), nn.ReLU()]
        self.block = nn.Sequential(*layers)
        self.last = sn(nn.Conv2d(64, 1, 1))

    def forward(self, x):
        return torch.sigmoid(self.last(self.block(self.first(x))))


def reference_from(d: PatchDiscriminator) -> ReferenceD:
    ref = ReferenceD().double()
    with torch.no_grad():
        ref.first.weight_orig.copy_(d.first_weight[0].view(64, 3, 7, 7))
        ref.first.bias.copy_(d.first_bias)
        ref.first.weight_u.copy_(d.u_first[0])
        ref.first.weight_v.copy_(d.v_first[0])
        for i in range(5):
            conv, bn = ref.block[3 * i], ref.block[3 * i + 1]
            conv.weight_orig.copy_(d.hidden_weight[i].view(64, 64, 1, 1))
            conv.bias.copy_(d.hidden_bias[i])
            conv.weight_u.copy_(d.u_hidden[i])
            conv.weight_v.copy_(d.v_hidden[i])
            bn.weight.copy_(d.bn_weight[i])
            bn.bias.copy_(d.bn_bias[i])
        ref.last.weight_orig.copy_(d.last_weight[0].view(1, 64, 1, 1))
        ref.last.bias.copy_(d.last_bias)
        ref.last.weight_u.copy_(d.u_last[0])
        ref.last.weight_v.copy_(d.v_last[0])
    return ref.train()


def test_discriminator_matches_torch_nn_reference_per_crop():
    d = PatchDiscriminator(generator=torch.Generator().manual_seed(7)).double()
    with torch.no_grad():
        d.hidden_bias.normal_(0, 0.1)
        d.first_bias.normal_(0, 0.1)
    gen = torch.Generator().manual_seed(8)
    real = torch.randn(1, 3, 26, 26, dtype=torch.float64, generator=gen)
    fake = torch.randn(1, 3, 26, 26, dtype=torch.float64, generator=gen)
    ref_real, ref_fake = reference_from(d), reference_from(d)
    batched = d(torch.cat([real, fake]))
    # One power iteration from the same state for each crop: the batched forward equals two
    # separate BatchNorm-in-training-mode forwards.
    assert batched.shape == (2, 1, 20, 20)
    assert torch.allclose(batched[0:1], ref_real(real), atol=1e-12)
    assert torch.allclose(batched[1:2], ref_fake(fake), atol=1e-12)
    assert torch.allclose(d.u_first[0], ref_real.first.weight_u, atol=1e-12)


def test_discriminator_gradients_match_reference():
    d = PatchDiscriminator(generator=torch.Generator().manual_seed(9)).double()
    ref = reference_from(d)
    x = torch.randn(1, 3, 26, 26, dtype=torch.float64, generator=torch.Generator().manual_seed(10))
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    (1 - d(xa)).mean().backward()
    (1 - ref(xb)).mean().backward()
    assert torch.allclose(xa.grad, xb.grad, atol=1e-12)
    assert torch.allclose(d.first_weight.grad[0].view(64, 3, 7, 7), ref.first.weight_orig.grad, atol=1e-12)
    assert torch.allclose(d.bn_weight.grad[2], ref.block[7].weight.grad, atol=1e-12)
    # detach_params: the same input gradient, no parameter gradients (power iteration off so
    # that both passes use the same normalised weights).
    d.eval()
    grads = []
    for detach in (False, True):
        d.zero_grad(set_to_none=True)
        xc = x.clone().requires_grad_(True)
        (1 - d(xc, detach_params=detach)).mean().backward()
        grads.append(xc.grad)
    assert torch.allclose(grads[0], grads[1], atol=1e-14)
    assert d.first_weight.grad is None


def test_generator_init_scale():
    g = DeepLinearGenerator(generator=torch.Generator().manual_seed(0))
    w = g.weights[1]
    expected = 0.1 * np.sqrt(2.0 / (64 * 25 + 64 * 25))
    assert float(w.detach().std()) == pytest.approx(expected, rel=0.05)
    assert copy.deepcopy(g).kernel_size == 13
