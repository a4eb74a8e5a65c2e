"""The KernelGAN estimator end to end: handoff convention, restarts, faults, x4."""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from scipy import ndimage

import blindsr.estimators.kernelgan as kg
from blindsr.degradation import bicubic_kernel, degrade, gaussian_kernel, quantize
from blindsr.errors import InputError
from blindsr.estimators import get_estimator
from blindsr.estimators.confidence import UNTRUSTED
from blindsr.estimators.kernelgan.settings import settings_for
from blindsr.estimators.kernelgan.train import RunResult
from blindsr.kernel import SRKernel, centre_of_mass
from blindsr.metrics import kernel_psnr, lr_psnr
from tests.conftest import textured_image


@pytest.mark.slow
def test_whole_chain_recovers_a_known_kernel(chelsea_hr):
    """A photo degraded by the reference degradation with a known anisotropic kernel: the
    estimate (handoff convention) reproduces the LR image far better than the bicubic kernel."""
    truth = SRKernel(gaussian_kernel(11, np.array([[2.6, 0.9], [0.9, 1.2]])), 2)
    chelsea = chelsea_hr
    lr = quantize(degrade(chelsea, truth, 2))
    est = get_estimator("kernelgan", preset="default", device="cpu", iterations=1000, restarts=1)
    k = est.estimate(lr, 2, seed=0).kernels[2]
    c = k.size // 2
    assert np.allclose(centre_of_mass(k.array), (c, c), atol=1e-3)
    assert k.array.min() >= 0 and k.array.sum() == pytest.approx(1.0)
    bicubic = bicubic_kernel(2)
    assert kernel_psnr(k, truth) > kernel_psnr(bicubic, truth) + 4
    assert lr_psnr(chelsea, k, lr, 2) > lr_psnr(chelsea, bicubic, lr, 2) + 4
    refinement = k.provenance["refinement"]
    assert refinement["applied"] and refinement["nll_after"] < refinement["nll_before"]


def test_paper_preset_does_not_refine_and_bad_refine_is_refused():
    assert settings_for("paper").refine == "none" and settings_for("default").refine == "affine"
    with pytest.raises(ValueError, match="refine must be one of"):
        settings_for("default", {"refine": "gaussian"})


def fake_train(kernels: list[np.ndarray], failing: set[int] = frozenset(), calls: list | None = None):
    """A stand-in for ``train``: returns the given native kernels, one per seed, in order."""
    supply = iter(kernels)

    def run(rgb, settings, seeds, device, progress=None, layerwise=False, shares=None, processes=1):
        if calls is not None:
            calls.append(list(seeds) if shares is None else (list(seeds), list(shares), len(rgb)))
        if progress:
            progress(settings.iterations)
        natives = np.stack([next(supply) for _ in seeds])
        finite = np.array([s not in failing for s in seeds])
        diagnostics = [{"seed": s, "failed_at_iteration": None if s not in failing else 50} for s in seeds]
        return RunResult(natives, finite, 0.01, diagnostics)
    return run


def native_kernel(sigma: float) -> np.ndarray:
    """A native-convention kernel: 13x13, centre of mass at +0.5 px."""
    k = np.zeros((13, 13))
    k[1:12, 1:12] = gaussian_kernel(11, np.eye(2) * sigma**2)
    return ndimage.shift(k, (0.5, 0.5), order=1)


def test_restarts_are_averaged_and_x4_derived(monkeypatch, rng):
    monkeypatch.setattr(kg, "train", fake_train([native_kernel(1.0), native_kernel(1.6)]))
    est = get_estimator("kernelgan", device="cpu", restarts=2, threshold_rank=168, refine="none")
    ticks = []
    out = est.estimate(textured_image(rng), 4, seed=3, progress=ticks.append)
    assert sorted(out.kernels) == [2, 4]
    k2 = out.kernels[2]
    assert k2.provenance["restarts"] == 2 and k2.provenance["seed"] == 3
    assert k2.provenance["restart_agreement_db"] > 0 and k2.provenance["runs_kept"] == [0, 1]
    sigma = k2.describe()["sigma_major"]
    assert 1.0 < sigma < 1.6
    assert out.kernels[4].scale == 4 and sum(ticks) == est.iterations(4)


def test_numerical_fault_retries_then_falls_back_to_bicubic(monkeypatch, rng):
    calls: list = []
    seeds_failing = {5, 5 + kg.FAULT_RESEED}
    monkeypatch.setattr(kg, "train", fake_train([native_kernel(1.2)] * 2, seeds_failing, calls))
    est = get_estimator("kernelgan", device="cpu", restarts=1)
    out = est.estimate(textured_image(rng), 2, seed=5)
    assert calls == [[5], [5 + kg.FAULT_RESEED]]
    assert np.allclose(out.kernels[2].array, bicubic_kernel(2).array)
    assert out.kernels[2].provenance["fallback"] == "kernelgan numerical fault"
    assert len(out.warnings) == 3 and "retrying" in out.warnings[0] and "dropped" in out.warnings[1]
    assert out.warnings[2].startswith(UNTRUSTED) and "failed numerically" in out.warnings[2]
    assert out.kernels[2].provenance["confidence"]["level"] == "low"

    calls.clear()
    monkeypatch.setattr(kg, "train", fake_train([native_kernel(1.2)] * 3, {5}, calls))
    # Without the refinement: on this random texture it would stretch the stand-in kernel to its
    # bound, and the confidence rule (tested on its own) would then fall back.
    est2 = get_estimator("kernelgan", device="cpu", restarts=2, refine="none")
    out = est2.estimate(textured_image(rng), 2, seed=5)
    assert calls == [[5, 5 + kg.RESTART_SEED_STRIDE], [5 + kg.FAULT_RESEED]]
    assert "fallback" not in out.kernels[2].provenance and out.kernels[2].provenance["restarts"] == 2
    assert len(out.warnings) == 1


def test_rejects_tiny_images_and_other_scales(rng):
    est = get_estimator("kernelgan", device="cpu", iterations=2)
    with pytest.raises(InputError, match="at least 32 px"):
        est.estimate(textured_image(rng, 20, 20), 2)
    with pytest.raises(InputError, match="x3"):
        est.estimate(textured_image(rng), 3)


def test_combine_drops_the_run_that_disagrees():
    from blindsr.estimators.kernelgan import combine

    good = [SRKernel.from_array(native_kernel(s), 2) for s in (1.2, 1.25, 1.3)]
    stray = SRKernel.from_array(native_kernel(2.6), 2)
    out = combine(good + [stray], 1, {})
    assert out.provenance["runs_kept"] == [0, 1, 2]
    assert abs(out.describe()["sigma_major"] - good[1].describe()["sigma_major"]) < 0.05


def collapsed_kernel() -> np.ndarray:
    """What a collapsed run leaves: a kernel of positive and negative lobes summing to about 0."""
    k = native_kernel(1.2) - native_kernel(2.0) * 0.98
    return k


def test_run_health_separates_collapsed_runs():
    healthy = kg.run_health(native_kernel(1.2))
    assert healthy["sum"] == pytest.approx(1.0) and healthy["negative_share"] == 0.0
    assert kg.unphysical(healthy) is None
    collapsed = kg.run_health(collapsed_kernel())
    assert abs(collapsed["sum"]) < 0.05 and "sums to" in kg.unphysical(collapsed)
    edge = np.zeros((13, 13))
    edge[0, :] = 1.0 / 13
    assert kg.run_health(edge)["edge_share"] == pytest.approx(1.0) and "edge" in kg.unphysical(kg.run_health(edge))
    negative = native_kernel(1.2) * 1.6 - native_kernel(0.6) * 0.6  # sums to 1, a deep negative dip
    assert kg.run_health(negative)["negative_share"] == pytest.approx(
        -negative[negative < 0].sum() / np.abs(negative).sum())


def test_collapsed_restarts_are_dropped_before_the_vote(monkeypatch, rng):
    """Three of four runs collapsed (the flower photo of the robustness issue): the agreement vote
    alone keeps the three that agree with each other; the health check keeps the healthy one."""
    natives = [collapsed_kernel(), native_kernel(1.2), collapsed_kernel() * 1.01, collapsed_kernel() * 0.99]
    monkeypatch.setattr(kg, "train", fake_train(natives))
    est = get_estimator("kernelgan", device="cpu", restarts=4, threshold_rank=168, refine="none")
    k = est.estimate(textured_image(rng, 96, 96), 2, seed=0).kernels[2]
    runs = k.provenance["diagnostics"]["runs"]
    assert [r["unphysical"] is None for r in runs] == [False, True, False, False]
    assert k.provenance["diagnostics"]["physical_runs"] == 1 and "fallback" not in k.provenance
    assert np.array_equal(k.array, kg.to_handoff(native_kernel(1.2), est.settings, {}).array)
    # The paper preset keeps the authors' vote: nothing is dropped for its health.
    monkeypatch.setattr(kg, "train", fake_train(natives))
    paper = get_estimator("kernelgan", preset="paper", device="cpu", restarts=4, threshold_rank=168)
    assert paper.estimate(textured_image(rng, 96, 96), 2).kernels[2].provenance["diagnostics"]["physical_runs"] == 4


def test_all_restarts_collapsed_trains_again_then_falls_back(monkeypatch, rng):
    calls: list = []
    monkeypatch.setattr(kg, "train", fake_train([collapsed_kernel()] * 4, calls=calls))
    est = get_estimator("kernelgan", device="cpu", restarts=2, refine="none")
    out = est.estimate(textured_image(rng, 96, 96), 2, seed=7)
    assert calls == [[7, 7 + kg.RESTART_SEED_STRIDE],
                     [7 + kg.DEGENERATE_RESEED, 7 + kg.RESTART_SEED_STRIDE + kg.DEGENERATE_RESEED]]
    k = out.kernels[2]
    assert np.allclose(k.array, bicubic_kernel(2).array)
    assert "collapsed" in k.provenance["fallback"] and k.provenance["confidence"]["level"] == "low"
    assert "training a new set" in out.warnings[0]
    assert out.warnings[-1].startswith(UNTRUSTED) and "collapsed" in out.warnings[-1]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["flat", "noise"])
def test_textureless_image_warns_and_falls_back(rng, kind):
    """A uniform grey frame, or one of pure noise, shows no blur: the estimator says so and hands
    over the bicubic kernel instead of whatever KernelGAN made of it (both presets)."""
    image = np.full((96, 128, 3), 0.5)
    if kind == "noise":
        image = np.clip(image + rng.normal(0, 2 / 255, image.shape), 0, 1)
    for preset in ("default", "paper"):
        out = get_estimator("kernelgan", preset=preset, device="cpu", iterations=20, restarts=1).estimate(image, 2)
        k = out.kernels[2]
        assert np.allclose(k.array, bicubic_kernel(2).array)
        assert k.provenance["confidence"]["level"] == "low" and k.provenance["confidence"]["factors"]["texture"] == 0
        assert any(w.startswith(UNTRUSTED) and "no texture" in w for w in out.warnings)


def test_an_image_smaller_than_a_tile_is_judged_on_its_own_size(rng):
    """A flat or noise-only image too small for one tile is still found to show no blur (on one
    tile of its own size), a textured one of that size is not; a group of such images is judged
    the same way."""
    settings = get_estimator("kernelgan", device="cpu").settings
    flat = np.full((40, 48, 3), 0.5)
    noise = np.clip(flat + rng.normal(0, 2 / 255, flat.shape), 0, 1)
    assert kg.SELECT_TILE > 48
    for image in (flat, noise):
        texture = kg.texture_evidence(image, settings)
        assert texture["informative"] == 0 < texture["count"] and "no texture" in kg.texture_reason(texture)
    textured = kg.texture_evidence(textured_image(rng, 40, 48), settings)
    assert textured["informative"] == textured["count"] > 0 and kg.texture_reason(textured) is None
    square = kg.texture_evidence(textured_image(rng, 40, 40), settings)
    assert square == {"informative": 1, "count": 1} and kg.texture_reason(square) is None  # one tile is enough
    pooled, _ = kg.group_texture([flat, noise], settings)
    assert pooled["informative"] == 0 < pooled["count"] and "no texture" in kg.texture_reason(pooled)


@pytest.mark.slow
def test_confidence_of_a_healthy_estimate(monkeypatch, chelsea_hr):
    """A photo with texture everywhere, four healthy agreeing runs: high confidence, no warning."""
    truth = SRKernel(gaussian_kernel(11, np.eye(2) * 1.2 ** 2), 2)
    lr = quantize(degrade(chelsea_hr, truth, 2))
    shifted = np.roll(native_kernel(1.2), 1, axis=1)
    monkeypatch.setattr(kg, "train", fake_train([native_kernel(1.2), native_kernel(1.25), native_kernel(1.15),
                                                 shifted]))
    out = get_estimator("kernelgan", device="cpu", restarts=4).estimate(lr, 2)
    c = out.kernels[2].provenance["confidence"]
    assert c["level"] == "high" and c["score"] > 0.8 and c["physical_runs"] == 4 and not out.warnings
    assert c["tiles"] > 0 and c["in_focus_tiles"] > 0


@pytest.mark.slow
def test_batched_restarts_use_the_cores_without_changing_the_kernel(monkeypatch):
    """Runs trained side by side split over the run dimension: the default preset's kernel is the
    same bit for bit with one intra-op thread or several (so it may use the cores); a single run
    keeps one thread."""
    import torch

    cpu = torch.device("cpu")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert kg.cpu_threads(cpu, 4) == 2 and kg.cpu_threads(cpu, 1) == 1
    monkeypatch.undo()
    assert kg.cpu_threads(cpu, 4) == min(4, torch.get_num_threads())

    from blindsr.estimators.kernelgan.train import train
    from blindsr.runtime import torch_threads

    lr = textured_image(np.random.default_rng(4), 80, 72)
    settings = settings_for("default", {"iterations": 60, "restarts": 3})
    natives = []
    for threads in (1, 3):
        with torch_threads(threads):
            natives.append(train(lr, settings, [0, 1000003, 2000006], cpu).kernels)
    assert natives[0].shape == (3, 13, 13) and np.isfinite(natives[0]).all()
    assert np.array_equal(natives[0], natives[1])


def test_group_estimate_pools_the_images(monkeypatch, rng):
    """One training for the whole group, its crops shared by informative tiles (a blank page lends
    the minimum), one kernel with the group's provenance and no noise record (each image has its
    own); it trains with the group's budget; a group of one is the single-image estimate."""
    calls: list = []
    monkeypatch.setattr(kg, "train", fake_train([native_kernel(1.3)] * 5, calls=calls))
    est = get_estimator("kernelgan", device="cpu", restarts=2, group_restarts=3, refine="none")
    textured, blank = textured_image(rng, 160, 160), np.full((160, 160, 3), 0.5)
    out = est.estimate_group([textured, blank, textured], 2, seed=1)
    (seeds, shares, images), = calls
    assert images == 3 and seeds == [1 + r * kg.RESTART_SEED_STRIDE for r in range(3)]
    assert shares[0] == shares[2] > shares[1] and sum(shares) == pytest.approx(1.0)
    k2 = out.kernels[2]
    assert k2.provenance["group"]["images"] == 3 and "noise" not in k2.provenance
    assert k2.provenance["iterations"] == est.settings.for_group().iterations == 750
    texture = k2.provenance["diagnostics"]["texture"]
    assert texture["count"] == 3 * kg.texture_evidence(textured, est.settings, 32)["count"]
    calls.clear()
    single = est.estimate_group([textured], 2, seed=1)
    assert calls == [[1, 1 + kg.RESTART_SEED_STRIDE]] and "noise" in single.kernels[2].provenance
    # Refined, the group's kernel takes the likelier of KernelGAN's shape and its covariance's
    # Gaussian (``group_shape``); one image keeps KernelGAN's shape.
    monkeypatch.setattr(kg, "train", fake_train([native_kernel(1.3)] * 4))
    refined = get_estimator("kernelgan", device="cpu", restarts=2, refine="affine")
    camera = SRKernel(gaussian_kernel(11, np.eye(2) * 1.3 ** 2), 2)
    photos = [quantize(degrade(textured_image(rng, 320, 320), camera, 2)) for _ in range(2)]
    shape = refined.estimate_group(photos, 2, seed=1).kernels[2].provenance["shape"]
    assert shape["chosen"] in ("kernel", "gaussian") and set(shape["nll"]) == {"kernel", "gaussian"}
    assert "shape" not in refined.estimate(photos[0], 2, seed=1).kernels[2].provenance


def test_group_texture_is_each_image_scored_alone(rng):
    """The group's texture evidence, scored in one call, counts each image's tiles as that image's
    own ``texture_evidence`` with the group's tiles does (an image smaller than a tile lends none
    and gets the minimum share, though alone it is judged on a tile of its own size), and its crop
    shares follow from those counts."""
    settings = get_estimator("kernelgan", device="cpu").settings
    images = [textured_image(rng, 200, 260), np.full((160, 160, 3), 0.5), textured_image(rng, 40, 300),
              textured_image(rng, 180, 180)]
    pooled, shares = kg.group_texture(images, settings)
    most = max(kg.MIN_GROUP_TILES, kg.MAX_SELECT_TILES // len(images))
    alone = [kg.texture_evidence(x, settings, most, kg.SELECT_TILE) for x in images]
    assert alone[2] == {"informative": 0, "count": 0} and alone[1]["informative"] == 0 < alone[1]["count"]
    assert kg.texture_evidence(images[2], settings, most)["informative"] > 0
    assert pooled == {key: sum(a[key] for a in alone) for key in ("informative", "count")}
    counts = np.array([max(a["informative"], 1) for a in alone], dtype=np.float64)
    assert np.array_equal(shares, counts / counts.sum())


def test_group_settings_compress_the_schedules():
    """A group's runs: ``group_iterations`` with the iteration-counted schedules scaled alike
    (1000 -> 500 halves 200 and 750), ``group_restarts`` runs, the ``group_shape`` selection and
    the ``group_g_crop``; unset, a group trains as one image. One image keeps KernelGAN's shape by
    default and trains on 56-px crops; a group, like the paper preset, on the authors' 64."""
    default = settings_for("default", {"group_iterations": 500, "group_restarts": 8})
    group = default.for_group()
    assert (group.iterations, group.restarts, group.schedule_every, group.lr_decay_every) == (500, 8, 100, 375)
    assert (default.shape, group.shape) == ("kernel", "select")
    assert (default.g_crop, group.g_crop, settings_for("paper").g_crop) == (56, 64, 64)
    assert settings_for("default", {"group_g_crop": 56}).for_group().g_crop == 56
    assert dataclasses.replace(group, iterations=1000, restarts=4, schedule_every=200, lr_decay_every=750,
                               shape="kernel", g_crop=56) == default
    shipped = settings_for("default").for_group()  # a group's default: 750 iterations, the shape selected
    assert (shipped.iterations, shipped.restarts, shipped.schedule_every, shipped.lr_decay_every) == (750, 4, 150, 562)
    assert dataclasses.replace(shipped, iterations=1000, schedule_every=200, lr_decay_every=750,
                               shape="kernel", g_crop=56) == settings_for("default")
    as_one = {"group_iterations": 1000, "group_shape": "kernel", "group_g_crop": 56}
    assert settings_for("default", as_one).for_group() == settings_for("default", as_one)
    assert settings_for("paper").for_group() == settings_for("paper")
    with pytest.raises(ValueError, match="group_restarts"):
        settings_for("default", {"group_restarts": 0})
    with pytest.raises(ValueError, match="group_g_crop must be at least 32"):
        settings_for("default", {"group_g_crop": 16})
    with pytest.raises(ValueError, match="shape"):
        settings_for("default", {"shape": "disk"})


@pytest.mark.parametrize("override,needle", [
    ({"iterations": 0}, "iterations must be at least 1"),
    ({"restarts": -1}, "restarts must be at least 1"),
    ({"d_layers": 2}, "d_layers must be at least 3"),
    ({"g_crop": 31}, "g_crop must be at least 32"),
    ({"trim": -1}, "trim must be at least 0"),
    ({"threshold_rank": 169}, "below the kernel's 169 taps"),  # 13 x 13 for (7, 5, 3, 1, 1, 1)
    ({"g_structure": (7, 0, 1)}, "g_structure must be positive"),
    ({"lr": 0.0}, "lr, lr_decay and bicubic_decay must be positive"),
    ({"beta1": 1.0}, "beta1 in [0, 1)"),
    ({"real_noise": -0.1, "sparsity_power": -1.0}, "real_noise, sparsity_power must be at least 0"),
])
def test_settings_out_of_range_fail_in_one_sentence(override, needle):
    """A setting out of range is refused when the settings are made (the CLI's usage error), not
    met later as a tensor-shape error in training."""
    with pytest.raises(ValueError, match=re.escape(needle)):
        settings_for("default", override)
    edges = settings_for("default", {"threshold_rank": 168, "g_crop": 32, "d_layers": 3, "trim": 0})
    assert edges.threshold_rank == 168


@pytest.mark.parametrize("handover", ["bicubic", "unrefined"])
def test_a_refinement_moved_near_its_bound_hands_over_the_rule_s_kernel(monkeypatch, rng, handover):
    """Two agreeing, physical runs on a textured image, far narrower than the image's blur: the
    refinement widens them nearly to its bound, so its move alone makes the confidence low. The
    ``bicubic`` rule hands over the bicubic kernel; ``unrefined`` hands over the runs' combined
    kernel as ``refine=none`` makes it, announced, and SR still narrows it (an estimate)."""
    from blindsr.estimators.confidence import FREE_MOVE, LOW_SCORE, others_trusted
    from blindsr.estimators.likelihood import MAX_LOG_SCALE
    from blindsr.stages import handoff_kernels

    lr = quantize(degrade(textured_image(rng, 320, 320), SRKernel(gaussian_kernel(15, np.eye(2) * 4.0), 2), 2))
    narrow_runs = [native_kernel(0.4)] * 2
    monkeypatch.setattr(kg, "train", fake_train(narrow_runs))
    est = get_estimator("kernelgan", device="cpu", restarts=2, threshold_rank=168, untrusted_refinement=handover)
    out = est.estimate(lr, 2, seed=0)
    k = out.kernels[2]
    confidence = k.provenance["confidence"]
    moved = confidence["refinement_moved"]
    assert moved > 1.0 and confidence["factors"]["refinement"] == pytest.approx(
        (MAX_LOG_SCALE - moved) / (MAX_LOG_SCALE - FREE_MOVE), abs=1e-3)
    assert confidence["score"] < LOW_SCORE and confidence["level"] == "low" and others_trusted(confidence)
    assert out.warnings[-1].startswith(UNTRUSTED) and k.provenance["rejected_estimate"]["sigma_minor"] > 1.2
    monkeypatch.setattr(kg, "train", fake_train(narrow_runs))
    unrefined = get_estimator("kernelgan", device="cpu", restarts=2, threshold_rank=168, refine="none")
    unrefined = unrefined.estimate(lr, 2, seed=0).kernels[2]
    handed = handoff_kernels({2: k}, 0.9)[2]
    if handover == "bicubic":
        assert np.allclose(k.array, bicubic_kernel(2).array) and k.provenance["fallback_kernel"] == "bicubic"
        assert "bicubic kernel instead" in out.warnings[-1] and handed is k
    else:
        assert np.array_equal(k.array, unrefined.array) and k.provenance["fallback_kernel"] == "unrefined"
        assert k.provenance["fallback"].startswith(f"kernelgan unrefined: confidence {confidence['score']:.4f} is below")
        assert "before the refinement instead" in out.warnings[-1] and f"e^{moved:.2f} per axis" in out.warnings[-1]
        assert np.array_equal(handed.array, k.narrowed(0.9).array)


def test_untrusted_refinement_is_checked():
    with pytest.raises(ValueError, match="untrusted_refinement"):
        settings_for("default", {"untrusted_refinement": "paper"})
