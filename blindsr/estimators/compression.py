"""JPEG compression of an LR photo, and the noise level an SR back-end should be told on it.

Most photos reach us as JPEG: sensor noise, then the encoder's quantisation of 8x8 block DCT
coefficients. The blind noise level (``blindsr.estimators.noise``) fits white noise to what is
left in the decoded image; quantisation has removed most of the noise's high frequencies and put
its own error in (blocks, ringing), which that fit barely sees (it reads about 1.3-1.7 on photos
with noise of 3-6 compressed at quality 50-70). SRMD told such a sigma sharpens the compression
error: 0.9-3.5 dB below the best sigma on the same photos at qualities 50-95 (docs/BENCHMARKS.md,
'jpeg-noise-study'). The quantisation table says how coarse that error is:

- a JPEG file carries its tables (``blindsr.images.file_luma_table``);
- a decoded JPEG saved losslessly (PNG) still holds them in its pixels: each block DCT
  coefficient of the luma plane, on the 8x8 grid, lies near an integer multiple of its step
  (``estimate_luma_table``; Fan & de Queiroz, IEEE TIP 12(2), 2003, estimate the table this way).

``table_sigma`` turns a luma table into the rms quantisation error of a coefficient quantised
with it, sqrt(mean(Q^2) / 12) in 8-bit units (the variance of a uniform error over one step is
Q^2 / 12), and ``sr_sigma`` combines it with the white noise into the sigma SRMD is given, by a
rule chosen on tuning images and checked on others (docs/BENCHMARKS.md, 'jpeg-noise').
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

# The luminance quantisation table of the JPEG standard (ITU-T T.81, Annex K, Table K.1), in
# row-major order: what libjpeg (and so Pillow, OpenCV, most software) scales by its quality.
STANDARD_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99], dtype=np.float64).reshape(8, 8)
BLOCK = 8
LOW_FREQUENCIES = 4  # steps are measured on the 4x4 lowest frequencies: most blocks use them
MAX_STEP = 64  # steps above this at low frequencies mean quality below ~10: not searched
MIN_ACTIVE = 64  # coefficients away from 0 needed to measure a position's step
LATTICE_SCORE = 0.35  # mean cos(2 pi c / Q) from which c lies on multiples of Q
MIN_MEASURED = 4  # positions measured before a table is claimed
MAX_SIDE = 1024  # px: the pixels are read in a central window of at most this side, on the grid
# sr_sigma on a compressed photo: hypot(boost * white, weight * table_sigma^exponent), chosen on
# BSD100RK scenes 1-10 (docs/BENCHMARKS.md, 'jpeg-noise-study'). The boost: quantisation removed
# part of the white noise before the fit saw it (sigma 6 then quality 95 fits as about 4.4).
# SRMD's best sigma grows more slowly than the table's error: about 7.5 at quality 50, whose
# table's rms error is 19.
COMPRESSED_NOISE_BOOST = 1.75
# The boost was measured on white noise up to 6 (8-bit); heavier noise loses little to a quality
# the study covered, so only its first BOOSTED_NOISE_LIMIT are boosted, not an unmeasured guess.
BOOSTED_NOISE_LIMIT = 6.0
COMPRESSION_WEIGHT = 2.0
COMPRESSION_EXPONENT = 0.5


def ijg_table(quality: int) -> np.ndarray:
    """The luma table libjpeg writes at ``quality`` (1-100): the standard table scaled by
    5000 / quality below 50 and 200 - 2 quality from 50, rounded, within [1, 255]."""
    q = min(max(int(quality), 1), 100)
    scale = 5000 // q if q < 50 else 200 - 2 * q
    return np.clip(np.floor((STANDARD_LUMA * scale + 50) / 100), 1, 255)


def table_quality(table: np.ndarray, measured: np.ndarray | None = None) -> int:
    """The libjpeg quality whose luma table is nearest ``table`` in log step (on the ``measured``
    positions only, when given): a name for a table, also for a camera's own tables."""
    mask = np.ones((BLOCK, BLOCK), bool) if measured is None else measured
    target = np.log(np.asarray(table, dtype=np.float64)[mask])
    errors = [np.abs(np.log(ijg_table(q)[mask]) - target).sum() for q in range(1, 101)]
    return int(np.argmin(errors)) + 1


def table_sigma(table: np.ndarray) -> float:
    """Rms quantisation error of the luma table, in 8-bit units: sqrt(mean(Q^2) / 12)."""
    steps = np.asarray(table, dtype=np.float64)
    return float(math.sqrt(np.mean(steps**2) / 12.0))


def sr_sigma(white: float, compression: float | None) -> float:
    """The noise sigma for SRMD on a photo with ``white`` noise left after decoding and the luma
    table's ``compression`` sigma c (None: not compressed, ``white`` as it is):
    sqrt(boosted^2 + (w c^e)^2), boosted = white + (b - 1) min(white, ``BOOSTED_NOISE_LIMIT``),
    b = ``COMPRESSED_NOISE_BOOST``, w = ``COMPRESSION_WEIGHT``, e = ``COMPRESSION_EXPONENT``."""
    if not compression:
        return float(white)
    boosted = white + (COMPRESSED_NOISE_BOOST - 1.0) * min(white, BOOSTED_NOISE_LIMIT)
    return float(math.hypot(boosted, COMPRESSION_WEIGHT * compression**COMPRESSION_EXPONENT))


def dct_matrix(n: int = BLOCK) -> np.ndarray:
    """The orthonormal DCT-II matrix: JPEG's forward DCT of a block B is D B D^T."""
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    d = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * x + 1) * k / (2 * n))
    d[0] /= np.sqrt(2.0)
    return d


def block_coefficients(rgb: np.ndarray) -> np.ndarray:
    """(blocks, 8, 8) DCT coefficients of the JPEG luma (ITU-R BT.601, 8-bit units, minus 128)
    of every whole 8x8 block on the grid that starts at the top-left pixel."""
    image = np.asarray(rgb, dtype=np.float64) * 255.0
    y = image if image.ndim == 2 else image[..., :3] @ np.array([0.299, 0.587, 0.114])
    rows, cols = (s - s % BLOCK for s in y.shape)
    blocks = (y[:rows, :cols] - 128.0).reshape(rows // BLOCK, BLOCK, cols // BLOCK, BLOCK).transpose(0, 2, 1, 3)
    d = dct_matrix()
    return d @ blocks.reshape(-1, BLOCK, BLOCK) @ d.T


def lattice_step(values: np.ndarray) -> int | None:
    """The step Q (2..MAX_STEP) whose multiples the values sit on, or None: no lattice (an image
    that was never JPEG-compressed has none) or too few values to tell. Each Q scores the values it
    would not have quantised to 0 (|c| >= Q / 2) by mean cos(2 pi c / Q): about
    exp(-2 pi^2 e^2 / Q^2) on its own lattice with rounding error e, less for a divisor of the true
    step (e counts m times over at Q / m), less for a neighbour (its multiples drift away from
    the true one's), about 0 or below for values spread over several steps. The best scoring Q,
    if it scores at least ``LATTICE_SCORE``."""
    magnitudes = np.abs(values)
    best, best_score = None, LATTICE_SCORE
    for step in range(2, MAX_STEP + 1):
        active = values[magnitudes >= step / 2.0]
        if active.size < MIN_ACTIVE:
            break
        score = float(np.cos(2.0 * np.pi * active / step).mean())
        if score >= best_score:
            best, best_score = step, score
    return best


def estimate_luma_table(rgb: np.ndarray) -> dict[str, Any] | None:
    """The luma table a decoded JPEG was quantised with, read from its pixels, or None when its
    pixels show none (never compressed, compressed so finely that rounding hides the steps, or
    resized or cropped off the 8x8 grid since). The 4x4 lowest frequencies are measured
    (``lattice_step``); the table is the libjpeg table of the nearest quality
    (``table_quality``), which is also what a camera's own table is named by."""
    rows, cols = np.shape(rgb)[:2]
    if min(rows, cols) < BLOCK:
        return None
    top, left = (max(0, (n - MAX_SIDE) // 2) // BLOCK * BLOCK for n in (rows, cols))
    coefficients = block_coefficients(rgb[top:top + MAX_SIDE, left:left + MAX_SIDE])
    steps = np.zeros((BLOCK, BLOCK))
    measured = np.zeros((BLOCK, BLOCK), bool)
    for u in range(LOW_FREQUENCIES):
        for v in range(LOW_FREQUENCIES):
            step = lattice_step(coefficients[:, u, v])
            if step is not None:
                steps[u, v], measured[u, v] = step, True
    if measured.sum() < MIN_MEASURED:
        return None
    quality = table_quality(np.where(measured, steps, 1.0), measured)
    return {"quality": quality, "measured_steps": int(measured.sum()),
            "matching_steps": int((ijg_table(quality)[measured] == steps[measured]).sum())}


def compression_record(luma_table: np.ndarray | None, rgb: np.ndarray | None = None) -> dict[str, Any] | None:
    """What is recorded of an image's JPEG compression: from the file's own table when it is a
    JPEG, else read from the pixels of ``rgb`` (when given); None when there is none."""
    if luma_table is not None:
        table, source, extra = np.asarray(luma_table, dtype=np.float64), "the file's quantisation table", {}
        quality = table_quality(table)
    else:
        found = None if rgb is None else estimate_luma_table(rgb)
        if found is None:
            return None
        quality = found["quality"]
        table, source, extra = ijg_table(quality), "block DCT steps read from the pixels", found
    return {"format": "jpeg", "quality": quality, "sigma": round(table_sigma(table), 3), "source": source, **extra}
