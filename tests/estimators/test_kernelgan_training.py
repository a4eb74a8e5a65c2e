"""KernelGAN training pieces: crops, bicubic target, schedule, post-processing, determinism."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from blindsr.degradation import bicubic_taps
from blindsr.estimators.kernelgan.crops import gradient_map, plan_crops, probability_map
from blindsr.estimators.kernelgan.settings import KernelGANSettings, settings_for
from blindsr.estimators.kernelgan.train import (ImageTooSmall, KernelGANRun, Schedule, penalty_mask,
                                                prepare_image, soft_threshold, train)
from tests.conftest import textured_image


def test_penalty_mask_hand_values():
    m = penalty_mask(13, 30.0)
    assert m.shape == (13, 13)
    assert not m[2:11, 2:11].any()  # central 9x9 free
    corner = 30 * (1 - np.exp(-(6**2 + 6**2) / (2 * 13**2)))
    assert m[0, 0] == pytest.approx(corner)
    assert m[0, 6] == pytest.approx(30 * (1 - np.exp(-36 / 338)))


def test_soft_threshold_hand_example():
    k = np.zeros((5, 5))
    k.flat[:6] = [6, 5, 4, 3, 2, 1]
    out = soft_threshold(k, rank=2, factor=0.5)  # cut = 0.5 x 3rd largest (4) = 2
    assert np.allclose(out.flat[:6], np.array([4, 3, 2, 1, 0, 0]) / 10)
    assert out.sum() == pytest.approx(1.0)


class _Opt:
    def __init__(self):
        self.param_groups = [{"lr": 1.0}]


def test_schedule_follows_authors_learner():
    s = KernelGANSettings()
    sched, opt = Schedule(s), _Opt()
    losses = {0: 1.0, 1: 0.3, 2: 0.5, 3: 0.3, 4: 0.3}
    history = []
    for i in range(1, 1600):
        sched.update(i, losses.get(i, 0.3), [opt])
        history.append((i, sched.bicubic_weight, sched.centre_weight, sched.sparsity_weight, opt.param_groups[0]["lr"]))
    weights = {i: w for i, w, *_ in history}
    # Low at 1, reset at 2, low at 3, 4, 5: three in a row -> similar at iteration 5.
    assert sched.events["similar_to_bicubic"] == 5
    assert weights[199] == 5.0 and weights[200] == pytest.approx(0.05)
    assert weights[400] == pytest.approx(5e-4)
    assert sched.events["constraints_on"] == 400
    assert weights[600] == pytest.approx(5e-6) and weights[1599] == pytest.approx(5e-6)
    lr = {i: r for i, *_, r in history}
    assert lr[749] == 1.0 and lr[750] == pytest.approx(0.1) and lr[1500] == pytest.approx(0.01)


def test_gradient_and_probability_maps(rng):
    img = textured_image(rng, 80, 96)
    gm = gradient_map(img)
    assert gm.shape == (80, 96) and gm.mean() == pytest.approx(1.0)
    prob = probability_map(gm, 26).reshape(80, 96)
    assert prob.sum() == pytest.approx(1.0)
    assert not prob[:13].any() and not prob[:, -13:].any()
    flat = probability_map(np.zeros((40, 40)), 26)
    assert np.allclose(flat, 1 / 1600)


def test_crop_plan_corners_are_even_and_inside(rng):
    img = textured_image(rng, 90, 120)
    plan = plan_crops(img, 64, 26, 500, np.random.default_rng(0))
    for corners, size in ((plan.g_corners, 64), (plan.d_corners, 26)):
        assert (corners % 2 == 0).all()
        assert (corners >= 0).all()
        assert (corners[:, 0] + size <= 90).all() and (corners[:, 1] + size <= 120).all()


def test_bicubic_target_slice_equals_per_crop_filtering(rng):
    """The target precomputed on the whole image equals the authors' per-crop computation: each
    crop filtered with the 8x8 bicubic filter (stride 2, pad 3; expanded to 3x3 channels, i.e.
    summed over colours) and centre-cropped to G's output."""
    img = textured_image(rng, 110, 100)
    for target in ("channel_sum", "per_channel"):
        run = KernelGANRun(img, KernelGANSettings(iterations=20, bicubic_target=target, edge_shave=0), 0,
                           torch.device("cpu"))
        taps = torch.tensor(bicubic_taps(2), dtype=torch.float32)
        filt = torch.outer(taps, taps)
        for i in range(20):
            g_in, _ = run.crops(i)
            x = g_in.transpose(0, 1)  # (1, 3, 64, 64), as the authors' code holds it
            weight = filt.expand(3, 3, 8, 8) if target == "channel_sum" else filt.expand(3, 1, 8, 8)
            down = F.conv2d(x, weight, stride=2, padding=3, groups=1 if target == "channel_sum" else 3)
            expected = down[..., 3:29, 3:29]
            assert torch.allclose(run.bicubic_target(i, 26), expected, atol=1e-6)


def test_patch_matrix_generator_equals_convolution(rng):
    img = textured_image(rng, 100, 100)
    run = KernelGANRun(img, KernelGANSettings(iterations=5, edge_shave=0), 0, torch.device("cpu"))
    g_in, _ = run.crops(0)
    k = run.G.kernel()
    fast = run.generate(g_in, run.patches(g_in), k)
    ref = F.conv2d(g_in, k[None, None], stride=2).transpose(0, 1)
    assert torch.allclose(fast, ref, atol=1e-6)


def test_same_seed_same_kernel_other_seed_other_kernel(rng):
    img = textured_image(rng, 96, 96)
    s = KernelGANSettings(iterations=40)
    a = train(img, s, 11, torch.device("cpu")).kernel
    b = train(img, s, 11, torch.device("cpu")).kernel
    c = train(img, s, 12, torch.device("cpu")).kernel
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_small_images_adapt_or_refuse(rng):
    s = settings_for("paper")
    assert prepare_image(textured_image(rng, 50, 70), s).shape == (50, 70, 3)  # no shave below a G crop
    run = KernelGANRun(textured_image(rng, 40, 44), s.updated({"iterations": 2}), 0, torch.device("cpu"))
    assert run.g_size == 40 and run.d_size == 14
    run.step(0)
    with pytest.raises(ImageTooSmall, match="at least 32"):
        prepare_image(textured_image(rng, 20, 200), s)


def test_presets():
    assert settings_for("paper").iterations == 3000
    assert settings_for("paper", {"iterations": 10}).iterations == 10
    with pytest.raises(KeyError):
        settings_for("nope")
    with pytest.raises(KeyError):
        settings_for("paper", {"bogus": 1})
