"""Scoring and refining a kernel by the marginal likelihood of the LR image alone.

Model. The HR image is a stationary Gaussian field with the power spectrum ``c / |w|^2`` of
natural images (``c`` unknown); the LR image is that field correlated with the kernel ``k``,
sampled every ``s``-th pixel, plus white noise of unknown variance, at least that of 8-bit
rounding (fitting it scored better than fixing it: docs/BENCHMARKS.md). Then the LR's DFT coefficients
are independent zero-mean Gaussians (up to the borders, removed by the periodic + smooth
decomposition) with variance

    S(u) = c * mean over the s*s aliases a of |K(u_a)|^2 P(u_a) + noise,

where ``u_a`` runs over the HR frequencies that fold onto LR frequency ``u``. The kernel's negative
log-likelihood, ``mean(|Y|^2 / S + log S)`` with ``c`` and the noise profiled out, needs only the LR image.
Blur removes high frequencies and the sampling folds what is left back onto low ones; how much
folds back pins the kernel's *width*, which KernelGAN's adversarial loss barely sees (its
estimates drift to a middle width whatever the true one: docs/BENCHMARKS.md). Integrating the
image out rather than estimating it is what makes the kernel estimate sound (Levin, Weiss,
Durand and Freeman, "Efficient marginal likelihood optimization in blind deconvolution", 2011).

Tiles. A photo is rarely one stationary in-focus scene: a defocused background, a sky or a
smooth wall reads as kernel blur. ``tile_evidence`` scores small tiles one by one, each with its
own contrast and noise (``profile_tiles``), against isotropic stretches of the kernel: a flat tile
prefers no width, a defocused one a wider width than the in-focus ones, and defocus never makes a
region look sharper, so the sharp end of the well-measured tiles is the camera's (``sharp``).
A plain photo's content also varies in softness from tile to tile, by less: only tiles that say
nothing (flat) or that are clearly wider (``out_of_focus``) are evidence of a defocused or flat
region, and without such evidence the whole image is scored.

Refinement. ``refine_covariance`` keeps a kernel's shape and fits an affine map of its
coordinates, k'(x) proportional to k(c + A^-1 (x - c)) with A = R(theta) diag(e^a, e^b) R(theta)^T,
by Nelder-Mead on the three parameters. The power spectrum is blind to a kernel's phase
(k and its mirror image score the same), so the shape, and any asymmetry, stays the estimator's.
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize

from blindsr.degradation import bicubic_kernel, gaussian_kernel
from blindsr.kernel import SRKernel, crop_or_pad, support_size, warp
from blindsr.runtime import forked_map

LUMA = np.array([0.299, 0.587, 0.114])
TILE = 256  # LR px; spectra of up to MAX_TILES tiles are averaged (Welch)
MAX_TILES = 16
SPECTRUM_EXPONENT = 2.0
# A fit narrower than NARROW_VARIANCE (HR px^2, the mean of its principal variances) is redone with
# the scene's own softness in the prior, a Gaussian blur of variance SCENE_BLUR HR px^2
# (``refine_covariance``); both chosen on the tuning images (docs/BENCHMARKS.md, 'robust').
NARROW_VARIANCE = 1.4
SCENE_BLUR = 0.15
SHAPES = ("kernel", "select", "gaussian_if_narrow")  # refine_covariance's ``shape``
ROUNDING_NOISE = (1.0 / 255.0) ** 2 / 12.0  # variance of 8-bit rounding, on [0, 1]
MAX_LOG_SCALE = 1.2  # the affine map stretches each axis by at most e^1.2 = 3.3x either way
SELECT_TILE = 64  # LR px: tiles scored one by one, to find the in-focus, textured part of a photo
MAX_SELECT_TILES = 96
# Tiles scored side by side in two processes when the CPU budget has two threads or more: at
# least this many (a fork costs about what a few tiles do).
MIN_SPLIT_TILES = 16
MIN_GROUP_TILES = 4  # a group's images share MAX_SELECT_TILES, but each lends at least this many
TILE_STRIDE = 0.5  # of the tile size: tiles overlap by half
WIDTH_GRID = np.linspace(-MAX_LOG_SCALE, MAX_LOG_SCALE, 13)  # isotropic log-scales tried per tile
PROFILE_STEPS = 16  # Newton steps of a tile's (contrast, noise) fit; half when warm-started
MAX_TILE_ERROR = 0.15  # a tile whose best width is less certain than this says nothing about it
SHARP_QUANTILE = 0.25  # the sharp end of the informative tiles (information-weighted quantile)
SHARP_MARGIN = 0.25  # tiles within this log-scale of it count as in focus
WHOLE_IMAGE_SHARE = 0.8  # in focus on this share of the tiles: the whole image is scored
# Evidence of a defocused or flat region: tiles that say nothing about the width, or whose best
# width exceeds the sharp reference by more than OUT_OF_FOCUS_MARGIN (e^0.4 = 1.5x); fewer than
# MIN_OUT_OF_FOCUS such tiles and the whole image is scored, however the in-focus share came out
# (chosen on the tuning images: docs/BENCHMARKS.md, 'robust-focus', where margins 0.4 and 0.5 are
# within 0.01 dB; 0.4 keeps the in-focus fit of the demo photo, whose background is only softly
# defocused: tests/estimators/test_likelihood.py, the narrow-kernel photo test). On the one-camera
# tuning sets ('robust-focus-camera') it moves two noisy images (sigma 5) to the whole-image fit,
# both worse; there too the rules studied differ by a fraction of a dB of the mean and margin 0.5
# scores a little higher, which the demo photo's fit rules out, so the rule stays as chosen.
OUT_OF_FOCUS_MARGIN = 0.4
MIN_OUT_OF_FOCUS = 2
MAX_TRUSTED_LOG_SCALE = 0.8  # a whole-image fit stretching an axis further is redone on the in-focus tiles


Images = np.ndarray | list[np.ndarray]  # one image, or a group of images of one camera


@dataclass(frozen=True)
class FocusRule:
    """When the refinement scores only the in-focus tiles (``scores_in_focus_tiles``): at least
    ``minimum`` tiles flat or wider than the sharp reference by more than ``margin``, besides an
    in-focus share below ``WHOLE_IMAGE_SHARE``. ``FocusRule(math.inf, 0)`` asks for the share
    alone (the rule before 'robust-focus'); studies pass others (``benchmarks/robust.py``)."""

    margin: float = OUT_OF_FOCUS_MARGIN
    minimum: int = MIN_OUT_OF_FOCUS


def first(rgb: Images) -> np.ndarray:
    """The image, or a group's first (the groups' images share their colour layout)."""
    return rgb if isinstance(rgb, np.ndarray) else rgb[0]


def luma(rgb: np.ndarray) -> np.ndarray:
    """The luma plane the likelihood is scored on (a gray image as it is)."""
    gray = np.asarray(rgb, dtype=np.float64)
    if gray.ndim == 3:
        gray = gray[..., :3] @ LUMA if gray.shape[2] >= 3 else gray[..., 0]
    return gray


def luma_noise(rgb: np.ndarray, noise: float = ROUNDING_NOISE) -> float:
    """The per-channel noise variance ``noise`` as seen in luma (independent channels)."""
    return noise * float(np.sum(LUMA ** 2)) if np.ndim(rgb) == 3 else noise


def periodic_component(u: np.ndarray) -> np.ndarray:
    """The periodic part of Moisan's periodic + smooth decomposition (2011): the image minus the
    smooth field that carries its border discontinuities, so the DFT sees no wrap-around edges."""
    rows, cols = u.shape
    v = np.zeros_like(u)
    v[0, :] += u[-1, :] - u[0, :]
    v[-1, :] += u[0, :] - u[-1, :]
    v[:, 0] += u[:, -1] - u[:, 0]
    v[:, -1] += u[:, 0] - u[:, -1]
    q = np.arange(rows)[:, None]
    r = np.arange(cols)[None, :]
    denominator = 2 * np.cos(2 * np.pi * q / rows) + 2 * np.cos(2 * np.pi * r / cols) - 4
    denominator[0, 0] = 1.0
    smooth = np.fft.fft2(v) / denominator
    smooth[0, 0] = 0.0
    return u - np.real(np.fft.ifft2(smooth))


def tiles(gray: np.ndarray, size: int = TILE, most: int = MAX_TILES,
          shape: tuple[int, int] | None = None) -> list[np.ndarray]:
    """Non-overlapping ``size`` x ``size`` tiles (the whole image when it is smaller; ``shape``
    fixes the tile's (rows, cols) instead), at most ``most`` of them, spread evenly over the image."""
    rows, cols = gray.shape
    th, tw = shape or (min(size, rows), min(size, cols))
    corners = [(i, j) for i in range(0, rows - th + 1, th) for j in range(0, cols - tw + 1, tw)]
    pick = np.unique(np.linspace(0, len(corners) - 1, min(most, len(corners))).round().astype(int))
    return [gray[i:i + th, j:j + tw] for i, j in (corners[p] for p in pick)]


def tile_power(tile: np.ndarray) -> np.ndarray:
    """|DFT|^2 / pixels of a tile's periodic component, its mean removed."""
    p = periodic_component(tile)
    return np.abs(np.fft.fft2(p - p.mean())) ** 2 / p.size


def frequency_prior(rows: int, cols: int, scale: int, exponent: float = SPECTRUM_EXPONENT,
                    scene_blur: float = 0.0) -> np.ndarray:
    """The natural-image spectrum 1/|w|^exponent on the HR frequency grid of a rows x cols LR tile
    (infinite |w| at DC, so the prior is 0 there), times exp(-scene_blur |w|^2): the power
    transfer of a Gaussian blur of variance ``scene_blur`` HR px^2, the scene's own softness."""
    fy = np.fft.fftfreq(rows * scale)[:, None] * 2 * np.pi
    fx = np.fft.fftfreq(cols * scale)[None, :] * 2 * np.pi
    radius2 = fy ** 2 + fx ** 2
    softness = np.exp(-scene_blur * radius2)
    radius2[0, 0] = np.inf
    return radius2 ** (-exponent / 2) * softness


def dc_mask(rows: int, cols: int) -> np.ndarray:
    """The scored LR frequencies: all but DC (each tile's mean is removed)."""
    mask = np.ones((rows, cols), bool)
    mask[0, 0] = False
    return mask


@dataclass
class LRLikelihood:
    """Negative log-likelihood of kernels for one LR image at one scale."""

    power: np.ndarray  # mean |DFT|^2 / pixels of the tiles, DC excluded via ``mask``
    prior: np.ndarray  # P on the HR frequency grid of one tile
    scale: int
    noise: float  # the noise variance's lower bound
    mask: np.ndarray
    fit_noise: bool = True  # False: the noise variance is exactly ``noise``
    observed: np.ndarray = field(init=False)  # ``power`` at the scored frequencies

    def __post_init__(self) -> None:
        self.observed = self.power[self.mask]

    @classmethod
    def from_image(cls, rgb: Images, scale: int, exponent: float = SPECTRUM_EXPONENT,
                   noise: float = ROUNDING_NOISE, fit_noise: bool = True, scene_blur: float = 0.0) -> "LRLikelihood":
        """From one image's tiles, or the tiles of a group of images of one camera (a list; the
        tile is then the largest that fits every image, and the group shares one image's budget
        of tiles)."""
        if isinstance(rgb, np.ndarray):
            parts = tiles(luma(rgb))
        else:
            grays = [luma(x) for x in rgb]
            shape = (min(TILE, *(g.shape[0] for g in grays)), min(TILE, *(g.shape[1] for g in grays)))
            parts = [t for g in grays for t in tiles(g, most=max(1, MAX_TILES // len(grays)), shape=shape)]
        power = sum(tile_power(t) for t in parts) / len(parts)
        return cls.from_power(power, scale, luma_noise(first(rgb), noise), exponent, fit_noise, scene_blur)

    @classmethod
    def from_power(cls, power: np.ndarray, scale: int, noise: float, exponent: float = SPECTRUM_EXPONENT,
                   fit_noise: bool = True, scene_blur: float = 0.0) -> "LRLikelihood":
        """From a mean tile power spectrum (|DFT|^2 / pixels) and the luma noise floor."""
        rows, cols = power.shape
        return cls(power, frequency_prior(rows, cols, scale, exponent, scene_blur), scale, noise,
                   dc_mask(rows, cols), fit_noise)

    def model(self, kernel: np.ndarray) -> np.ndarray:
        """Alias-summed ``mean_a |K(u_a)|^2 P(u_a)`` on the LR frequency grid (``c`` = 1)."""
        s = self.scale
        rows, cols = self.power.shape
        transfer = np.abs(np.fft.fft2(kernel, (rows * s, cols * s))) ** 2
        return (transfer * self.prior).reshape(s, rows, s, cols).sum(axis=(0, 2)) / s ** 2

    def __call__(self, kernel: np.ndarray) -> float:
        """Mean negative log-likelihood per LR frequency, ``c`` and the noise variance (bounded
        below by ``self.noise``) profiled out."""
        base = self.model(np.asarray(kernel, dtype=np.float64))[self.mask]
        observed = self.observed

        def nll(p: np.ndarray) -> tuple[float, np.ndarray]:
            signal, noise = math.exp(p[0]) * base, math.exp(p[1])
            variance = signal + noise
            slope = (1.0 - observed / variance) / variance  # d nll / d variance, per frequency
            gradient = np.array([np.mean(slope * signal), np.mean(slope) * noise])
            return float(np.mean(observed / variance + np.log(variance))), gradient

        guess = math.log(max(observed.mean(), 1e-300) / max(base.mean(), 1e-300))
        floor = math.log(self.noise)
        result = minimize(nll, [guess, floor + float(self.fit_noise)], method="L-BFGS-B", jac=True,
                          bounds=[(guess - 12, guess + 12), (floor, floor + 12 * self.fit_noise)])
        return float(result.fun)


def profile_tiles(power: np.ndarray, base: np.ndarray, noise: float, weights: np.ndarray,
                  start: tuple[np.ndarray, np.ndarray] | None = None,
                  steps: int = PROFILE_STEPS) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Per-tile negative log-likelihood in nats, ``sum_u w_u (|Y_u|^2 / S_u + log S_u)``, each tile
    with its own signal scale ``c`` and noise variance (at least ``noise``) profiled out: a tile is
    one region of a photo, so its contrast and grain are its own.

    ``power`` is (tiles, n) observed |DFT|^2 / pixels, ``base`` (n,) the model spectrum with c = 1,
    ``weights`` (n,) how often each frequency counts (2 for one of a conjugate pair, which carry the
    same power). Both parameters of every tile are fitted at once by Newton steps on
    (log c, log noise), each step halved until it lowers that tile's value, from ``start`` when
    given (a neighbouring kernel's fit: a few steps then suffice). Returns the values and the
    fitted (log c, log noise) for the next warm start."""
    floor = math.log(noise)

    def value(log_c: np.ndarray, log_n: np.ndarray, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """The values of the tiles ``rows`` (all by default) at (log_c, log_n), given for them."""
        variance = np.exp(log_c)[:, None] * base[None, :] + np.exp(log_n)[:, None]
        return (weights * (power[rows] / variance + np.log(variance))).sum(axis=1)

    if start is None:
        mean_power = np.maximum(power.mean(axis=1), 1e-300)
        log_c = np.log(mean_power / max(base.mean(), 1e-300))
        log_n = np.maximum(np.log(mean_power) - 2.0, floor)
    else:
        log_c, log_n = (v.copy() for v in start)
    current = value(log_c, log_n)
    # A step depends on the tile's own parameters alone, so a tile whose step changed nothing is at
    # its fixed point: later steps would repeat it. Only the tiles still moving are stepped.
    live = np.arange(len(power))
    for _ in range(steps):
        if not len(live):
            break
        c, n = log_c[live], log_n[live]
        signal = np.exp(c)[:, None] * base[None, :]
        noise_v = np.exp(n)[:, None]
        variance = signal + noise_v
        ratio = power[live] / variance
        slope = weights * (1.0 - ratio) / variance  # d value / d variance
        curve = weights * (2.0 * ratio - 1.0) / variance ** 2  # d2 value / d variance2
        g_c, g_n = (slope * signal).sum(1), (slope * noise_v).sum(1)
        h_cc = np.maximum((curve * signal ** 2).sum(1) + g_c, 1e-12)
        h_nn = np.maximum((curve * noise_v ** 2).sum(1) + g_n, 1e-12)
        h_cn = (curve * signal * noise_v).sum(1)
        det = h_cc * h_nn - h_cn ** 2
        newton = det > 1e-9 * h_cc * h_nn  # else a diagonal (gradient-scaled) step
        det = np.where(newton, det, h_cc * h_nn)
        h_cn = np.where(newton, h_cn, 0.0)
        step_c = np.clip((h_nn * g_c - h_cn * g_n) / det, -3.0, 3.0)
        step_n = np.clip((h_cc * g_n - h_cn * g_c) / det, -3.0, 3.0)
        # Backtracking, per tile: only the tiles whose step has not yet lowered their value are
        # tried again (positions in ``live``).
        active, length = np.arange(len(live)), 1.0
        for _ in range(6):
            rows = live[active]
            trial_c = c[active] - length * step_c[active]
            trial_n = np.maximum(n[active] - length * step_n[active], floor)
            trial = value(trial_c, trial_n, rows)
            better = trial <= current[rows]
            accepted = rows[better]
            log_c[accepted], log_n[accepted], current[accepted] = trial_c[better], trial_n[better], trial[better]
            active, length = active[~better], length * 0.5
            if not len(active):
                break
        live = live[(log_c[live] != c) | (log_n[live] != n)]
    return current, (log_c, log_n)


def conjugate_half(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """One frequency of each conjugate pair of a real rows x cols image, DC excluded, and its
    weight: 2 for a pair, 1 for the self-conjugate (Nyquist) frequencies."""
    i, j = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    flat, mirror = i * cols + j, (-i % rows) * cols + (-j % cols)
    keep = (flat <= mirror) & (flat != 0)
    return keep, np.where(flat == mirror, 1.0, 2.0)[keep]


@dataclass
class TileEvidence:
    """What each small tile of the LR image says about the kernel's width.

    For every tile and every isotropic log-scale ``a`` of ``WIDTH_GRID`` (the kernel stretched by
    e^a about its centre of mass), ``nll[a, t]`` is the tile's negative log-likelihood in nats
    (``profile_tiles``). A tile's ``best`` scale is its curve's minimum and ``error`` that
    minimum's standard error, 1/sqrt(curvature): a flat or noise-only tile explains itself about
    equally well with any width (a large error), a textured one does not. Defocus and smooth
    gradients (sky, walls) only ever make a region look *more* blurred, so the sharpest
    well-measured tiles bound the camera's kernel."""

    corners: list[tuple[int, int]]
    size: int
    spectra: np.ndarray  # (tiles, size, size) |DFT|^2 / pixels of each tile's periodic component
    nll: np.ndarray  # (len(WIDTH_GRID), tiles)
    best: np.ndarray  # (tiles,) log-scale of each tile's minimum (parabolic interpolation)
    error: np.ndarray  # (tiles,) its standard error (inf at the grid's ends)
    sources: np.ndarray | None = None  # (tiles,) which of the scored images each tile is from

    @property
    def informative(self) -> np.ndarray:
        return self.error <= MAX_TILE_ERROR

    def reference(self) -> float:
        """The sharp end of the informative tiles' best widths: their information-weighted
        ``SHARP_QUANTILE``, where a defocused or flat region cannot pull it (NaN without any)."""
        informative = self.informative
        if not informative.any():
            return math.nan
        best, weight = self.best[informative], self.error[informative] ** -2.0
        order = np.argsort(best)
        cumulative = np.cumsum(weight[order]) / weight.sum()
        return float(best[order][np.searchsorted(cumulative, SHARP_QUANTILE)])

    def sharp(self) -> np.ndarray:
        """The in-focus, textured tiles: informative ones whose best width lies within
        ``SHARP_MARGIN`` of the ``reference``."""
        informative = self.informative
        if not informative.any():
            return informative
        return informative & (self.best <= self.reference() + SHARP_MARGIN)

    def out_of_focus(self, margin: float = OUT_OF_FOCUS_MARGIN) -> np.ndarray:
        """The tiles that show a defocused or flat region rather than the camera's kernel: those
        that say nothing about the width, and informative ones wider than the ``reference`` by
        more than ``margin`` (a plain photo's softer content stays within it)."""
        informative = self.informative
        if not informative.any():
            return ~informative
        return ~informative | (self.best > self.reference() + margin)


def parabolic_minimum(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum (by a parabola through the lowest grid point and its neighbours) and its standard
    error 1/sqrt(curvature) of each column of ``curves`` sampled on ``WIDTH_GRID``; at the grid's
    ends the minimum is the end and the error infinite."""
    lowest = np.argmin(curves, axis=0)
    best = WIDTH_GRID[lowest].astype(np.float64)
    error = np.full(curves.shape[1], np.inf)
    step = WIDTH_GRID[1] - WIDTH_GRID[0]
    t = np.nonzero((lowest > 0) & (lowest < len(WIDTH_GRID) - 1))[0]
    left, mid, right = curves[lowest[t] - 1, t], curves[lowest[t], t], curves[lowest[t] + 1, t]
    curvature = (left - 2 * mid + right) / step ** 2
    positive = curvature > 0
    best[t[positive]] += (left - right)[positive] / (2.0 * step * curvature[positive])
    error[t[positive]] = curvature[positive] ** -0.5
    return best, error


def tile_spectra(gray: np.ndarray, size: int, most: int) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Corners and periodic-component power spectra (tiles, size, size) of up to ``most`` tiles
    spread evenly over a grid of ``size`` x ``size`` tiles overlapping by half (Welch's choice:
    twice the tiles from the same pixels, and a small image is still covered to its edges)."""
    rows, cols = gray.shape
    stride = max(1, int(size * TILE_STRIDE))
    starts_r = sorted(set(range(0, rows - size + 1, stride)) | {rows - size})
    starts_c = sorted(set(range(0, cols - size + 1, stride)) | {cols - size})
    corners = [(i, j) for i in starts_r for j in starts_c]
    pick = np.unique(np.linspace(0, len(corners) - 1, min(most, len(corners))).round().astype(int))
    corners = [corners[p] for p in pick]
    return corners, np.stack([tile_power(gray[i:i + size, j:j + size]) for i, j in corners])


def tile_evidence(gray: np.ndarray | list[np.ndarray], kernel: np.ndarray, scale: int, noise: float,
                  size: int = SELECT_TILE, most: int = MAX_SELECT_TILES,
                  scene_blur: float = 0.0) -> TileEvidence | None:
    """Score every ``size`` tile of a luma image (or of a group's luma images, which share the
    budget of ``most`` tiles, at least ``MIN_GROUP_TILES`` each) against isotropic stretches of
    ``kernel`` (``TileEvidence``; ``scene_blur``: see ``frequency_prior``); None when no image
    holds a whole tile."""
    grays = [g for g in ([gray] if isinstance(gray, np.ndarray) else gray) if min(g.shape) >= size]
    if not grays:
        return None
    each = most if len(grays) == 1 else max(MIN_GROUP_TILES, most // len(grays))
    found = [tile_spectra(g, size, each) for g in grays]
    corners = [c for f in found for c in f[0]]
    spectra = found[0][1] if len(found) == 1 else np.concatenate([f[1] for f in found])
    sources = np.concatenate([np.full(len(f[0]), i) for i, f in enumerate(found)])
    keep, weights = conjugate_half(size, size)
    template = LRLikelihood(spectra[0], frequency_prior(size, size, scale, scene_blur=scene_blur), scale,
                            noise, keep)
    canvas = 2 * math.ceil(len(kernel) * math.exp(MAX_LOG_SCALE) / 2) + 1
    bases = [template.model(affine_warp(kernel, (a, a, 0.0), canvas))[keep] for a in WIDTH_GRID]
    observed = spectra[:, keep]
    # Each tile's curve is its own (every operation is row by row, tested bit for bit), so two
    # halves of the tiles can be scored side by side with the same numbers.
    halves = len(observed) >= MIN_SPLIT_TILES and torch.get_num_threads() > 1
    tasks = [functools.partial(width_curves, part, bases, noise, weights)
             for part in (np.array_split(observed, 2) if halves else [observed])]
    nll = np.concatenate(forked_map(tasks, 1) if halves else [tasks[0]()], axis=1)
    best, error = parabolic_minimum(nll)
    return TileEvidence(corners, size, spectra, nll, best, error, sources)


def width_curves(observed: np.ndarray, bases: list[np.ndarray], noise: float, weights: np.ndarray) -> np.ndarray:
    """(len(bases), tiles): each tile's ``profile_tiles`` value under each model spectrum in
    ``bases`` (the kernel at each of ``WIDTH_GRID``'s widths), in order, so that each fit starts
    from its neighbour's."""
    curves, state = [], None
    for base in bases:
        values, state = profile_tiles(observed, base, noise, weights, state,
                                      PROFILE_STEPS if state is None else PROFILE_STEPS // 2)
        curves.append(values)
    return np.stack(curves)


def affine_warp(kernel: np.ndarray, params: np.ndarray, size: int) -> np.ndarray:
    """``blindsr.kernel.warp`` of ``kernel`` with ``params`` = (a, b, theta) (log-scales and
    angle) on an odd ``size`` canvas, ringing clipped, normalised to sum 1."""
    a, b, theta = params
    out = np.clip(warp(kernel, (a, b), theta, size), 0.0, None)
    total = out.sum()
    return out / total if total > 0 else out


def tile_summary(evidence: TileEvidence | None, sharp: np.ndarray | None,
                 rule: FocusRule = FocusRule()) -> dict[str, Any]:
    """What the tiles said (``sharp``: ``evidence.sharp()``; out of focus by ``rule``'s margin),
    for the provenance and the kernel's confidence."""
    if evidence is None:
        return {"count": 0, "informative": 0, "in_focus": 0, "out_of_focus": 0}
    informative = evidence.informative
    spread = np.percentile(evidence.best[informative], [25, 75]) if informative.sum() >= 2 else (0.0, 0.0)
    return {"count": len(evidence.best), "size": evidence.size, "informative": int(informative.sum()),
            "in_focus": int(sharp.sum()), "out_of_focus": int(evidence.out_of_focus(rule.margin).sum()),
            "width_spread": round(float(spread[1] - spread[0]), 4)}


def scores_in_focus_tiles(tiles: dict[str, Any], rule: FocusRule = FocusRule()) -> bool:
    """Whether the tiles (``tile_summary`` under ``rule``) show a photo that is not one in-focus
    scene: in focus on less than ``WHOLE_IMAGE_SHARE`` of them, and at least ``rule.minimum``
    (``MIN_OUT_OF_FOCUS``) clearly defocused or flat. A plain photo whose softer content leaves it
    short of the share alone is scored whole: a fit to its sharpest tiles tends to err narrow
    (docs/BENCHMARKS.md, 'robust-focus')."""
    return (0 < tiles["in_focus"] < WHOLE_IMAGE_SHARE * tiles["count"]
            and tiles["out_of_focus"] >= rule.minimum)


def fit_affine(kernel: np.ndarray, score: LRLikelihood, size: int) -> dict[str, Any]:
    """Nelder-Mead over the affine map (a, b, theta) of ``kernel``'s coordinates minimising
    ``score``, from two starts; the map, the values before and after, and the evaluations.

    The starts are independent searches: with two or more CPU threads in the budget they run side
    by side, one in a forked process (``runtime.forked_map``), with the same result."""
    identity = _affine_objective(kernel, score, size, np.zeros(3))
    # Two starts: the simplex explores scales along these axes.
    searches = [functools.partial(_affine_search, kernel, score, size, theta) for theta in (0.0, math.pi / 4)]
    found = forked_map(searches, 1) if torch.get_num_threads() > 1 else [search() for search in searches]
    x, fun, _ = min(found, key=lambda f: f[1])  # the first start on a tie
    return {"params": x if fun < identity else None, "nll_before": identity, "nll_after": float(min(fun, identity)),
            "evaluations": 1 + sum(n for *_, n in found), "size": size}


def _affine_objective(kernel: np.ndarray, score: LRLikelihood, size: int, p: np.ndarray) -> float:
    if np.max(np.abs(p[:2])) > MAX_LOG_SCALE:
        return math.inf
    warped = affine_warp(kernel, p, size)
    return score(warped) if warped.sum() > 0 else math.inf


def _affine_search(kernel: np.ndarray, score: LRLikelihood, size: int, theta: float) -> tuple[np.ndarray, float, int]:
    """One start of ``fit_affine``: the minimum found, its value and the evaluations it took."""
    evaluations = 0

    def objective(p: np.ndarray) -> float:
        nonlocal evaluations
        evaluations += 1
        return _affine_objective(kernel, score, size, p)

    simplex = np.array([[0, 0, theta], [0.3, 0, theta], [0, -0.3, theta], [0, 0, theta + 0.5]])
    result = minimize(objective, simplex[0], method="Nelder-Mead",
                      options={"initial_simplex": simplex, "xatol": 1e-3, "fatol": 1e-8, "maxiter": 400})
    return result.x, float(result.fun), evaluations


def refine_covariance(kernel: SRKernel, rgb: Images, scale: int = 2, fit_noise: bool = True,
                      narrow_variance: float = NARROW_VARIANCE, scene_blur: float = SCENE_BLUR,
                      shape: str = "kernel", focus: FocusRule = FocusRule()) -> SRKernel:
    """``kernel`` with the affine map of its coordinates that maximises the LR image's marginal
    likelihood (module docstring); the fit is recorded in the provenance under ``refinement``.
    The kernel comes back unchanged if no map scores better than the identity.

    Which pixels are scored: a photo's defocused background, sky or smooth wall reads as kernel
    blur (the model assumes one in-focus, stationary scene). Small tiles find where the image is
    in focus and textured (``TileEvidence``). When that is nearly all of it, or when fewer than
    ``MIN_OUT_OF_FOCUS`` tiles show a defocused or flat region (``scores_in_focus_tiles``; ``focus``
    holds that rule), the whole image is scored (finer spectra); otherwise, or when the whole-image
    fit stretches an axis by more than e^MAX_TRUSTED_LOG_SCALE, only the in-focus tiles are. Small
    tiles also shed a sky's gradient: it is nearly linear across one, and the periodic component
    removes linear ramps.

    Narrow kernels: a photographed scene is not sharp to the last HR pixel (its own optics and
    resampling soften it), and a kernel whose transfer reaches the top of the HR band - one close
    to the bicubic kernel - is the only kind on which that shows: the model reads the scene's
    softness as kernel blur and the fit comes out too wide (on the tuning images; wider kernels
    were fitted without that bias). A fit whose mean principal
    variance is below ``NARROW_VARIANCE`` is therefore redone with a prior that includes a
    Gaussian scene blur of variance ``SCENE_BLUR``; the first fit is kept in the provenance
    (both values can be given, for studies: ``benchmarks/robust.py --tune``).

    ``rgb`` may be a group of images of one camera (a list): their tiles are pooled, so the
    likelihood is summed over every image's in-focus tiles.

    ``shape``: ``"kernel"`` keeps the shape of ``kernel``; ``"select"`` also refits the Gaussian
    of the refined kernel's covariance and keeps whichever the image finds likelier
    (``select_shape``); ``"gaussian_if_narrow"`` keeps it unless the refined kernel is narrow
    (``gaussian_if_narrow``)."""
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")
    refined, score = _refine(kernel, rgb, scale, fit_noise, narrow_variance, scene_blur, focus)
    if shape == "kernel":
        return refined
    if shape == "gaussian_if_narrow":
        return gaussian_if_narrow(refined, narrow_variance)
    return select_shape(refined, score, rgb, scale, fit_noise, narrow_variance, scene_blur, focus)


def _refine(kernel: SRKernel, rgb: Images, scale: int, fit_noise: bool, narrow_variance: float,
            scene_blur: float, focus: FocusRule = FocusRule()) -> tuple[SRKernel, LRLikelihood]:
    """``refine_covariance``'s fit of ``kernel``'s shape, and the score the fit it kept maximised."""
    first, score = _fit_covariance(kernel, rgb, scale, fit_noise, 0.0, focus)
    if not needs_narrow_refit(first, narrow_variance):
        return first, score
    refit, score = _fit_covariance(kernel, rgb, scale, fit_noise, scene_blur, focus)
    return narrow_refit(first, refit), score


def gaussian_of(kernel: SRKernel) -> SRKernel:
    """The Gaussian with ``kernel``'s second moments about its centre, on a canvas reaching four
    standard deviations along the major axis (at least ``kernel``'s canvas)."""
    covariance = kernel.covariance()
    major = math.sqrt(max(float(np.linalg.eigvalsh(covariance)[-1]), 0.0))
    size = max(kernel.size, 2 * math.ceil(4.0 * major) + 1)
    return SRKernel.from_array(gaussian_kernel(size, covariance), kernel.scale, order=1)


def select_shape(refined: SRKernel, score: LRLikelihood, rgb: Images, scale: int, fit_noise: bool,
                 narrow_variance: float = NARROW_VARIANCE, scene_blur: float = SCENE_BLUR,
                 focus: FocusRule = FocusRule()) -> SRKernel:
    """``refined``, or the Gaussian of its covariance refitted the same way, whichever ``score``
    (the likelihood ``refined`` was fitted on: the same pixels, the same prior) finds likelier.

    KernelGAN's kernel carries the scatter of its few runs in its fine shape; a smooth kernel of
    the same covariance does not, but a real optic's kernel need not be smooth (a defocus disk, a
    shake). The likelihood tells the two apart when the evidence is ample - a group's pooled
    tiles (docs/BENCHMARKS.md, 'camera'). The kernel handed over keeps ``refined``'s provenance
    (its refinement is what the confidence reads); ``shape`` records both scores and the choice."""
    start = time.perf_counter()
    gaussian, _ = _refine(gaussian_of(refined), rgb, scale, fit_noise, narrow_variance, scene_blur, focus)
    size = min(max(refined.size, gaussian.size), canvas_limit(score, scale))
    nll = {"kernel": score(crop_or_pad(refined.array, size)), "gaussian": score(crop_or_pad(gaussian.array, size))}
    chosen = "gaussian" if nll["gaussian"] < nll["kernel"] else "kernel"
    record = {"chosen": chosen, "nll": nll, "gaussian_refinement": gaussian.provenance["refinement"],
              "seconds": round(time.perf_counter() - start, 3)}
    if chosen == "kernel":
        return refined.with_provenance(shape=record)
    return SRKernel(gaussian.array, refined.scale, provenance={**refined.provenance, "shape": record})


def gaussian_if_narrow(refined: SRKernel, narrow_variance: float = NARROW_VARIANCE) -> SRKernel:
    """``refined``, or the Gaussian of its covariance when its mean principal variance is below
    ``narrow_variance`` HR px^2; the choice is recorded in the provenance under ``shape``.

    A narrow kernel's fine shape lies below what the LR image resolves: KernelGAN's runs put
    their scatter there, and the affine map shrinks that scatter with the kernel rather than
    removing it. The Gaussian of the same second moments is the kernel without it (an optic's
    sharp kernel - pixel aperture, diffraction, an anti-aliasing filter - is close to one). On
    the sharp-kernel tuning images it raised the mean kernel PSNR and LR-PSNR, but on held-out
    BSD100RK images it lowered most narrow estimates (docs/BENCHMARKS.md, 'robust-tuning',
    'robust-narrow-shape'): an option (``shape="gaussian_if_narrow"``), not the default."""
    variance = mean_variance(refined)
    record = {"rule": "gaussian_if_narrow", "mean_variance": round(variance, 4), "narrow_variance": narrow_variance}
    if variance >= narrow_variance:
        return refined.with_provenance(shape={**record, "chosen": "kernel"})
    gaussian = gaussian_of(refined)
    return SRKernel(gaussian.array, refined.scale, provenance={**refined.provenance, "shape": {**record, "chosen": "gaussian"}})


def needs_narrow_refit(first: SRKernel, narrow_variance: float = NARROW_VARIANCE) -> bool:
    """Whether a plain fit is narrow enough to be redone with the scene's softness in the prior."""
    return mean_variance(first) < narrow_variance


def narrow_refit(first: SRKernel, refit: SRKernel) -> SRKernel:
    """The refit with the scene's softness in the prior, the first fit recorded in its provenance."""
    info = dict(refit.provenance["refinement"])
    info["narrow_refit"] = {"first_mean_variance": round(mean_variance(first), 4),
                            "scene_blur": refit.provenance["refinement"]["scene_blur"],
                            "first_log_scales": first.provenance["refinement"].get("log_scales"),
                            "first_seconds": first.provenance["refinement"]["seconds"]}
    return refit.with_provenance(refinement=info)


def mean_variance(kernel: SRKernel) -> float:
    """The mean of a kernel's two principal variances (HR px^2)."""
    described = kernel.describe()
    return (described["sigma_major"] ** 2 + described["sigma_minor"] ** 2) / 2


def fit_covariance(kernel: SRKernel, rgb: Images, scale: int, fit_noise: bool, scene_blur: float) -> SRKernel:
    """``refine_covariance`` with the prior's scene blur ``scene_blur`` (``frequency_prior``)."""
    return _fit_covariance(kernel, rgb, scale, fit_noise, scene_blur)[0]


def _fit_covariance(kernel: SRKernel, rgb: Images, scale: int, fit_noise: bool, scene_blur: float,
                    focus: FocusRule = FocusRule()) -> tuple[SRKernel, LRLikelihood]:
    """``fit_covariance``, and the score it maximised."""
    start = time.perf_counter()
    grays = luma(rgb) if isinstance(rgb, np.ndarray) else [luma(x) for x in rgb]
    noise = luma_noise(first(rgb))
    evidence = tile_evidence(grays, kernel.array, scale, noise, scene_blur=scene_blur)
    sharp = evidence.sharp() if evidence is not None else None
    tiles_info = tile_summary(evidence, sharp, focus)
    in_focus = None
    if tiles_info["in_focus"]:
        in_focus = LRLikelihood.from_power(evidence.spectra[sharp].mean(axis=0), scale, noise,
                                           fit_noise=fit_noise, scene_blur=scene_blur)
    size = 2 * math.ceil(kernel.size * math.exp(MAX_LOG_SCALE) / 2) + 1
    if in_focus is not None and scores_in_focus_tiles(tiles_info, focus):
        scored = "in-focus tiles"
    else:
        whole = LRLikelihood.from_image(rgb, scale, fit_noise=fit_noise, scene_blur=scene_blur)
        fit = fit_affine(kernel.array, whole, min(size, canvas_limit(whole, scale)))
        moved = 0.0 if fit["params"] is None else float(np.max(np.abs(fit["params"][:2])))
        scored = "whole image"
        if in_focus is not None and moved > MAX_TRUSTED_LOG_SCALE:
            scored = "in-focus tiles (the whole-image fit was implausible)"
    if scored != "whole image":
        fit = fit_affine(kernel.array, in_focus, min(size, canvas_limit(in_focus, scale)))
    score = in_focus if scored != "whole image" else whole
    info: dict[str, Any] = {"method": "affine", "scored": scored, "tiles": tiles_info,
                            "nll_before": fit["nll_before"], "nll_after": fit["nll_after"],
                            "nll_bicubic": score(bicubic_kernel(scale).array),
                            "evaluations": fit["evaluations"], "fit_noise": fit_noise, "scene_blur": scene_blur}
    if fit["params"] is None:
        info.update(applied=False, seconds=round(time.perf_counter() - start, 3))
        return kernel.with_provenance(refinement=info), score
    a, b, theta = (float(v) for v in fit["params"])
    info.update(applied=True, log_scales=[round(a, 4), round(b, 4)], angle_rad=round(theta % math.pi, 4),
                seconds=round(time.perf_counter() - start, 3))
    warped = affine_warp(kernel.array, fit["params"], fit["size"])
    # The spline leaves a faint tail over the whole working canvas: keep the support holding all
    # but 1e-6 of the mass, as for derived x4 kernels (the mass cut is recorded).
    support = crop_or_pad(warped, support_size(warped))
    info["lost_energy"] = float(1.0 - support.sum())
    refined = SRKernel.from_array(support, kernel.scale, order=1)
    return refined.with_provenance(**kernel.provenance, refinement=info,
                                   refinement_clipped_mass=refined.provenance["negative_mass_clipped"]), score


def canvas_limit(score: LRLikelihood, scale: int) -> int:
    """The largest odd kernel canvas the score's tile can hold at HR resolution."""
    rows, cols = score.power.shape
    return 2 * ((min(rows, cols) * scale - 1) // 2) + 1
