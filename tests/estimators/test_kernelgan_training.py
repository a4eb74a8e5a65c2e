"""KernelGAN training pieces: crops, bicubic target, schedule, post-processing, determinism."""
from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from blindsr.degradation import bicubic_taps
from blindsr.estimators.kernelgan.crops import (box_sum, crop_maps, gradient_map, keep_top, plan_crops,
                                                probability_map)
from blindsr.estimators.kernelgan.settings import KernelGANSettings, settings_for
from blindsr.estimators.kernelgan.train import (ImageTooSmall, KernelGANRun, Schedule, penalty_mask,
                                                prepare_image, signed_planes, soft_threshold, train)
from tests.conftest import textured_image

# The module (the package's name ``train`` is its function).
train_module = importlib.import_module("blindsr.estimators.kernelgan.train")


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
    sched, opt = Schedule(s, runs=2), _Opt()
    losses = {0: 1.0, 1: 0.3, 2: 0.5, 3: 0.3, 4: 0.3}
    history = []
    for i in range(1, 1600):
        sched.update(i, [losses.get(i, 0.3), 1.0], [opt])  # run 1 never gets close to bicubic
        history.append((i, sched.bicubic_weight[0], sched.centre_weight[0], sched.sparsity_weight[0],
                        opt.param_groups[0]["lr"]))
    assert sched.events[1] == {} and sched.bicubic_weight[1] == 5.0
    weights = {i: w for i, w, *_ in history}
    # Low at 1, reset at 2, low at 3, 4, 5: three in a row -> similar at iteration 5.
    assert sched.events[0]["similar_to_bicubic"] == 5
    assert weights[199] == 5.0 and weights[200] == pytest.approx(0.05)
    assert weights[400] == pytest.approx(5e-4)
    assert sched.events[0]["constraints_on"] == 400
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


def reference_gradient_map(rgb: np.ndarray, window: int = 5, percent: float = 0.97) -> np.ndarray:
    """The authors' map in float64, written out plainly: zeroed borders as new arrays, the top 3 %
    by a full sort, the window sum by scipy's convolution."""
    from scipy.signal import convolve2d

    def border(a):
        out = np.zeros_like(a)
        out[window:-window, window:-window] = a[window:-window, window:-window]
        return out

    def top(a):
        ordered = np.sort(a.ravel())
        pivot = min(int(percent * a.size), a.size - 2)
        low, above = ordered[pivot], ordered[pivot + 1]
        return np.clip(a, low, above if above > low else low + 1e-5) - low

    gy, gx = np.gradient(rgb @ np.array([0.299, 0.587, 0.114]))
    maps = [top(border(np.abs(gy))), top(border(np.abs(gx))), border(np.hypot(gx, gy))]
    combined = sum(m / m.sum() for m in maps)
    blurred = convolve2d(combined, np.ones((window, window)), mode="same") / window**2
    return blurred / blurred.mean()


def test_gradient_map_equals_plain_reference_and_leaves_input_alone(rng):
    img = textured_image(rng, 61, 74)
    img[:20] = 0.25  # a flat band: ties in the ranking
    before = img.copy()
    assert np.allclose(gradient_map(img), reference_gradient_map(img), rtol=1e-12, atol=1e-12)
    maps = crop_maps(img, 32, 10)
    assert np.array_equal(img, before)
    assert maps.g_prob.sum() == pytest.approx(1.0) and maps.d_prob.sum() == pytest.approx(1.0)


def test_probability_map_of_a_map_smaller_than_its_border_is_uniform():
    assert np.array_equal(probability_map(np.ones((20, 22)), 26), np.full(440, 1 / 440))


def test_signed_planes_round_once_from_float64(rng):
    x = rng.random((7, 9, 3))
    x[0, 0] = [0.5 + 2.0**-30, 1.0, 0.0]  # 2x - 1 exact in float64, not in float32
    planes = signed_planes(x, torch.device("cpu"))
    assert planes.dtype == torch.float32 and planes.is_contiguous()
    assert np.array_equal(planes.numpy(), (x.transpose(2, 0, 1) * 2.0 - 1.0).astype(np.float32))


@pytest.mark.parametrize("shape", [(70, 64), (75, 81)])
def test_bicubic_target_in_bands_equals_one_convolution(rng, monkeypatch, shape):
    """The whole-image bicubic target made a few rows at a time is the same, bit for bit, as one
    convolution of the whole image (and as the float64 filter to float32 rounding)."""
    img = textured_image(rng, *shape)
    settings = KernelGANSettings(iterations=2, bicubic_target="per_channel", edge_shave=0)
    whole = KernelGANRun(img, settings, [0], torch.device("cpu")).bicubic_full[0]
    monkeypatch.setattr(train_module, "BICUBIC_BAND_ELEMENTS", 3 * shape[1])  # one output row per band
    banded = KernelGANRun(img, settings, [0], torch.device("cpu")).bicubic_full[0]
    assert torch.equal(banded, whole)
    rows, cols = shape[0] // 2 * 2, shape[1] // 2 * 2
    signed = img[:rows, :cols].transpose(2, 0, 1) * 2.0 - 1.0
    taps = np.asarray(bicubic_taps(2), dtype=np.float64)
    out_rows, out_cols = (rows - 9) // 2 + 1, (cols - 9) // 2 + 1
    ref = np.zeros((3, out_rows, out_cols))
    for i in range(8):
        for j in range(8):
            ref += taps[i] * taps[j] * signed[:, 1 + i:1 + i + 2 * out_rows:2, 1 + j:1 + j + 2 * out_cols:2]
    assert np.allclose(banded.numpy(), ref, atol=1e-5)


@pytest.mark.parametrize("size", [1, 4, 5, 13, 32, 64, 101])
@pytest.mark.parametrize("shape", [(37, 50), (1, 1), (2, 3)])
def test_box_sum_equals_convolve2d(rng, size, shape):
    from scipy.signal import convolve2d

    a = rng.random(shape)
    assert np.allclose(box_sum(a, size), convolve2d(a, np.ones((size, size)), mode="same"), atol=1e-10)


def test_keep_top_hand_example():
    """The authors' clip_extreme: clip between the pivot value and the next larger sorted value,
    minus the pivot (ties: the next value is the pivot's plus 1e-5)."""
    a = np.array([[5.0, 1.0, 3.0], [2.0, 4.0, 0.0]])  # sorted: 0 1 2 3 4 5
    assert np.array_equal(keep_top(a, 0.5), np.clip(a, 3.0, 4.0) - 3.0)  # pivot int(0.5 * 6) = 3
    assert np.array_equal(keep_top(a, 1.0), np.clip(a, 4.0, 5.0) - 4.0)  # pivot capped at n - 2
    ties = np.array([[1.0, 1.0], [1.0, 0.0]])
    assert np.allclose(keep_top(ties, 0.5), np.clip(ties, 1.0, 1.0 + 1e-5) - 1.0)


def test_crop_plan_corners_are_even_and_inside(rng):
    img = textured_image(rng, 90, 120)
    plan = plan_crops(crop_maps(img, 64, 26), 500, np.random.default_rng(0))
    for corners, size in ((plan.g_corners, 64), (plan.d_corners, 26)):
        assert (corners % 2 == 0).all()
        assert (corners >= 0).all()
        assert (corners[:, 0] + size <= 90).all() and (corners[:, 1] + size <= 120).all()


@pytest.mark.slow
def test_bicubic_target_slice_equals_per_crop_filtering(rng):
    """The target precomputed on the whole image equals the authors' per-crop computation: each
    crop filtered with the 8x8 bicubic filter (stride 2, pad 3; expanded to 3x3 channels, i.e.
    summed over colours) and centre-cropped to G's output."""
    img = textured_image(rng, 110, 100)
    taps = torch.tensor(bicubic_taps(2), dtype=torch.float32)
    filt = torch.outer(taps, taps)
    for target in ("channel_sum", "per_channel"):
        settings = KernelGANSettings(iterations=10, bicubic_target=target, edge_shave=0, crops_per_iteration=2)
        run = KernelGANRun(img, settings, [0, 1], torch.device("cpu"))
        for i in range(10):
            g_in, d_real = run.crops(i)
            assert g_in.shape == (6, 2, 64, 64) and d_real.shape == (2, 2, 3, 26, 26)
            targets = run.bicubic_target(i, 26)
            for r in range(2):
                x = g_in[:, r].view(2, 3, 64, 64)  # run r's crops, as the authors' code holds them
                if target == "channel_sum":
                    down = F.conv2d(x, filt.expand(3, 3, 8, 8), stride=2, padding=3)
                else:
                    down = F.conv2d(x, filt.expand(3, 1, 8, 8), stride=2, padding=3, groups=3)
                assert torch.allclose(targets[r], down[..., 3:29, 3:29], atol=1e-6)


@pytest.mark.slow
def test_same_seed_same_kernel_other_seed_other_kernel(rng):
    img = textured_image(rng, 96, 96)
    s = KernelGANSettings(iterations=40)
    a = train(img, s, [11], torch.device("cpu")).kernels
    b = train(img, s, [11], torch.device("cpu")).kernels
    c = train(img, s, [12], torch.device("cpu")).kernels
    assert a.shape == (1, 13, 13) and np.array_equal(a, b)
    assert not np.array_equal(a, c)
    both = train(img, s, [11, 12], torch.device("cpu"))
    assert both.kernels.shape == (2, 13, 13) and both.finite.all()
    assert not np.array_equal(both.kernels[0], both.kernels[1])


@pytest.mark.slow
def test_small_images_adapt_or_refuse(rng):
    s = settings_for("paper")
    assert prepare_image(textured_image(rng, 50, 70), s).shape == (50, 70, 3)  # no shave below a G crop
    run = KernelGANRun(textured_image(rng, 40, 44), s.updated({"iterations": 2}), [0], torch.device("cpu"))
    assert run.g_size == 40 and run.d_size == 14
    run.step(0)
    with pytest.raises(ImageTooSmall, match="at least 32"):
        prepare_image(textured_image(rng, 20, 200), s)


def test_prepared_image_is_a_view_of_the_shaved_even_interior(rng):
    s = settings_for("paper")
    img = textured_image(rng, 101, 121)
    e = s.edge_shave
    prepared = prepare_image(img, s)
    assert np.shares_memory(prepared, img)  # no copy of a photo
    rows, cols = (101 - 2 * e) // 2 * 2, (121 - 2 * e) // 2 * 2
    assert np.array_equal(prepared, img[e:e + rows, e:e + cols])


def test_presets():
    assert settings_for("paper").iterations == 3000
    assert settings_for("default").noise_correction and not settings_for("paper").noise_correction
    assert settings_for("paper", {"iterations": 10}).iterations == 10
    with pytest.raises(KeyError):
        settings_for("nope")
    with pytest.raises(KeyError):
        settings_for("paper", {"bogus": 1})


@pytest.mark.parametrize("layerwise", [False, True])
def test_kept_kernel_gives_the_numbers_of_computing_it_again(rng, layerwise):
    # The D step's kernel is kept, with its graph, for the next G step; a run made to compute it
    # again in every G step (the code before) must come out the same bit for bit, through the
    # schedule's switch to the centre-of-mass and sparsity terms.
    img = textured_image(rng, 96, 96)
    s = KernelGANSettings(iterations=24, bicubic_threshold=10.0, bicubic_patience=1, schedule_every=4,
                          bicubic_decay=10.0, constraints_below=0.1)
    kept = KernelGANRun(img, s, [3, 4], torch.device("cpu"), layerwise=layerwise)
    again = KernelGANRun(img, s, [3, 4], torch.device("cpu"), layerwise=layerwise)
    for i in range(s.iterations):
        kept.step(i)
        assert (kept.next_kernel is not None) == (i + 1 < s.iterations)
        again.next_kernel = None
        again.step(i)
        for name in ("bicubic", "g", "d"):
            assert np.array_equal(kept.last_losses[name], again.last_losses[name])
    assert kept.schedule.constraints_on.all()
    assert np.array_equal(kept.kernels(), again.kernels())
