"""The hard development set: photo-like scenes on which blind kernel estimation tends to fail.

From HR images 1-20 of BSD100RK (-> ``tune/``, for choosing defaults) and 9-20 of Urban100RK
(-> ``report/``, for reporting only; Urban100RK 1-8 were used while developing the robust
refinement, so they are kept out of it), each edited by one variant, assigned cyclically:

1. ``defocus_disk``   a sharp blob near the centre stays in focus; 50-80% of the frame is blurred
                      by a uniform disk of radius 3-12 HR px (a defocused lens)
2. ``defocus_gauss``  the same with a Gaussian of sigma 1.5-6 HR px (a disk of radius r has
                      sigma r/2 per axis, so the two ranges have the same second moments)
3. ``sky``            40-70% of the frame (the top, above a wavy horizon, or one side, like a wall)
                      replaced by a smooth colour gradient with very low-frequency variation
4. ``defocus_jpeg``   1 or 2, then both LR images JPEG-compressed at quality 75-90 (Pillow, 4:2:0)
5. ``sky_jpeg``       3, then JPEG as in 4
6. ``defocus_noise``  1 or 2, then Gaussian noise of sigma 1-3 (8-bit units) added to both LR images
7. ``sky_noise``      3, then noise as in 6

The edited scene is rounded to 8 bits and written as ``gt/``; it is then degraded exactly as the
``degrade`` verb does (one ``random_kernels`` draw per image, ``degrade``, 8-bit rounding), in the
DIV2KRK layout that ``blindsr.datasets.load_benchmark`` reads. All randomness of a part comes from
``numpy.random.default_rng(seed + offset)`` (tune: +0, report: +1), so the set is bit-reproducible.
``manifest.json`` in each part records every image's variant and parameters.

A third part, ``narrow/`` (tuning only, seed + 2), holds BSD100RK HR images 1-20 unedited but
blurred by kernels from the sharp corner of the protocol (covariance eigenvalues ~ U(0.6, 1.0)
instead of U(0.6, 5)): a camera kernel close to the bicubic one, where an estimate that errs wide
does worse than assuming bicubic. A fourth, ``narrow_hard/`` (tuning only, seed + 3), edits the
same images by the seven variants and blurs them with such sharp kernels: the two failure shapes
at once (a sharp camera kernel on a photo with a defocused background or a sky). A fifth, ``crops/``
(tuning only, seed + 4), holds five unedited BSD100RK-sized windows (480x320, either way up) of each
of Urban100RK HR images 1-8 under protocol kernels: plain photos whose content, not a defocused
background, varies in sharpness from tile to tile (where the refinement must not mistake one for
the other). A sixth, ``shake/`` (reporting only, seed + 5), holds BSD100RK HR images 21-40 (scenes
of the held-out BSD100RK images) unedited under hand-shake kernels (``shake_kernels``: a curved
motion path of 3-8 HR px seen through a small lens blur), a kernel shape the protocol's Gaussians
never take. A seventh, ``phone/`` (reporting only, seed + 6), holds BSD100RK HR images 41-60
unedited under protocol kernels, their LR images given noise of sigma 2-6 (8-bit units) and then
JPEG quality 50-70: a phone's or a web page's photo, more degraded than the other parts' variants.
An eighth, ``phone_tune/`` (tuning only, seed + 7), makes the same from BSD100RK HR images 1-20.
A ninth, ``sharp_tune/`` (tuning only, seed + 8), holds BSD100RK HR images 1-20 unedited under
protocol kernels, their LR images given mild noise (sigma 1-3), then sharpened as a camera does
before saving (an unsharp mask: LR + amount x (LR - Gaussian blur of radius 0.8-1.5 LR px), amount
0.6-1.5), then JPEG quality 85-95: the in-camera processing of most photos people have, which no
blur kernel can explain (sharpening lifts the frequencies a blur lowers). A tenth, ``sharp/``
(reporting only, seed + 9), makes the same from BSD100RK HR images 61-80. An eleventh,
``sharp_tune_plain/`` (tuning only, seed + 8 like ``sharp_tune/``), is ``sharp_tune/`` without the
unsharp mask: the same kernels, noise and JPEG qualities, so the two differ by the sharpening alone.
A twelfth, ``linear_tune/`` (tuning only, seed + 10), holds BSD100RK HR images 1-20 unedited under
protocol kernels applied to their linear light (sRGB-decoded, blurred and sampled, encoded again:
``blindsr.light``), as a camera's optics blur the light before its tone curve; a thirteenth,
``linear_tune_plain/`` (seed + 10), the same images and kernels blurred as the protocol does, on
the encoded values, so the two differ by where the blur acted alone; a fourteenth, ``linear/``
(reporting only, seed + 11), makes ``linear_tune/``'s kind from BSD100RK HR images 81-100.
A fifteenth, ``sky_tune/`` (tuning only, seed + 12), edits BSD100RK HR images 1-20 by the sky
variants alone (``sky_jpeg``, ``sky``, ``sky_noise`` in turn), and a sixteenth,
``urban_sky_tune/`` (tuning only, seed + 13), Urban100RK HR images 1-8 likewise: skies and walls
over buildings, JPEG among them, the scenes on which the refinement can run to its bound.

    python -m benchmarks.hard_set --shared ../shared/data --output hard_set [--seed 4004]
"""
from __future__ import annotations

import argparse
import io
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image
from scipy import io as sio
from scipy import ndimage, signal

ROOT = Path(__file__).resolve().parents[1]
from blindsr.degradation import DIV2KRK_EIGEN_RANGE, DIV2KRK_SIZES, degrade, gaussian_kernel, quantize, random_kernels
from blindsr.images import read_image, write_image
from blindsr.kernel import recentre, write_kernel_array
from blindsr.light import decode, encode
from blindsr.outputs import atomic_write_bytes, write_json

VARIANTS = ("defocus_disk", "defocus_gauss", "sky", "defocus_jpeg", "sky_jpeg", "defocus_noise", "sky_noise")
SKY_VARIANTS = ("sky_jpeg", "sky", "sky_noise")
NARROW_EIGEN_RANGE = (0.6, 1.0)
SHAKE = "shake"  # a part's kernels: hand shake (``shake_kernels``) instead of a protocol eigenvalue range
# Source set, its HR image numbers, seed offset, variants (cyclically), kernel eigenvalue range (or SHAKE).
PARTS = {"tune": ("BSD100RK", range(1, 21), 0, VARIANTS, DIV2KRK_EIGEN_RANGE),
         "report": ("Urban100RK", range(9, 21), 1, VARIANTS, DIV2KRK_EIGEN_RANGE),
         "narrow": ("BSD100RK", range(1, 21), 2, ("plain",), NARROW_EIGEN_RANGE),
         "narrow_hard": ("BSD100RK", range(1, 21), 3, VARIANTS, NARROW_EIGEN_RANGE),
         "crops": ("Urban100RK", [n for n in range(1, 9) for _ in range(5)], 4, ("crop",), DIV2KRK_EIGEN_RANGE),
         "shake": ("BSD100RK", range(21, 41), 5, ("plain",), SHAKE),
         "phone": ("BSD100RK", range(41, 61), 6, ("phone",), DIV2KRK_EIGEN_RANGE),
         "phone_tune": ("BSD100RK", range(1, 21), 7, ("phone",), DIV2KRK_EIGEN_RANGE),
         "sharp_tune": ("BSD100RK", range(1, 21), 8, ("sharpened",), DIV2KRK_EIGEN_RANGE),
         "sharp": ("BSD100RK", range(61, 81), 9, ("sharpened",), DIV2KRK_EIGEN_RANGE),
         "sharp_tune_plain": ("BSD100RK", range(1, 21), 8, ("unsharpened",), DIV2KRK_EIGEN_RANGE),
         "linear_tune": ("BSD100RK", range(1, 21), 10, ("linear",), DIV2KRK_EIGEN_RANGE),
         "linear_tune_plain": ("BSD100RK", range(1, 21), 10, ("plain",), DIV2KRK_EIGEN_RANGE),
         "linear": ("BSD100RK", range(81, 101), 11, ("linear",), DIV2KRK_EIGEN_RANGE),
         # Skies and walls only, JPEG among them: the scenes on which the refinement can run to its
         # bound (its fallback rule is chosen on these, benchmarks/refinement_fallback.py).
         "sky_tune": ("BSD100RK", range(1, 21), 12, SKY_VARIANTS, DIV2KRK_EIGEN_RANGE),
         "urban_sky_tune": ("Urban100RK", range(1, 9), 13, SKY_VARIANTS, DIV2KRK_EIGEN_RANGE)}
SCALES = (2, 4)
REPORT_PARTS = ("report", "shake", "phone", "sharp", "linear")  # never used for a choice
DISK_RADIUS = (3.0, 12.0)
CROP = (480, 320)  # HR px (long side, short side): a BSD100 photo's size
GAUSS_SIGMA = (1.5, 6.0)
DEFOCUSED_FRACTION = (0.5, 0.8)
FLAT_FRACTION = (0.4, 0.7)
JPEG_QUALITY = (75, 90)
NOISE_SIGMA = (1.0, 3.0)
# A phone's or a web page's photo: sensor noise, then stronger JPEG compression than JPEG_QUALITY's.
PHONE_NOISE_SIGMA = (2.0, 6.0)
PHONE_JPEG_QUALITY = (50, 70)
# A camera's sharpening before it saves: an unsharp mask on the LR image (radius: the Gaussian's
# sigma in LR px), after mild sensor noise and before JPEG.
SHARPEN_RADIUS = (0.8, 1.5)
SHARPEN_AMOUNT = (0.6, 1.5)
SHARPEN_NOISE_SIGMA = (1.0, 3.0)
SHARPEN_JPEG_QUALITY = (85, 95)
# Hand shake: the path the image moves along during the exposure (HR px; its heading turns by a
# random walk of SHAKE_TURN rad per step of SHAKE_STEPS, its speed varies), seen through a lens
# blur of covariance eigenvalues SHAKE_OPTICS.
SHAKE_LENGTH = (3.0, 8.0)
SHAKE_OPTICS = (0.4, 0.8)
SHAKE_TURN = 0.12
SHAKE_STEPS = 200
# The focus transition of a real lens is gradual; a silhouette against the sky is sharp, so its
# mask is only anti-aliased.
FOCUS_FEATHER = 2.0
FLAT_FEATHER = 1.0
MAT_DESCRIPTION = b"MATLAB 5.0 MAT-file, written by blindsr benchmarks/hard_set.py"


def disk_kernel(radius: float, supersample: int = 8) -> np.ndarray:
    """A uniform disk of ``radius`` px, each tap its covered area (supersampled, so fractional
    radii give different kernels), normalised to sum 1."""
    half = int(np.ceil(radius))
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    fine = (np.arange(-half, half + 1)[:, None] + offsets[None, :]).ravel()
    inside = fine[:, None] ** 2 + fine[None, :] ** 2 <= radius ** 2
    n = 2 * half + 1
    k = inside.reshape(n, supersample, n, supersample).mean(axis=(1, 3))
    return k / k.sum()


def shake_kernels(rng: np.random.Generator, supersample: int = 8) -> tuple[dict[int, np.ndarray], dict[str, Any]]:
    """A hand-shake x2 kernel (11x11) and the x4 kernel two x2 steps compose to (31x31), with the
    parameters to record.

    The path: ``SHAKE_STEPS`` steps of equal length summing to a length ~ U(``SHAKE_LENGTH``), the
    heading a random walk from a uniform direction; the time spent at each point ~ 1 / U(0.3, 1)
    (the hand slows and speeds up). Splatted bilinearly onto a grid ``supersample`` times finer,
    summed into pixels, convolved with an anisotropic Gaussian (the lens, eigenvalues ~
    U(``SHAKE_OPTICS``), rotation uniform), centred by its centre of mass (linear shift) and
    normalised. x4: blurring by k2, sampling by 2 and doing both again is blurring by
    k2 * (k2 upsampled by zero insertion) then sampling by 4."""
    size = DIV2KRK_SIZES[2]
    length = rng.uniform(*SHAKE_LENGTH)
    heading = rng.uniform(-np.pi, np.pi) + np.cumsum(rng.normal(0.0, SHAKE_TURN, SHAKE_STEPS))
    path = np.cumsum(np.stack([np.sin(heading), np.cos(heading)], axis=1), axis=0) * (length / SHAKE_STEPS)
    dwell = 1.0 / rng.uniform(0.3, 1.0, SHAKE_STEPS)
    path -= dwell @ path / dwell.sum()
    fine = np.zeros((size * supersample,) * 2)
    position = (size * supersample - 1) / 2 + path * supersample
    corner = np.floor(position).astype(int)
    frac = position - corner
    for dy in (0, 1):
        for dx in (0, 1):
            weight = dwell * np.abs(1 - dy - frac[:, 0]) * np.abs(1 - dx - frac[:, 1])
            np.add.at(fine, (corner[:, 0] + dy, corner[:, 1] + dx), weight)
    trace = fine.reshape(size, supersample, size, supersample).sum(axis=(1, 3))
    eigen, theta = rng.uniform(*SHAKE_OPTICS, size=2), rng.uniform(-np.pi, np.pi)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    k2 = signal.convolve2d(trace, gaussian_kernel(size, rot @ np.diag(eigen) @ rot.T), mode="same")
    k2 = recentre(k2 / k2.sum(), order=1, size=size)
    k2 /= k2.sum()
    spread = np.zeros((2 * size - 1,) * 2)
    spread[::2, ::2] = k2
    k4 = signal.convolve2d(k2, spread)
    params = {"kernel": "hand shake", "length_px": round(float(length), 4),
              "optics_eigenvalues": [round(float(v), 4) for v in eigen], "optics_theta": round(float(theta), 4)}
    return {2: k2, 4: k4 / k4.sum()}, params


def blur(hr: np.ndarray, kind: str, size: float) -> np.ndarray:
    """``hr`` blurred by a disk of radius ``size`` or a Gaussian of sigma ``size`` (reflective
    borders, half-sample symmetric like ``degrade``)."""
    if kind == "gaussian":
        return ndimage.gaussian_filter(hr, (size, size, 0), mode="reflect")
    k = disk_kernel(size)
    r = k.shape[0] // 2
    padded = np.pad(hr, ((r, r), (r, r), (0, 0)), mode="symmetric")
    # FFT: a radius-12 disk has 600 taps, too many for a direct correlation on Urban100's sizes.
    return signal.fftconvolve(padded, k[:, :, None], mode="valid", axes=(0, 1))


def focus_mask(shape: tuple[int, int], defocused: float, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Soft in-focus mask (1 = sharp): a rotated ellipse with a wobbly outline (harmonics 2-4),
    centred within 10% of the frame centre, scaled so that ``defocused`` of the frame lies outside."""
    h, w = shape
    centre = np.array([h, w]) * (0.5 + rng.uniform(-0.1, 0.1, size=2))
    angle, aspect = rng.uniform(0, np.pi), rng.uniform(0.5, 1.0)
    amplitudes, phases = rng.uniform(0, 0.12, size=3), rng.uniform(0, 2 * np.pi, size=3)
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    y, x = rows - centre[0], cols - centre[1]
    u = x * np.cos(angle) + y * np.sin(angle)
    v = (y * np.cos(angle) - x * np.sin(angle)) / aspect
    phi = np.arctan2(v, u)
    outline = 1 + sum(a * np.cos(k * phi + p) for k, a, p in zip((2, 3, 4), amplitudes, phases))
    # Star-shaped level sets: thresholding at a quantile scales the blob to the exact area.
    level = np.hypot(u, v) / outline
    sharp = level <= np.quantile(level, 1 - defocused)
    params = {"defocused_fraction": round(float(1 - sharp.mean()), 4),
              "centre_rc": [round(float(c), 1) for c in centre], "angle": round(float(angle), 4),
              "aspect": round(float(aspect), 4), "feather_sigma_px": FOCUS_FEATHER}
    return ndimage.gaussian_filter(sharp.astype(np.float64), FOCUS_FEATHER), params


def defocus(hr: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Keep a central subject sharp and defocus the rest by a disk or Gaussian blur."""
    size = rng.uniform(*(DISK_RADIUS if kind == "disk" else GAUSS_SIGMA))
    mask, params = focus_mask(hr.shape[:2], rng.uniform(*DEFOCUSED_FRACTION), rng)
    mask = mask[:, :, None]
    scene = mask * hr + (1 - mask) * blur(hr, kind, size)
    size_key = "radius_px" if kind == "disk" else "sigma_px"
    return np.clip(scene, 0, 1), {"type": kind, size_key: round(float(size), 4), **params}


def low_frequency(shape: tuple[int, int], rng: np.random.Generator, terms: int = 4) -> np.ndarray:
    """A smooth random field of unit peak amplitude: a few plane waves of at most 1.5 cycles per
    frame (the slow variation of a real sky or a lit wall)."""
    h, w = shape
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    field = np.zeros(shape)
    for fy, fx, phase in zip(rng.uniform(-1.5, 1.5, terms), rng.uniform(-1.5, 1.5, terms),
                             rng.uniform(0, 2 * np.pi, terms)):
        field += np.cos(2 * np.pi * (fy * rows / h + fx * cols / w) + phase)
    return field / terms


def flat_region(shape: tuple[int, int], fraction: float, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of the region to flatten: above a wavy horizon (sky: 1-4 cycles across, up to
    5% of the height) or beside a slightly slanted vertical edge (wall, left or right)."""
    h, w = shape
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    if kind == "sky":
        cycles, amplitudes = rng.integers(1, 5, size=3), rng.uniform(0, 0.05 * h / 3, size=3)
        phases = rng.uniform(0, 2 * np.pi, size=3)
        horizon = sum(a * np.sin(2 * np.pi * c * cols / w + p) for c, a, p in zip(cycles, amplitudes, phases))
        depth = rows - horizon
    else:
        slope = rng.uniform(-0.15, 0.15)
        depth = cols - slope * (rows - h / 2)
        if rng.integers(2):
            depth = -depth
    # The quantile of the distance past the edge places the edge at the exact area.
    return depth <= np.quantile(depth, fraction)


def flat_fill(hr: np.ndarray, region: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """The smooth replacement: a blue sky paling towards the horizon, or a wall in the replaced
    region's mean colour under a gentle lighting ramp; both with a 2% low-frequency variation."""
    h, w = region.shape
    if kind == "sky":
        rows = np.arange(h, dtype=np.float64)[:, None, None]
        zenith = np.array([rng.uniform(0.2, 0.45), rng.uniform(0.4, 0.65), rng.uniform(0.7, 0.95)])
        horizon = zenith + (1 - zenith) * rng.uniform(0.4, 0.8)
        bottom = max(int(np.nonzero(region.any(axis=1))[0].max()), 1)
        t = np.clip(rows / bottom, 0, 1)
        base = (1 - t) * zenith + t * horizon
    else:
        colour = hr[region].mean(axis=0)
        ramp = np.linspace(-1, 1, w)[None, :, None]
        base = colour * (1 + rng.uniform(-0.15, 0.15) * ramp)
    fill = base + 0.02 * low_frequency((h, w), rng)[:, :, None]
    return np.clip(np.broadcast_to(fill, hr.shape), 0, 1)


def flatten(hr: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Replace 40-70% of the frame by a smooth sky or wall, feathered into the rest."""
    kind = ("sky", "wall")[rng.integers(2)]
    region = flat_region(hr.shape[:2], rng.uniform(*FLAT_FRACTION), kind, rng)
    mask = ndimage.gaussian_filter(region.astype(np.float64), FLAT_FEATHER)[:, :, None]
    scene = mask * flat_fill(hr, region, kind, rng) + (1 - mask) * hr
    return np.clip(scene, 0, 1), {"type": kind, "flat_fraction": round(float(region.mean()), 4),
                                  "feather_sigma_px": FLAT_FEATHER}


def jpeg(lr: np.ndarray, quality: int) -> np.ndarray:
    """``lr`` rounded to 8 bits, JPEG-compressed by Pillow (default 4:2:0) and decoded."""
    pixels = np.round(quantize(lr) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"), dtype=np.float64) / 255


def edit_scene(hr: np.ndarray, variant: str, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """The variant's scene edit and the parameters to record (``defocus`` or ``flat``)."""
    if variant in ("plain", "phone", "sharpened", "unsharpened", "linear"):
        return hr, {"defocus": None, "flat": None}
    if variant == "crop":
        window = CROP if rng.integers(2) else CROP[::-1]
        top = int(rng.integers(hr.shape[0] - window[1] + 1))
        left = int(rng.integers(hr.shape[1] - window[0] + 1))
        return hr[top:top + window[1], left:left + window[0]], {"defocus": None, "flat": None,
                                                                 "crop": {"top": top, "left": left}}
    if variant.startswith("sky"):
        scene, params = flatten(hr, rng)
        return scene, {"defocus": None, "flat": params}
    kind = {"defocus_disk": "disk", "defocus_gauss": "gaussian"}.get(variant)
    scene, params = defocus(hr, kind or ("disk", "gaussian")[rng.integers(2)], rng)
    return scene, {"defocus": params, "flat": None}


def unsharp_mask(image: np.ndarray, radius: float, amount: float) -> np.ndarray:
    """``image + amount * (image - G_radius * image)``, per colour, G a Gaussian of sigma
    ``radius`` px (edges mirrored); not clipped."""
    blurred = ndimage.gaussian_filter(image, sigma=(radius, radius, 0), mode="mirror")
    return image + amount * (image - blurred)


def low_resolution(scene: np.ndarray, kernel: np.ndarray, scale: int, quality: int | None, sigma: float,
                   rng: np.random.Generator, sharpen: tuple[float, float] | None = None,
                   light: str = "encoded") -> np.ndarray:
    """The reference degradation of ``scene`` (of its linear light, encoded again, when ``light``
    is "linear"), then noise of ``sigma`` (8-bit units) if any, then an unsharp mask of (radius,
    amount) ``sharpen`` if given, then 8-bit rounding, or JPEG at ``quality`` if given."""
    lr = encode(degrade(decode(scene, light), kernel, scale), light)
    if sigma:
        lr = lr + rng.normal(0, sigma / 255, size=lr.shape)
    if sharpen is not None:
        lr = unsharp_mask(lr, *sharpen)
    return quantize(lr) if quality is None else jpeg(lr, quality)


def write_mat(path: Path, kernel: np.ndarray) -> None:
    """``write_kernel_array``'s .mat file (variable ``Kernel``) with a fixed 116-byte description:
    scipy stamps the creation time into it, which would make every run's files differ."""
    buf = io.BytesIO()
    sio.savemat(buf, {"Kernel": kernel})
    atomic_write_bytes(path, MAT_DESCRIPTION.ljust(116, b"\0") + buf.getvalue()[116:])


def make_part(shared: Path, source: str, sources: Sequence[int], out: Path, seed: int, variants: tuple[str, ...],
              kernels_from: tuple[float, float] | str) -> list[dict[str, Any]]:
    """Write one part (DIV2KRK layout, numbered from 1) from ``source``'s gt images ``sources``,
    edited by ``variants`` in turn, blurred by protocol kernels of covariance eigenvalues in
    ``kernels_from`` or (``SHAKE``) by hand-shake kernels; the manifest's image records."""
    for folder in ["gt"] + [f"{kind}{s}" for s in SCALES for kind in ("lr_x", "gt_k_x")]:
        (out / folder).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    records = []
    for number, original in enumerate(sources, start=1):
        variant = variants[(number - 1) % len(variants)]
        hr = read_image(shared / source / "gt" / f"im_{original}.png").rgb
        hr = hr[:hr.shape[0] // 4 * 4, :hr.shape[1] // 4 * 4]
        if kernels_from == SHAKE:
            kernels, kernel_params = shake_kernels(rng)
        else:
            drawn = random_kernels(rng, kernels_from)
            kernels, kernel_params = {s: np.asarray(k.array) for s, k in drawn.items()}, drawn[2].provenance
        scene, params = edit_scene(hr, variant, rng)
        scene = quantize(scene)  # gt/ is 8-bit, so the LR must come from exactly what it holds
        sharpen = None
        light = "linear" if variant == "linear" else "encoded"
        if variant == "phone":
            quality = int(rng.integers(PHONE_JPEG_QUALITY[0], PHONE_JPEG_QUALITY[1] + 1))
            sigma = float(rng.uniform(*PHONE_NOISE_SIGMA))
        elif variant in ("sharpened", "unsharpened"):  # the same draws, so that the two differ by the mask
            quality = int(rng.integers(SHARPEN_JPEG_QUALITY[0], SHARPEN_JPEG_QUALITY[1] + 1))
            sigma = float(rng.uniform(*SHARPEN_NOISE_SIGMA))
            mask = (float(rng.uniform(*SHARPEN_RADIUS)), float(rng.uniform(*SHARPEN_AMOUNT)))
            sharpen = mask if variant == "sharpened" else None
        else:
            quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)) if variant.endswith("jpeg") else None
            sigma = float(rng.uniform(*NOISE_SIGMA)) if variant.endswith("noise") else 0.0
        write_image(out / "gt" / f"im_{number}.png", scene)
        for s in SCALES:
            k = kernels[s]
            write_kernel_array(out / f"gt_k_x{s}" / f"kernel_{number}.npy", k)
            write_mat(out / f"gt_k_x{s}" / f"kernel_{number}.mat", k)
            write_image(out / f"lr_x{s}" / f"im_{number}.png",
                        low_resolution(scene, k, s, quality, sigma, rng, sharpen, light))
        records.append({"number": number, "source": f"{source}/gt/im_{original}.png",
                        "variant": variant, "size": [scene.shape[1], scene.shape[0]], **params,
                        "jpeg_quality": quality, "noise_sigma": round(sigma, 4), **kernel_params,
                        **({"light": light} if light != "encoded" else {}),
                        **({"unsharp_mask": {"radius_lr_px": round(sharpen[0], 4), "amount": round(sharpen[1], 4)}}
                           if sharpen is not None else {})})
    return records


def manifest(part: str, seed: int, variants: tuple[str, ...], kernels_from: tuple[float, float] | str,
             records: list[dict[str, Any]]) -> dict[str, Any]:
    """The part's manifest: how it was made, and the image records."""
    kernels = ("hand-shake kernels (benchmarks/hard_set.py, shake_kernels)" if kernels_from == SHAKE
               else "DIV2KRK kernels (blindsr.degradation.random_kernels)")
    return {"protocol": f"hard development set (benchmarks/hard_set.py) on {kernels}",
            "part": part, "use": "reporting only, never for a choice" if part in REPORT_PARTS else "choosing defaults",
            "seed": seed, "scales": list(SCALES), "variants": list(variants),
            "ranges": {**({"shake_length_px": SHAKE_LENGTH, "shake_optics_eigenvalues": SHAKE_OPTICS}
                          if kernels_from == SHAKE else {"kernel_eigenvalues": kernels_from}),
                       "disk_radius_px": DISK_RADIUS, "gaussian_sigma_px": GAUSS_SIGMA,
                       "defocused_fraction": DEFOCUSED_FRACTION, "flat_fraction": FLAT_FRACTION,
                       "jpeg_quality": JPEG_QUALITY, "noise_sigma_8bit": NOISE_SIGMA,
                       **({"phone_jpeg_quality": PHONE_JPEG_QUALITY, "phone_noise_sigma_8bit": PHONE_NOISE_SIGMA}
                          if "phone" in variants else {}),
                       **({"sharpen_radius_lr_px": SHARPEN_RADIUS, "sharpen_amount": SHARPEN_AMOUNT,
                           "sharpen_noise_sigma_8bit": SHARPEN_NOISE_SIGMA,
                           "sharpen_jpeg_quality": SHARPEN_JPEG_QUALITY}
                          if {"sharpened", "unsharpened"} & set(variants) else {})},
            "images": records}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data",
                        help="the development data (holds BSD100RK/ and Urban100RK/)")
    parser.add_argument("--output", type=Path, default=ROOT / "hard_set")
    parser.add_argument("--seed", type=int, default=4004,
                        help="each part's seed is this plus its offset: "
                             + ", ".join(f"{part}/ + {spec[2]}" for part, spec in PARTS.items()))
    args = parser.parse_args()
    start = time.perf_counter()
    for part, (source, sources, offset, variants, kernels_from) in PARTS.items():
        records = make_part(args.shared, source, sources, args.output / part, args.seed + offset, variants, kernels_from)
        write_json(args.output / part / "manifest.json",
                   manifest(part, args.seed + offset, variants, kernels_from, records))
        print(f"{part}: {len(records)} images from {source} -> {args.output / part}", flush=True)
    print(f"done in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
