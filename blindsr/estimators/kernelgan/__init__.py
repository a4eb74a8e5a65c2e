"""KernelGAN kernel estimation (Bell-Kligler, Shocher, Irani, NeurIPS 2019), as an estimator.

``settings`` holds the hyper-parameters and presets, ``networks`` the generator and
discriminator, ``crops`` the crop sampling, ``train`` one run. This module turns runs into handoff
kernels: soft threshold, re-centring into the project convention, the combination of restarts,
the covariance refit by the marginal likelihood (``blindsr.estimators.likelihood``) and its
optional correction for noise (``noise_corrected``), the analytic x4 kernel, and what to do when training goes numerically wrong (each run retries once
with another seed; with no run left, the bicubic kernel with a warning - never a silent garbage
kernel).
"""
from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
import torch

from blindsr import __version__
from blindsr.degradation import bicubic_kernel
from blindsr.estimators import Estimate, Progress, register_estimator
from blindsr.estimators.compression import estimate_luma_table
from blindsr.estimators.confidence import LOW_SCORE, UNTRUSTED, assess, refinement_alone
from blindsr.estimators.kernelgan.settings import DEFAULT_PRESET, KernelGANSettings, settings_for
from blindsr.estimators.kernelgan.train import ImageTooSmall, NumericalFault, prepare_image, soft_threshold, train
from blindsr.estimators.likelihood import (MAX_SELECT_TILES, MIN_GROUP_TILES, SELECT_TILE, Images, affine_warp,
                                          luma, luma_noise, refine_covariance, tile_evidence)
from blindsr.estimators.noise import estimate_noise
from blindsr.errors import InputError
from blindsr.kernel import SRKernel, crop_or_pad
from blindsr.metrics import kernel_psnr
from blindsr.runtime import FAULT_RESEED, keep_freed_memory, select_device, torch_threads

log = logging.getLogger(__name__)
RESTART_SEED_STRIDE = 1_000_003
DEGENERATE_RESEED = 104_729  # seed offset of the one new set of runs when none stayed physical
# A physical run: native sum within SUM_RANGE, at most these shares of its absolute mass negative
# or within EDGE_WIDTH px of the canvas edge. The bounds are loose on purpose: a trained healthy run
# sums to about 1, a collapsed one to about 0 (tests/estimators/test_kernelgan_estimator.py).
SUM_RANGE = (0.5, 1.5)
MAX_NEGATIVE_SHARE = 0.25
MAX_EDGE_SHARE = 0.25
EDGE_WIDTH = 2
# ``noise_corrected``: from this fitted noise sigma (8-bit units) on, the refinement's widening by
# the image's noise is measured with NOISE_CORRECTION_DRAWS draws at each of NOISE_CORRECTION_LEVELS
# (the refits' noise sigma in multiples of the image's) and taken off, by at most
# e^MAX_NOISE_CORRECTION per axis, where the two levels' slopes agree within a factor of
# NOISE_LINEARITY (docs/BENCHMARKS.md, 'kernel-noise'). The clean tuning images fit up to 1.2 (film
# grain, scanning), noise of sigma 1.5 fits 1.5-1.8.
NOISE_CORRECTION_SIGMA = 1.5
NOISE_CORRECTION_DRAWS = 2
NOISE_CORRECTION_LEVELS = (math.sqrt(2.0), math.sqrt(3.0))
NOISE_LINEARITY = 2.0
NOISE_CORRECTION_SEED = 7919
MAX_NOISE_CORRECTION = 0.5
PIXELS_SWITCHED = "a refit scored other pixels than the refinement"  # ``noise_corrected``'s skip reason
# Too little texture to estimate a blur: fewer informative tiles than this (count, or share).
MIN_TEXTURED_TILES = 2
MIN_TEXTURED_SHARE = 0.1


def run_health(native: np.ndarray) -> dict[str, float]:
    """Physical checks of a native G kernel: its sum (G is pushed towards 1), the share of its
    absolute mass that is negative, and the share within ``EDGE_WIDTH`` px of the canvas edge
    (where the boundary penalty should have kept it near 0)."""
    k = np.asarray(native, dtype=np.float64)
    absolute = float(np.abs(k).sum())
    if not np.isfinite(absolute) or absolute == 0.0:
        return {"sum": 0.0, "negative_share": 1.0, "edge_share": 1.0}
    e = EDGE_WIDTH
    inner = float(np.abs(k[e:-e, e:-e]).sum())
    return {"sum": float(k.sum()), "negative_share": float(-k[k < 0].sum() / absolute),
            "edge_share": (absolute - inner) / absolute}


def unphysical(health: dict[str, float]) -> str | None:
    """Why a run's kernel cannot be a blur kernel, or None. Runs collapse on some photos (a
    defocused background, a sky): G's kernel then sums to about 0, and averaging it in, or
    refining it, ruins the estimate."""
    if not SUM_RANGE[0] <= health["sum"] <= SUM_RANGE[1]:
        return f"kernel sums to {health['sum']:.3f}"
    if health["negative_share"] > MAX_NEGATIVE_SHARE:
        return f"{health['negative_share']:.0%} of its mass is negative"
    if health["edge_share"] > MAX_EDGE_SHARE:
        return f"{health['edge_share']:.0%} of its mass lies at the canvas edge"
    return None


def to_handoff(native: np.ndarray, settings: KernelGANSettings, provenance: dict[str, Any]) -> SRKernel:
    """Native G kernel -> soft-thresholded, re-centred x2 handoff kernel."""
    k = soft_threshold(native, settings.threshold_rank, settings.threshold_factor)
    return SRKernel.from_array(k, 2, provenance=provenance)


def agreement(kernels: list[SRKernel]) -> np.ndarray:
    """Pairwise kernel PSNR (dB) between runs; the diagonal is NaN."""
    n = len(kernels)
    table = np.full((n, n), np.nan)
    for i in range(n):
        for j in range(i + 1, n):
            table[i, j] = table[j, i] = kernel_psnr(kernels[i], kernels[j])
    return table


def combine(kernels: list[SRKernel], trim: int, provenance: dict[str, Any]) -> SRKernel:
    """Average of centred kernels on a common canvas, re-centred, after dropping the ``trim``
    runs that agree least with the others (kept: at least two). Averaging independent runs
    cancels much of KernelGAN's run-to-run scatter; trimming drops the occasional run that went
    astray (both measured in docs/BENCHMARKS.md)."""
    if len(kernels) == 1:
        return kernels[0].with_provenance(**provenance)
    table = agreement(kernels)
    drop = min(trim, len(kernels) - 2)
    keep = sorted(np.argsort(np.nanmean(table, axis=1))[drop:])
    size = max(k.size for k in kernels)
    mean = sum(crop_or_pad(np.asarray(kernels[i].array), size) for i in keep) / len(keep)
    info = {**provenance, "restart_agreement_db": float(np.nanmean(table)), "runs_kept": [int(i) for i in keep]}
    return SRKernel.from_array(mean, 2, order=1, provenance=info)


def refine(kernel: SRKernel, rgb: Images, settings: KernelGANSettings, fit_noise: bool = True,
           seed: int = 0) -> SRKernel:
    """The x2 kernel's covariance refitted on the image KernelGAN trained on (same shaved crop),
    or on a group's images together; one image's then narrowed by ``noise_corrected`` when the
    settings ask for it (``seed`` draws its noise)."""
    if not isinstance(rgb, np.ndarray):
        return refine_covariance(kernel, [prepare_image(x, settings) for x in rgb], 2, fit_noise=fit_noise,
                                 shape=settings.shape)
    refined = refine_covariance(kernel, prepare_image(rgb, settings), 2, fit_noise=fit_noise, shape=settings.shape)
    return noise_corrected(refined, rgb, settings, seed, fit_noise) if settings.noise_correction else refined


def noise_corrected(refined: SRKernel, rgb: np.ndarray, settings: KernelGANSettings, seed: int = 0,
                    fit_noise: bool = True) -> SRKernel:
    """``refined`` narrowed by the widening that the image's noise alone causes in the refinement.

    Noise hides the top of the band, where the sharp parts of a scene show the kernel; what is
    left, mid frequencies, is also softened by the scene's own soft parts, which the likelihood's
    power-law scene cannot tell from kernel blur. So the refined kernel widens with the noise
    (docs/BENCHMARKS.md, 'kernel-noise': on the tuning images its major axis is 1.03, 1.07 and
    1.12 times the true one at sigma 1.5, 3 and 6 against 0.99 on the clean image; on a synthetic
    scene with the prior's own spectrum it does not widen). The widening is measured on the image
    itself: ``refined`` is refitted on the image with white noise of its own fitted sigma added per
    channel (``NOISE_CORRECTION_DRAWS`` draws, covariances averaged), which takes sigma to
    sqrt(2) sigma, and compared with a control refit on the image as it is, from the same start;
    with the widening in proportion to sigma, the fit at sigma 0 lies 1 / (sqrt(2) - 1) times that
    step below the fit at sigma (Richardson's extrapolation). That proportion is checked with two
    more draws at sqrt(3) sigma: an axis is narrowed only where the slope from sqrt(2) to sqrt(3)
    sigma is positive and within a factor of ``NOISE_LINEARITY`` of the first (on a held-out photo
    whose fit jumped between two noise levels, the extrapolation narrowed the kernel to 0.55 of its
    width, 'kernel-noise-report'). When a refit scores other pixels
    than ``refined``'s own fit did (the whole image where it scored the in-focus tiles, or the
    reverse), nothing is corrected: the step would be that switch's, not the noise's (a clean
    held-out photo was ruined that way before the control existed, 'noise-correction'). Each
    principal axis of ``refined`` is narrowed by it, never widened, by at most
    e^``MAX_NOISE_CORRECTION``. Only when the fitted sigma (8-bit units, over the rounding) is at
    least ``NOISE_CORRECTION_SIGMA``: below it the widening is within the fit's own scatter and
    a clean image's kernel stays as it was. Nor on an image whose pixels show JPEG's quantisation
    (``compression.estimate_luma_table``): what its noise fit reads as noise is not white, and on
    the hard set's phone-like tuning images (noise, then JPEG) the white-noise probe made the
    kernels worse (docs/BENCHMARKS.md, 'noise-correction'). ``rgb`` is the image as KernelGAN was
    given it (its 8x8 grid intact); the refits score its prepared crop, as the refinement did.
    Recorded in the provenance under ``noise_correction``."""
    if "refinement" not in refined.provenance:
        return refined
    start = time.perf_counter()
    jpeg = estimate_luma_table(rgb)
    if jpeg is not None:
        return refined.with_provenance(noise_correction={
            "applied": False, "skipped": f"JPEG-compressed (quality {jpeg['quality']}, read from the pixels)"})
    prepared = prepare_image(rgb, settings)
    noise = estimate_noise(prepared, refined.array, 2)
    record: dict[str, Any] = {"sigma": noise["sigma"], "threshold": NOISE_CORRECTION_SIGMA, "applied": False}
    if noise["sigma"] < NOISE_CORRECTION_SIGMA:
        return refined.with_provenance(noise_correction=record)
    # Each channel's own sigma (a gray image's one broadcasts); a channel the fit did not score
    # (alpha) gets the overall sigma.
    channels = prepared.shape[2] if prepared.ndim == 3 else 1
    per_channel = noise["per_channel"] if len(noise["per_channel"]) == channels else [noise["sigma"]] * channels
    sigma = np.asarray(per_channel) / 255.0
    # Every refit starts from the refined kernel. The refinement is not a fixed point from its own
    # result (its tile evidence is scored against the kernel it starts from), so the widening is
    # measured against a control: the same refit of the image without added noise.
    start_kernel = SRKernel(refined.array, refined.scale)
    control = refine_covariance(start_kernel, prepared, 2, fit_noise=fit_noise, shape=settings.shape)
    refits = []  # by level, then draw
    for level, factor in enumerate(NOISE_CORRECTION_LEVELS):
        for draw in range(NOISE_CORRECTION_DRAWS):
            # The first level's draws are seeded as they were before there was a second level.
            rng = np.random.default_rng([NOISE_CORRECTION_SEED, seed, draw] + [level] * (level > 0))
            noisier = prepared + rng.normal(size=prepared.shape) * sigma * math.sqrt(factor ** 2 - 1.0)
            refits.append(refine_covariance(start_kernel, noisier, 2, fit_noise=fit_noise, shape=settings.shape))
    scored = [scored_pixels(k) for k in (refined, control, *refits)]
    record.update(draws=NOISE_CORRECTION_DRAWS, levels=[round(v, 4) for v in NOISE_CORRECTION_LEVELS],
                  scored={"refined": scored[0], "control": scored[1], "draws": scored[2:]})
    if any(whole_image(s) != whole_image(scored[0]) for s in scored[1:]):
        # The refits read other pixels than the fit being corrected (the whole image against its
        # in-focus tiles): what they measure is not that fit's widening by noise.
        record.update(skipped=PIXELS_SWITCHED,
                      seconds=round(time.perf_counter() - start, 3))
        return refined.with_provenance(noise_correction=record)
    axes = np.linalg.eigh(refined.covariance())[1]  # the refined kernel's principal axes
    along = np.array([np.einsum("ia,ij,ja->a", axes, k.covariance(), axes) for k in (control, *refits)])
    # Log-scale each axis took from sigma to each level (draws averaged), and the widening's slope
    # per unit of sigma before the first level and between the two.
    steps = 0.5 * np.log(along[1:].reshape(len(NOISE_CORRECTION_LEVELS), NOISE_CORRECTION_DRAWS, 2).mean(axis=1)
                         / along[0])
    levels = np.array((1.0, *NOISE_CORRECTION_LEVELS))
    slopes = np.diff(np.vstack([np.zeros(2), steps]), axis=0) / np.diff(levels)[:, None]
    # Richardson's extrapolation takes the widening as proportional to sigma: only where both
    # slopes are positive and agree. A widening that jumps at some noise level (the fit switching
    # between two readings of the scene) would be extrapolated far past it.
    linear = (slopes.min(axis=0) > 0) & (slopes.max(axis=0) <= NOISE_LINEARITY * slopes.min(axis=0))
    log_scales = np.where(linear, np.clip(-slopes[0], -MAX_NOISE_CORRECTION, 0.0), 0.0)
    record.update(widening_log_scales=[[round(float(v), 4) for v in level] for level in steps],
                  linear=[bool(v) for v in linear], log_scales=[round(float(v), 4) for v in log_scales])
    if not np.any(log_scales < 0):
        record["seconds"] = round(time.perf_counter() - start, 3)
        return refined.with_provenance(noise_correction=record)
    angle = math.atan2(axes[1, 0], axes[0, 0])  # the first principal axis, in (row, column) coordinates
    narrowed = affine_warp(refined.array, (float(log_scales[0]), float(log_scales[1]), angle), refined.size)
    corrected = SRKernel.from_array(narrowed, refined.scale, order=1)
    record.update(applied=True, seconds=round(time.perf_counter() - start, 3))
    return corrected.with_provenance(**refined.provenance, noise_correction=record)


def scored_pixels(kernel: SRKernel) -> str | None:
    """What the refinement of ``kernel`` scored (``likelihood.refine_covariance``), if recorded."""
    return kernel.provenance.get("refinement", {}).get("scored")


def whole_image(scored: str | None) -> bool:
    """Whether a refinement that scored ``scored`` read the whole image (else its in-focus tiles)."""
    return scored == "whole image"


def with_fitted_noise(kernel: SRKernel, rgb: np.ndarray, settings: KernelGANSettings) -> SRKernel:
    """``kernel`` with the LR noise fitted under it on the image KernelGAN trained on, as one
    image's estimate hands it over (``sr.noise=auto`` reads it)."""
    return kernel.with_provenance(noise=estimate_noise(prepare_image(rgb, settings), kernel.array, 2))


def texture_evidence(rgb: np.ndarray, settings: KernelGANSettings, most: int = MAX_SELECT_TILES,
                     size: int | None = None) -> dict[str, int]:
    """How many small tiles of the image (at most ``most``) say anything about a blur's width,
    scored against the bicubic kernel (``TileEvidence.informative``); a nearly uniform or
    noise-only tile does not. ``size``: the tiles' side; by default ``SELECT_TILE``, or the
    image's own (even) side when it is smaller, so that a small image is judged too: a flat or
    noise-only one says nothing about a width at that size either, a textured one does (tested)."""
    return gray_texture(luma(prepare_image(rgb, settings)), luma_noise(rgb), most, size)


def gray_texture(gray: np.ndarray, noise: float, most: int, size: int | None = None) -> dict[str, int]:
    """``texture_evidence`` of a prepared luma image whose noise floor is ``noise``."""
    size = size or min(SELECT_TILE, min(gray.shape) // 2 * 2)
    evidence = tile_evidence(gray, bicubic_kernel(2).array, 2, noise, size=size, most=most)
    if evidence is None:
        return {"informative": 0, "count": 0}
    return {"informative": int(evidence.informative.sum()), "count": len(evidence.best)}


def group_texture(images: list[np.ndarray], settings: KernelGANSettings) -> tuple[dict[str, int], np.ndarray]:
    """A group's pooled texture evidence, and each image's share of the training crops: in
    proportion to its informative tiles (at least one each), so that a poor witness - a sky, a
    defocused background, a blank page - lends the group little."""
    most = max(MIN_GROUP_TILES, MAX_SELECT_TILES // len(images))  # one image's budget, shared
    grays = [luma(prepare_image(x, settings)) for x in images]
    holding = [i for i, g in enumerate(grays) if min(g.shape) >= SELECT_TILE]
    noise = [luma_noise(x) for x in images]
    if len(holding) > 1 and len(set(noise)) == 1:
        # One call scores every image's tiles as its own call would (tested), side by side.
        evidence = tile_evidence([grays[i] for i in holding], bicubic_kernel(2).array, 2, noise[0],
                                 most=most * len(holding))
        each = [{"informative": 0, "count": 0} for _ in images]
        for j, i in enumerate(holding):
            mine = evidence.sources == j
            each[i] = {"informative": int(evidence.informative[mine].sum()), "count": int(mine.sum())}
    else:  # an image smaller than a tile lends none, unless no image of the group holds one
        each = [gray_texture(g, n, most, SELECT_TILE if holding else None) for g, n in zip(grays, noise)]
    shares = np.array([max(t["informative"], 1) for t in each], dtype=np.float64)
    pooled = {"informative": sum(t["informative"] for t in each), "count": sum(t["count"] for t in each)}
    return pooled, shares / shares.sum()


def texture_reason(texture: dict[str, int]) -> str | None:
    """Why the image (or group) cannot show its blur, or None. An image with fewer tiles than
    ``MIN_TEXTURED_TILES`` needs all of them to show one."""
    informative, count = texture["informative"], texture["count"]
    if not count or informative >= max(min(MIN_TEXTURED_TILES, count), MIN_TEXTURED_SHARE * count):
        return None
    return f"the image has almost no texture ({informative} of {count} tiles show any blur)"


def cpu_threads(device: torch.device, runs: int) -> int:
    """CPU threads for training ``runs`` side by side: one per run, within the process's budget
    (``torch.get_num_threads()``: all cores, or what an executor gave a worker). The runs go to
    that many forked processes where ``train.split_runs`` allows (four or six runs), else to one
    process's intra-op threads; the batched runs' operations split over the run dimension, so the
    kernels are the same bit for bit whatever the count and the split (tested). A single run (the
    paper preset) keeps one thread - its tensors are too small for threads to pay, and its result
    would depend on the count."""
    if device.type != "cpu":
        return torch.get_num_threads()
    return max(1, min(runs, torch.get_num_threads())) if runs > 1 else 1


@register_estimator("kernelgan")
class KernelGANEstimator:
    """``restarts`` independent runs (seeds seed, seed + 1000003, ...) trained side by side in
    one batched computation, combined into one kernel. CPU threads: see ``cpu_threads``."""

    Options = KernelGANSettings  # every field can be overridden: ``estimator.<field>=...``
    default_preset = DEFAULT_PRESET
    learned = True
    # Changes to the estimates that no setting shows (``config.resolved_settings``): 2, an image
    # smaller than one texture tile is judged on tiles of its own size (revision 6698251).
    results_version = 2

    def __init__(self, preset: str = DEFAULT_PRESET, device: str = "auto", **overrides: Any) -> None:
        self.settings = self.resolve(preset, **overrides)
        self.preset = preset
        self.device = select_device(device)
        if self.device.type == "cpu":
            keep_freed_memory()

    @staticmethod
    def resolve(preset: str = DEFAULT_PRESET, **overrides: Any) -> KernelGANSettings:
        """The settings a preset and overrides come to (what runs, and what cache keys hash)."""
        return settings_for(preset, overrides)

    def iterations(self, scale: int) -> int:
        return self.settings.iterations

    def group_iterations(self, scale: int) -> int:
        """Units of work ``estimate_group`` reports (a group trains with its own budget)."""
        return self.settings.for_group().iterations

    def check(self, shape: tuple[int, int]) -> None:
        try:
            prepare_image(np.zeros((*shape, 3)), self.settings)
        except ImageTooSmall as exc:
            raise InputError(str(exc)) from None

    def estimate(self, rgb: np.ndarray, scale: int, *, seed: int = 0,
                 progress: Progress | None = None) -> Estimate:
        return self._estimate(rgb, scale, seed, progress)

    def estimate_group(self, images: list[np.ndarray], scale: int, *, seed: int = 0,
                       progress: Progress | None = None) -> Estimate:
        """One kernel from a group of images of one camera, the evidence pooled: KernelGAN's
        crops are drawn across the images (``group_texture`` shares) and the refinement's
        likelihood sums over every image's tiles. It trains with the group's budget
        (``KernelGANSettings.for_group``; by default one image's). No noise is
        recorded: each image has its own (``blindsr.estimators.noise``)."""
        if len(images) == 1:
            return self._estimate(images[0], scale, seed, progress)
        return self._estimate(list(images), scale, seed, progress)

    def _estimate(self, rgb: Images, scale: int, seed: int, progress: Progress | None) -> Estimate:
        if scale not in (2, 4):
            raise InputError(f"KernelGAN estimates x2 and x4 kernels, not x{scale}")
        start = time.perf_counter()
        warnings: list[str] = []
        single = isinstance(rgb, np.ndarray)
        settings = self.settings if single else self.settings.for_group()
        seeds = [seed + r * RESTART_SEED_STRIDE for r in range(settings.restarts)]
        try:
            texture, shares = (texture_evidence(rgb, settings), None) if single else group_texture(rgb, settings)
            with torch_threads(cpu_threads(self.device, len(seeds))):
                natives, runs_info = self._train_with_retry(rgb, settings, seeds, progress, warnings, shares)
                guarded = settings.drop_collapsed
                textureless = texture_reason(texture)
                if guarded and natives and not textureless and all(i["unphysical"] for i in runs_info):
                    warnings.append("every KernelGAN run collapsed to a non-physical kernel; "
                                    "training a new set of runs")
                    log.warning(warnings[-1])
                    natives, runs_info = self._train_with_retry(
                        rgb, settings, [s + DEGENERATE_RESEED for s in seeds], None, warnings, shares)
        except ImageTooSmall as exc:
            raise InputError(str(exc)) from None
        physical = [n for n, i in zip(natives, runs_info) if not (guarded and i["unphysical"])]
        runs = [to_handoff(k, settings, {}) for k in physical]
        reasons = [textureless] if textureless else []
        if not natives:
            reasons.append("every KernelGAN run failed numerically")
        elif not runs:
            reasons.append("every KernelGAN run collapsed to a non-physical kernel")
        provenance = {"estimator": "kernelgan", "preset": self.preset, "version": __version__, "seed": seed,
                      "iterations": settings.iterations, "restarts": len(natives), "device": str(self.device),
                      "diagnostics": {"runs": runs_info, "physical_runs": len(runs), "texture": texture}}
        if not single:
            provenance["group"] = {"images": len(rgb), "crop_shares": [round(float(v), 4) for v in shares]}
        unrefined = k2 = combine(runs, settings.trim, provenance) if runs else None
        if k2 is not None and settings.refine == "affine":
            k2 = refine(k2, rgb, settings, seed=seed)
        if k2 is not None:
            k2 = k2.with_provenance(seconds=round(time.perf_counter() - start, 3))
        confidence = assess(k2.provenance if k2 is not None else provenance, reasons)
        if confidence["level"] == "low":
            why = "; ".join(reasons) or f"confidence {confidence['score']:.4f} is below {LOW_SCORE}"
            rejected = None if k2 is None else k2.describe()
            if settings.untrusted_refinement == "unrefined" and refinement_alone(confidence):
                why += f": the refinement moved it by e^{confidence['refinement_moved']:.2f} per axis"
                warnings.append(f"{UNTRUSTED} ({why}): using KernelGAN's estimate before the refinement instead")
                k2 = unrefined.with_provenance(fallback=f"kernelgan unrefined: {why}", fallback_kernel="unrefined",
                                               rejected_estimate=rejected, warnings=list(warnings),
                                               seconds=round(time.perf_counter() - start, 3))
            else:
                warnings.append(f"{UNTRUSTED} ({why}): using the bicubic kernel instead")
                fallback = "kernelgan numerical fault" if not natives else f"kernelgan: {why}"
                k2 = bicubic_kernel(2).with_provenance(fallback=fallback, fallback_kernel="bicubic",
                                                       rejected_estimate=rejected,
                                                       diagnostics=provenance["diagnostics"], warnings=list(warnings))
        k2 = k2.with_provenance(confidence=confidence)
        if single:
            k2 = with_fitted_noise(k2, rgb, settings)
        kernels = {2: k2}
        if scale == 4:
            kernels[4] = k2.derive_x4()
        return Estimate(kernels, time.perf_counter() - start,
                        diagnostics=k2.provenance.get("diagnostics", {}), warnings=warnings)

    def _train_with_retry(self, rgb: Images, settings: KernelGANSettings, seeds: list[int], progress: Progress | None,
                          warnings: list[str], shares: np.ndarray | None = None) -> tuple[list[np.ndarray], list[dict]]:
        """Native kernels of the runs that stayed finite; runs that failed are retried once with
        another seed, then dropped."""
        natives, info = [], []
        for attempt in range(2):
            result = train(rgb, settings, seeds, self.device, progress, shares=shares,
                           processes=torch.get_num_threads())
            failed = []
            for r, seed in enumerate(seeds):
                kernel_ok = bool(result.finite[r])
                if kernel_ok:
                    try:
                        soft_threshold(result.kernels[r], settings.threshold_rank, settings.threshold_factor)
                    except NumericalFault:
                        kernel_ok = False
                if kernel_ok:
                    natives.append(result.kernels[r])
                    health = run_health(result.kernels[r])
                    info.append({**result.diagnostics[r], "health": health, "unphysical": unphysical(health)})
                else:
                    failed.append(seed)
                    warnings.append(f"KernelGAN run with seed {seed} failed numerically "
                                    f"(iteration {result.diagnostics[r]['failed_at_iteration']}); "
                                    + ("retrying with another seed" if attempt == 0 else "dropped"))
                    log.warning(warnings[-1])
            if not failed:
                break
            seeds = [s + FAULT_RESEED for s in failed]
        return natives, info
