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

Refinement. ``refine_covariance`` keeps a kernel's shape and fits an affine map of its
coordinates, k'(x) proportional to k(c + A^-1 (x - c)) with A = R(theta) diag(e^a, e^b) R(theta)^T,
by Nelder-Mead on the three parameters. The power spectrum is blind to a kernel's phase
(k and its mirror image score the same), so the shape, and any asymmetry, stays the estimator's.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.optimize import minimize

from blindsr.kernel import SRKernel, crop_or_pad, support_size

LUMA = np.array([0.299, 0.587, 0.114])
TILE = 256  # LR px; spectra of up to MAX_TILES tiles are averaged (Welch)
MAX_TILES = 16
SPECTRUM_EXPONENT = 2.0
ROUNDING_NOISE = (1.0 / 255.0) ** 2 / 12.0  # variance of 8-bit rounding, on [0, 1]
MAX_LOG_SCALE = 1.2  # the affine map stretches each axis by at most e^1.2 = 3.3x either way


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


def tiles(gray: np.ndarray, size: int = TILE, most: int = MAX_TILES) -> list[np.ndarray]:
    """Non-overlapping ``size`` x ``size`` tiles (the whole image when it is smaller), at most
    ``most`` of them, spread evenly over the image."""
    rows, cols = gray.shape
    th, tw = min(size, rows), min(size, cols)
    corners = [(i, j) for i in range(0, rows - th + 1, th) for j in range(0, cols - tw + 1, tw)]
    pick = np.unique(np.linspace(0, len(corners) - 1, min(most, len(corners))).round().astype(int))
    return [gray[i:i + th, j:j + tw] for i, j in (corners[p] for p in pick)]


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
    def from_image(cls, rgb: np.ndarray, scale: int, exponent: float = SPECTRUM_EXPONENT,
                   noise: float = ROUNDING_NOISE, fit_noise: bool = True) -> "LRLikelihood":
        gray = np.asarray(rgb, dtype=np.float64)
        if gray.ndim == 3:
            gray = gray[..., :3] @ LUMA if gray.shape[2] >= 3 else gray[..., 0]
        parts = tiles(gray)
        rows, cols = parts[0].shape
        power = np.zeros((rows, cols))
        for t in parts:
            p = periodic_component(t)
            power += np.abs(np.fft.fft2(p - p.mean())) ** 2 / p.size
        fy = np.fft.fftfreq(rows * scale)[:, None] * 2 * np.pi
        fx = np.fft.fftfreq(cols * scale)[None, :] * 2 * np.pi
        radius2 = fy ** 2 + fx ** 2
        radius2[0, 0] = np.inf
        mask = np.ones((rows, cols), bool)
        mask[0, 0] = False
        noise_luma = noise * float(np.sum(LUMA ** 2)) if np.ndim(rgb) == 3 else noise
        return cls(power / len(parts), radius2 ** (-exponent / 2), scale, noise_luma, mask, fit_noise)

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


def affine_warp(kernel: np.ndarray, params: np.ndarray, size: int) -> np.ndarray:
    """k'(x) proportional to k(c + A^-1 (x - c)) on an odd ``size`` canvas centred on the centre of
    mass c; A = R(theta) diag(e^a, e^b) R(theta)^T with ``params`` = (a, b, theta). Sampled from
    the cubic-spline interpolant, ringing clipped, normalised to sum 1."""
    k = np.asarray(kernel, dtype=np.float64)
    pad = max(0, (size - k.shape[0]) // 2)
    k = np.pad(k, pad)
    centre = np.array(ndimage.center_of_mass(k))
    a, b, theta = params
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    inverse = rotation @ np.diag([math.exp(-a), math.exp(-b)]) @ rotation.T
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2
    grid = np.stack(np.meshgrid(offsets, offsets, indexing="ij"))
    source = np.einsum("ij,jab->iab", inverse, grid) + centre[:, None, None]
    out = np.clip(ndimage.map_coordinates(k, source, order=3, mode="constant"), 0.0, None)
    total = out.sum()
    return out / total if total > 0 else out


def refine_covariance(kernel: SRKernel, rgb: np.ndarray, scale: int = 2, fit_noise: bool = True) -> SRKernel:
    """``kernel`` with the affine map of its coordinates that maximises the LR image's marginal
    likelihood (module docstring); the fit is recorded in the provenance under ``refinement``.
    The kernel comes back unchanged if no map scores better than the identity."""
    start = time.perf_counter()
    score = LRLikelihood.from_image(rgb, scale, fit_noise=fit_noise)
    rows, cols = score.power.shape
    size = 2 * math.ceil(kernel.size * math.exp(MAX_LOG_SCALE) / 2) + 1
    size = min(size, 2 * ((min(rows, cols) * scale - 1) // 2) + 1)
    evaluations = 0

    def objective(p: np.ndarray) -> float:
        nonlocal evaluations
        evaluations += 1
        if np.max(np.abs(p[:2])) > MAX_LOG_SCALE:
            return math.inf
        warped = affine_warp(kernel.array, p, size)
        return score(warped) if warped.sum() > 0 else math.inf

    identity = objective(np.zeros(3))
    best = None
    for theta in (0.0, math.pi / 4):  # two starts: the simplex explores scales along these axes
        simplex = np.array([[0, 0, theta], [0.3, 0, theta], [0, -0.3, theta], [0, 0, theta + 0.5]])
        result = minimize(objective, simplex[0], method="Nelder-Mead",
                          options={"initial_simplex": simplex, "xatol": 1e-3, "fatol": 1e-8,
                                   "maxiter": 400})
        if best is None or result.fun < best.fun:
            best = result
    info: dict[str, Any] = {"method": "affine", "nll_before": identity, "evaluations": evaluations,
                            "fit_noise": fit_noise}
    if not best.fun < identity:
        info.update(nll_after=identity, applied=False, seconds=round(time.perf_counter() - start, 3))
        return kernel.with_provenance(refinement=info)
    a, b, theta = (float(v) for v in best.x)
    info.update(nll_after=float(best.fun), applied=True, log_scales=[round(a, 4), round(b, 4)],
                angle_rad=round(theta % math.pi, 4), seconds=round(time.perf_counter() - start, 3))
    warped = affine_warp(kernel.array, best.x, size)
    # The spline leaves a faint tail over the whole working canvas: keep the support holding all
    # but 1e-6 of the mass, as for derived x4 kernels (the mass cut is recorded).
    support = crop_or_pad(warped, support_size(warped))
    info["lost_energy"] = float(1.0 - support.sum())
    refined = SRKernel.from_array(support, kernel.scale, order=1)
    return refined.with_provenance(**kernel.provenance, refinement=info,
                                   refinement_clipped_mass=refined.provenance["negative_mass_clipped"])
