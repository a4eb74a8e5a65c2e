"""The fast KernelGAN networks against straightforward references (float64)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from blindsr.estimators.kernelgan.networks import DeepLinearGenerator, PatchDiscriminator, PatchMatrix, compose_kernel


def random_generator(seed: int, runs: int = 2) -> DeepLinearGenerator:
    g = DeepLinearGenerator(runs, generators=[torch.Generator().manual_seed(seed + r) for r in range(runs)]).double()
    with torch.no_grad():
        for w in g.weights:  # larger than the 0.1-gain init so that every path matters
            w.normal_(0, 0.3, generator=torch.Generator().manual_seed(seed + w.numel()))
    return g


@pytest.mark.slow
def test_collapsed_forward_equals_layerwise_outputs_and_gradients():
    g = random_generator(0)
    x = torch.randn(3, 2, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    target = torch.randn(3, 2, 26, 26, dtype=torch.float64, generator=torch.Generator().manual_seed(2))

    def grads(forward):
        g.zero_grad()
        out = forward(x)
        ((out - target) ** 2).sum().backward()
        return out.detach(), [w.grad.clone() for w in g.weights]

    out_fast, grad_fast = grads(g.forward)
    out_ref, grad_ref = grads(g.layerwise_forward)
    assert out_fast.shape == out_ref.shape == (3, 2, 26, 26)
    scale = out_ref.abs().max()
    assert (out_fast - out_ref).abs().max() <= 1e-12 * scale
    for a, b in zip(grad_fast, grad_ref):
        assert (a - b).abs().max() <= 1e-11 * b.abs().max()


@pytest.mark.slow
def test_composed_kernel_equals_impulse_response_and_numpy():
    g = random_generator(3)
    k = g.kernel().detach()
    assert k.shape == (2, 13, 13)
    assert torch.allclose(k, g.impulse_response().detach(), atol=1e-13 * float(k.abs().max()))
    # Independent float64 numpy reference: correlate a delta through each layer, channel by channel.
    from scipy.signal import correlate2d
    for run in range(2):
        weights = [w[run].detach().numpy() for w in g.weights]
        feats = [np.zeros((25, 25))]
        feats[0][12, 12] = 1.0
        for w in weights:
            feats = [sum(correlate2d(f, w[o, c], mode="valid") for c, f in enumerate(feats)) for o in range(w.shape[0])]
        assert np.allclose(feats[0][::-1, ::-1], k[run].numpy(), atol=1e-12 * np.abs(feats[0]).max())


def test_compose_kernel_generic_structures():
    gen = torch.Generator().manual_seed(5)
    weights = [torch.randn(3, 4, 1, 3, 3, generator=gen, dtype=torch.float64),
               torch.randn(3, 5, 4, 2, 2, generator=gen, dtype=torch.float64),
               torch.randn(3, 1, 5, 1, 1, generator=gen, dtype=torch.float64)]
    x = torch.randn(2, 1, 11, 11, generator=gen, dtype=torch.float64)
    k = compose_kernel(weights)
    for run in range(3):
        ref = x
        for w in weights:
            ref = F.conv2d(ref, w[run])
        assert torch.allclose(F.conv2d(x, k[run][None, None]), ref, atol=1e-12)


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


def reference_from(d: PatchDiscriminator, run: int) -> ReferenceD:
    ref = ReferenceD().double()
    with torch.no_grad():
        ref.first.weight_orig.copy_(d.first_weight[run].view(64, 3, 7, 7))
        ref.first.bias.copy_(d.first_bias[run])
        ref.first.weight_u.copy_(d.u_first[run])
        ref.first.weight_v.copy_(d.v_first[run])
        for i in range(5):
            conv, bn = ref.block[3 * i], ref.block[3 * i + 1]
            conv.weight_orig.copy_(d.hidden_weight[run, i].view(64, 64, 1, 1))
            conv.bias.copy_(d.hidden_bias[run, i])
            conv.weight_u.copy_(d.u_hidden[run * 5 + i])
            conv.weight_v.copy_(d.v_hidden[run * 5 + i])
            bn.weight.copy_(d.bn_weight[run, i])
            bn.bias.copy_(d.bn_bias[run, i])
        ref.last.weight_orig.copy_(d.last_weight[run].view(1, 64, 1, 1))
        ref.last.bias.copy_(d.last_bias[run])
        ref.last.weight_u.copy_(d.u_last[run])
        ref.last.weight_v.copy_(d.v_last[run])
    return ref.train()


def random_discriminator(seed: int) -> PatchDiscriminator:
    d = PatchDiscriminator(2, generators=[torch.Generator().manual_seed(seed + r) for r in range(2)]).double()
    with torch.no_grad():
        d.hidden_bias.normal_(0, 0.1)
        d.first_bias.normal_(0, 0.1)
    return d


@pytest.mark.slow
def test_discriminator_matches_torch_nn_reference_per_run_and_crop():
    d = random_discriminator(7)
    refs = [[reference_from(d, r) for _ in range(2)] for r in range(2)]
    x = torch.randn(2, 2, 3, 26, 26, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    out = d(x)
    assert out.shape == (2, 2, 1, 20, 20)
    # One power iteration from the same state for each crop: the batched forward equals separate
    # BatchNorm-in-training-mode forwards of each run's own network.
    for r in range(2):
        for c in range(2):
            assert torch.allclose(out[r, c:c + 1], refs[r][c](x[r, c:c + 1]), atol=1e-12)
    assert torch.allclose(d.u_first[1], refs[1][0].first.weight_u, atol=1e-12)


@pytest.mark.slow
def test_discriminator_gradients_match_reference_and_runs_are_independent():
    d = random_discriminator(9)
    ref = reference_from(d, 1)
    x = torch.randn(2, 1, 3, 26, 26, dtype=torch.float64, generator=torch.Generator().manual_seed(10))
    xa, xb = x.clone().requires_grad_(True), x[1].clone().requires_grad_(True)
    (1 - d(xa)[1]).mean().backward()
    (1 - ref(xb)).mean().backward()
    assert torch.allclose(xa.grad[1], xb.grad, atol=1e-12)
    assert not xa.grad[0].any() and not d.first_weight.grad[0].any()  # run 0 untouched by run 1's loss
    assert torch.allclose(d.first_weight.grad[1].view(64, 3, 7, 7), ref.first.weight_orig.grad, atol=1e-12)
    assert torch.allclose(d.bn_weight.grad[1, 2], ref.block[7].weight.grad, atol=1e-12)
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


@pytest.mark.parametrize("crops", [1, 2])
def test_patch_matrix_equals_unfold_bit_for_bit(crops):
    """The strided patch matrix: entry by entry as defined (numpy), and in float32 the same
    numbers and the same input gradient, bit for bit, as ``F.unfold`` of the crops with the crop
    axis moved into the columns (what D used before, and what its gradient still is)."""
    runs, c, h, w, k = 2, 3, 12, 11, 5
    x = torch.randn(runs, crops, c, h, w, generator=torch.Generator().manual_seed(crops))
    oh, ow = h - k + 1, w - k + 1
    got = PatchMatrix.apply(x, k)
    assert got.shape == (runs, c * k * k, crops * oh * ow)
    xn = x.numpy()
    expected = np.empty(got.shape, dtype=np.float32)
    for r, n, ch, i, j, y, z in np.ndindex(runs, crops, c, k, k, oh, ow):
        expected[r, (ch * k + i) * k + j, (n * oh + y) * ow + z] = xn[r, n, ch, y + i, z + j]
    assert np.array_equal(got.numpy(), expected)

    def unfolded(t):
        p = F.unfold(t.reshape(runs * crops, c, h, w), k).view(runs, crops, c * k * k, oh * ow)
        return p.transpose(1, 2).reshape(runs, c * k * k, crops * oh * ow)

    upstream = torch.randn(got.shape, generator=torch.Generator().manual_seed(9))
    grads = []
    for fn in (lambda t: PatchMatrix.apply(t, k), unfolded):
        xg = x.clone().requires_grad_(True)
        out = fn(xg)
        out.backward(upstream)
        grads.append((out.detach(), xg.grad))
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])


def seeded(*seeds: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


def test_generator_init_scale():
    g = DeepLinearGenerator(3, generators=seeded(0, 1, 2))
    w = g.weights[1]
    expected = 0.1 * np.sqrt(2.0 / (64 * 25 + 64 * 25))
    assert float(w.detach().std()) == pytest.approx(expected, rel=0.05)
    assert copy.deepcopy(g).kernel_size == 13 and w.shape == (3, 64, 64, 5, 5)


def test_each_run_draws_its_initial_weights_from_its_own_generator():
    """A run's weights and spectral-norm vectors are its seed's alone, whatever runs sit beside it
    (what lets the runs be split over processes)."""
    g_three, g_one = DeepLinearGenerator(3, generators=seeded(5, 6, 7)), DeepLinearGenerator(1, generators=seeded(6))
    for a, b in zip(g_three.weights, g_one.weights):
        assert torch.equal(a[1], b[0])
    assert not torch.equal(g_three.weights[0][0], g_three.weights[0][1])
    d_three, d_one = PatchDiscriminator(3, generators=seeded(5, 6, 7)), PatchDiscriminator(1, generators=seeded(6))
    for name, value in d_one.state_dict().items():
        stacked = d_three.state_dict()[name]
        if name in ("u_hidden", "v_hidden"):  # (runs * hidden, size)
            stacked = stacked.view(3, -1, stacked.shape[-1])[1]
            value = value.view(-1, value.shape[-1])
        else:
            stacked, value = stacked[1], value[0]
        assert torch.equal(stacked, value), name
