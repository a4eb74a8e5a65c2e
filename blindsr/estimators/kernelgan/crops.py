"""Where KernelGAN looks: crops drawn with probability from the image's gradient maps.

Follows the authors' sampling (KernelGAN code, ``data.py``/``util.py``): textured regions are
where the kernel shows, so crop centres are drawn in proportion to a smoothed map of the strongest
3 % of gradients. G's crops use the map of the bicubic x1/2 image (enlarged back), D's the map of
the image itself. Top-left corners are rounded down to even so G's strided sampling grid stays on
the image's 2x2 blocks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blindsr.degradation import imresize

GRADIENT_WINDOW = 5
TOP_FRACTION = 0.97


def box_sum(a: np.ndarray, size: int) -> np.ndarray:
    """``scipy.signal.convolve2d(a, ones((size, size)), 'same')`` by running sums: output (i, j) sums
    rows i - size//2 ... i + (size-1)//2 (zero outside), in O(pixels) instead of O(pixels * size^2)."""
    out = a
    before, after = size // 2, (size - 1) // 2
    for axis in (0, 1):
        n = out.shape[axis]
        moved = np.moveaxis(out, axis, 0)
        cum = np.empty((n + 1,) + moved.shape[1:], dtype=np.cumsum(moved[:0], axis=0).dtype)
        cum[0] = 0
        np.cumsum(moved, axis=0, out=cum[1:])  # cum[j]: the sum of the first j entries
        summed = np.empty(moved.shape, dtype=cum.dtype)
        # Away from the ends a window is the difference of two slices of the running sum; at the
        # ends its bounds are clipped to the array.
        first, last = min(before, n), max(min(before, n), n - after - 1)
        np.subtract(cum[first + after + 1:last + after + 1], cum[first - before:last - before], out=summed[first:last])
        ends = np.r_[0:first, last:n]
        summed[ends] = cum[np.minimum(n, ends + after + 1)] - cum[np.maximum(0, ends - before)]
        out = np.moveaxis(summed, 0, axis)
    return out


def _zero_border(a: np.ndarray, edge: int) -> np.ndarray:
    """``a`` with zeros within ``edge`` of its border (all zeros when nothing is left), in place."""
    if 2 * edge >= min(a.shape):
        a[...] = 0
    elif edge:
        a[:edge] = 0
        a[-edge:] = 0
        a[:, :edge] = 0
        a[:, -edge:] = 0
    return a


def keep_top(a: np.ndarray, percent: float) -> np.ndarray:
    """The authors' ``clip_extreme``: clip to [v, v_next] around the ``percent`` quantile and
    subtract v, i.e. an (almost binary) indicator of the strongest gradients."""
    pivot = min(int(percent * a.size), a.size - 2)
    low, above = np.partition(a.ravel(), (pivot, pivot + 1))[[pivot, pivot + 1]]  # sorted values there
    high = above if above > low else low + 1e-5
    out = np.clip(a, low, high)
    out -= low
    return out


def _add_normalised(total: np.ndarray, m: np.ndarray) -> None:
    """total += m / sum(m), unless m has no positive sum."""
    mass = m.sum()
    if mass > 0:
        total += m / mass


def gradient_map(rgb: np.ndarray, window: int = GRADIENT_WINDOW,
                 percent: float = TOP_FRACTION) -> np.ndarray:
    """Map of where the strongest gradients are, normalised to mean 1.

    |d/dy| and |d/dx| keep only their top 3 %; the gradient magnitude enters whole (the authors'
    code normalises the unclipped magnitude map - what produced the published numbers).
    """
    gy, gx = np.gradient(rgb @ np.array([0.299, 0.587, 0.114]))
    combined = np.zeros_like(gy)
    # One map at a time and the gradients' magnitudes in place: a photo's full-size maps take
    # memory. The magnitude map needs neither their signs nor their borders, which it zeroes too.
    for g in (gy, gx):
        _add_normalised(combined, keep_top(_zero_border(np.abs(g, out=g), window), percent))
    magnitude = _zero_border(np.hypot(gx, gy), window)
    del gy, gx
    _add_normalised(combined, magnitude)
    del magnitude
    blurred = box_sum(combined, window)
    del combined
    blurred /= window**2
    mean = blurred.mean()
    if mean > 0:
        blurred /= mean
        return blurred
    return np.ones_like(blurred)


def probability_map(loss_map: np.ndarray, crop: int) -> np.ndarray:
    """Probability of each pixel being a crop centre: the map box-blurred over (crop/2)^2, zero
    within crop/2 of the border, normalised (uniform if nothing is left)."""
    half = crop // 2
    blurred = box_sum(loss_map, half)
    blurred /= half**2
    prob = _zero_border(blurred, half).ravel()
    total = prob.sum()
    if total > 0:
        prob /= total
        return prob
    return np.full(prob.size, 1.0 / prob.size)


@dataclass(frozen=True)
class CropPlan:
    """Top-left corners (iterations, 2) of G's and D's crops, their sizes, and for a group of
    images which image each crop comes from (None: the one image)."""

    g_corners: np.ndarray
    d_corners: np.ndarray
    g_size: int
    d_size: int
    g_images: np.ndarray | None = None
    d_images: np.ndarray | None = None


@dataclass(frozen=True)
class CropMaps:
    """Crop-centre probabilities of an image for G's and D's crops (computed once per image)."""

    g_prob: np.ndarray
    d_prob: np.ndarray
    g_size: int
    d_size: int
    shape: tuple[int, int]


def crop_maps(rgb: np.ndarray, g_size: int, d_size: int) -> CropMaps:
    rows, cols = rgb.shape[:2]
    g_map = np.repeat(np.repeat(gradient_map(imresize(rgb, 0.5)), 2, axis=0), 2, axis=1)[:rows, :cols]
    g_prob = probability_map(g_map, g_size)
    del g_map  # before the next full-size map is made
    return CropMaps(g_prob, probability_map(gradient_map(rgb), d_size), g_size, d_size, (rows, cols))


def plan_crops(maps: CropMaps, iterations: int, rng: np.random.Generator) -> CropPlan:
    """Draw all crops of a run up front (``iterations`` G and D crops)."""
    rows, cols = maps.shape
    g_centres = rng.choice(maps.g_prob.size, size=iterations, p=maps.g_prob)
    d_centres = rng.choice(maps.d_prob.size, size=iterations, p=maps.d_prob)
    return CropPlan(_corners(g_centres, maps.g_size, rows, cols), _corners(d_centres, maps.d_size, rows, cols),
                    maps.g_size, maps.d_size)


def _corners(centres: np.ndarray, size: int, rows: int, cols: int) -> np.ndarray:
    r, c = np.divmod(centres, cols)
    top = np.clip(r - size // 2, 0, rows - size)
    left = np.clip(c - size // 2, 0, cols - size)
    return np.stack([top - top % 2, left - left % 2], axis=1)


def plan_group_crops(maps: list[CropMaps], shares: np.ndarray, iterations: int,
                     rng: np.random.Generator) -> CropPlan:
    """Crops across a group of images of one camera: each crop's image is drawn with probability
    ``shares`` (summing to 1), its corner from that image's map as in ``plan_crops``."""
    g_images = rng.choice(len(maps), size=iterations, p=shares)
    d_images = rng.choice(len(maps), size=iterations, p=shares)
    g_corners = np.zeros((iterations, 2), dtype=np.int64)
    d_corners = np.zeros((iterations, 2), dtype=np.int64)
    for i, m in enumerate(maps):
        rows, cols = m.shape
        for images, corners, prob, size in ((g_images, g_corners, m.g_prob, m.g_size),
                                            (d_images, d_corners, m.d_prob, m.d_size)):
            pick = images == i
            centres = rng.choice(prob.size, size=int(pick.sum()), p=prob)
            corners[pick] = _corners(centres, size, rows, cols)
    return CropPlan(g_corners, d_corners, maps[0].g_size, maps[0].d_size, g_images, d_images)


def densest_window(rgb: np.ndarray, size: int) -> np.ndarray:
    """The ``size`` x ``size`` part of an image holding most of its strongest gradients (the whole
    image when it is no larger): where a large photo of a group shows its kernel best. The corner
    is even, so the window keeps the image's 2x2 blocks."""
    rows, cols = rgb.shape[:2]
    if rows <= size and cols <= size:
        return rgb
    h, w = min(rows, size), min(cols, size)
    cum = np.pad(gradient_map(rgb).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = cum[h:, w:] - cum[:-h, w:] - cum[h:, :-w] + cum[:-h, :-w]  # every window's total
    top, left = np.unravel_index(np.argmax(sums), sums.shape)
    top, left = top - top % 2, left - left % 2
    return rgb[top:top + h, left:left + w]
