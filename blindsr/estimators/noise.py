"""The LR image's noise level, fitted with its blur kernel (blind noise for SRMD and ZSSR).

The marginal-likelihood model of ``blindsr.estimators.likelihood`` explains each small tile's
power spectrum as the kernel-blurred natural-image spectrum plus white noise:
``S(u) = c_t * B(u) + n_t``, B the kernel's alias-summed model spectrum. Fitting every tile's
(c_t, n_t) (``profile_tiles``) therefore splits its power into blurred signal and noise: what
the kernel cannot have passed is noise. Per colour channel, because SRMD's noise model is
independent noise of one sigma in each channel.

A tile's noise fit is only as good as the frequencies where noise dominates: a smooth tile (sky,
wall, defocused background) is nearly all noise above its lowest frequencies and pins n_t
tightly, a busy tile leaves n_t free to sink to the 8-bit floor, and a tile whose texture the
model fits imperfectly pushes n_t up. Tiles whose noise is measured to within ``MAX_LOG_ERROR``
(standard error of log n_t from the fit's Fisher information) are kept, and their
information-weighted median is the channel's noise variance.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from blindsr.estimators.compression import sr_sigma
from blindsr.estimators.likelihood import (
    MAX_SELECT_TILES, ROUNDING_NOISE, SELECT_TILE, LRLikelihood, conjugate_half, frequency_prior,
    profile_tiles, tile_spectra)

MAX_LOG_ERROR = 0.1  # a tile's noise variance known to about +-10% or better counts
NOISE_QUANTILE = 0.5  # information-weighted, over the counted tiles


@dataclass
class TileNoise:
    """Per tile of one channel: the fitted noise variance ([0, 1] units) and the standard error
    of its logarithm."""

    variance: np.ndarray
    log_error: np.ndarray


def tile_noise(channel: np.ndarray, kernel: np.ndarray, scale: int, size: int = SELECT_TILE,
               most: int = MAX_SELECT_TILES) -> TileNoise | None:
    """Fit every ``size`` tile of one channel (float in [0, 1]) with ``kernel``; None when the
    channel holds no whole tile."""
    if min(channel.shape) < size:
        return None
    _, spectra = tile_spectra(np.asarray(channel, dtype=np.float64), size, most)
    keep, weights = conjugate_half(size, size)
    model = LRLikelihood(spectra[0], frequency_prior(size, size, scale), scale, ROUNDING_NOISE, keep)
    base = model.model(np.asarray(kernel, dtype=np.float64))[keep]
    observed = spectra[:, keep]
    _, (log_c, log_n) = profile_tiles(observed, base, ROUNDING_NOISE, weights)
    signal = np.exp(log_c)[:, None] * base[None, :]
    noise = np.exp(log_n)[:, None]
    # Fisher information of log n: each complex coefficient |Y|^2 ~ S Exp(1) carries
    # (d log S / d log n)^2 = (n / S)^2; a conjugate pair counts once (weights 2 -> 1).
    information = (np.minimum(weights, 1.0) * (noise / (signal + noise)) ** 2).sum(axis=1)
    return TileNoise(np.exp(log_n), information ** -0.5)


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order]) / weights.sum()
    return float(values[order][min(np.searchsorted(cumulative, q), len(values) - 1)])


def channel_noise(tiles: TileNoise | None) -> tuple[float, int]:
    """One channel's noise variance and how many tiles measured it; with no tile measuring it
    well, the best-measured tile's (count 0)."""
    if tiles is None:
        return ROUNDING_NOISE, 0
    good = tiles.log_error <= MAX_LOG_ERROR
    if not good.any():
        return float(tiles.variance[np.argmin(tiles.log_error)]), 0
    weights = tiles.log_error[good] ** -2.0
    return weighted_quantile(tiles.variance[good], weights, NOISE_QUANTILE), int(good.sum())


def estimate_noise(rgb: np.ndarray, kernel: np.ndarray, scale: int) -> dict[str, Any]:
    """The noise sigma of an LR image (float (h, w[, 3]) in [0, 1]) blurred by ``kernel`` (the
    centred handoff kernel of ``scale``), in 8-bit units: ``sigma`` over all channels (root mean
    square) and ``per_channel``; ``tiles`` how many tiles measured each channel, and ``reliable``
    whether every channel had one (a kernel far narrower than the image's blur leaves no tile
    noise-dominated frequencies, and the sigma is then too low)."""
    image = np.asarray(rgb, dtype=np.float64)
    channels = [image] if image.ndim == 2 else [image[..., c] for c in range(min(3, image.shape[2]))]
    variances, counts = zip(*(channel_noise(tile_noise(c, kernel, scale)) for c in channels))
    # The fit's floor is the rounding noise every 8-bit image carries; report what lies above it.
    sigmas = [255.0 * math.sqrt(max(v - ROUNDING_NOISE, 0.0)) for v in variances]
    return {"sigma": round(math.sqrt(float(np.mean(np.square(sigmas)))), 3),
            "per_channel": [round(s, 3) for s in sigmas], "tiles": list(counts), "reliable": min(counts) > 0,
            "method": "per-tile likelihood fit with the kernel, information-weighted median"}


def kernel_noise(rgb: np.ndarray, kernel: Any) -> tuple[float, str]:
    """An LR image's noise sigma for an SR back-end, and where it came from: the white noise the
    kernel estimate recorded (``provenance["noise"]``), else ``estimate_noise`` with that kernel (an
    ``SRKernel``, e.g. one given as a file, or the benchmark's true kernel); on a JPEG-compressed
    image (``provenance["compression"]``, which the SR stage attaches) combined with the
    quantisation error that fit barely sees (``blindsr.estimators.compression.sr_sigma``)."""
    if "noise" in kernel.provenance:
        sigma, source = float(kernel.provenance["noise"]["sigma"]), "kernel estimate"
    else:
        sigma, source = estimate_noise(rgb, kernel.array, kernel.scale)["sigma"], "fitted with the kernel"
    compression = kernel.provenance.get("compression")
    if compression:
        sigma = round(sr_sigma(sigma, compression["sigma"]), 3)
        source += f" and JPEG quality {compression['quality']} ({compression['source']})"
    return sigma, source
