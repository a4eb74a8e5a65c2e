"""The noise level SRMD needs on JPEG photos (make bench-jpeg-noise -> the 'jpeg-noise' section).

A phone's or a web page's photo carries sensor noise and then JPEG compression. The blind noise
level (``blindsr.estimators.noise``) measures the noise that is left in the decoded image; JPEG
has removed most of its high frequencies and added its own error (blocks, ringing), which is not
white noise and which that fit barely sees. SRMD, told that small sigma, sharpens the compression
error. This benchmark measures which sigma SRMD needs on such photos and how far ``sr.noise=auto``
is from it.

Images are made here (never committed): BSD100RK HR scenes blurred and subsampled by their own
true x2 kernel (the DIV2KRK protocol's), Gaussian noise of ``sigma`` (8-bit units), then 8-bit
rounding and written as PNG, or JPEG-compressed by Pillow at ``quality`` (4:2:0) and written as
the .jpg file itself, which is what the tool reads (``blindsr.images.read_image``). SRMD gets the
true kernel as the pipeline hands it over, and a grid of sigmas, or the sigma ``sr.noise=auto``
gives. Scenes 1-10 are for choosing (``--part study``); ``--part check`` reports on 21-40.
``--part zssr``: ZSSR's noise_std=auto with and without the compression term (tuning rows
decide, the others report). ``--part hard``: the hard set's phone parts and reporting part (PNG
files of decoded JPEGs, so the table is read from the pixels), SRMD with sr.noise=auto before the
compression term and now, with the true kernel and with the default KernelGAN estimate.
``--part shot``: a sensor's noise instead of white noise (``make_shot_lr``: shot and read noise
added to the linear light, then the sRGB curve, so the noise in the stored values depends on the
brightness and is largest in the shadows), which SRMD's one sigma per image cannot match
everywhere: how far ``sr.noise=auto`` is from the best single sigma, and what the default
KernelGAN estimate does on such photos. Results are cached in ``--work``; an interrupted run
resumes.

    python -m benchmarks.jpeg_noise --shared ../shared/data [--part study|check|hard|zssr|shot]
        [--hard-set hard_set]
"""
from __future__ import annotations

import argparse
import io
import json
import math
import sys
from pathlib import Path

import numpy as np

from blindsr.tables import mean_p10_worst, mean_worst

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STUDY_SIGMAS = (0.0, 3.0, 6.0)  # true noise, 8-bit units
STUDY_QUALITIES = (None, 50, 70, 85, 95)  # None: PNG (no compression)
STUDY_SCENES = tuple(range(1, 11))
# The check uses other noise levels and qualities than the study, on scenes no choice touched.
CHECK_SIGMAS = (0.0, 4.0)
CHECK_QUALITIES = (None, 55, 75, 90)
CHECK_SCENES = tuple(range(21, 41))
GRID = (0.0, 2.5, 5.0, 7.5, 10.0, 12.5, 15.0)  # sigmas SRMD is given; the best is the oracle
WEIGHTS = tuple(np.round(np.arange(0.5, 4.01, 0.25), 2))
EXPONENTS = (0.5, 0.75, 1.0)
BOOSTS = (1.0, 1.25, 1.5, 1.75, 2.0)
SEED = 5021
# Hard-set parts (benchmarks/hard_set.py, PNG files: the table is read from the pixels), with the
# true kernel and with the default KernelGAN estimate; phone_tune is a tuning part, shown apart.
HARD_PARTS = (("phone_tune", "tune"), ("phone", "report"), ("report", "report"))
HARD_IMAGES = 20
# ZSSR (the default back-end, fast preset, sr.noise_std=auto): decided on the tuning rows, reported
# on the others.
ZSSR_ROWS = ((STUDY_SCENES, 0.0, 50, "tune"), (STUDY_SCENES, 0.0, 85, "tune"),
             (tuple(range(21, 31)), 0.0, 55, "report"), (tuple(range(21, 31)), 0.0, 90, "report"),
             (tuple(range(21, 31)), 4.0, 55, "report"), (tuple(range(21, 31)), 4.0, 90, "report"))


# Sensor noise (``make_shot_lr``): (name, read-noise sigma, shot-noise gain) in linear light [0, 1]
# (variance = read^2 + gain * light), three ISO-like levels; and the scenes, tuning and reporting.
SHOT_LEVELS = (("low", 0.001, 1.5e-4), ("mid", 0.002, 5e-4), ("high", 0.004, 1.5e-3))
SHOT_SCENES = ((tuple(range(1, 11)), "tune"), (tuple(range(21, 31)), "report"))
ESTIMATES = ("uncorrected", "corrected")  # the default estimate without and with kernelgan.noise_corrected


def condition(sigma: float, quality: int | None) -> str:
    return f"s{sigma:g}_q{quality or 0}"


def scene_lr(shared: Path, number: int) -> np.ndarray:
    """BSD100RK scene ``number`` blurred and subsampled x2 by its true kernel, as the protocol does
    (float, before noise and rounding)."""
    from blindsr.degradation import degrade
    from blindsr.images import read_image
    from blindsr.kernel import load_kernel

    root = shared / "BSD100RK"
    return degrade(read_image(root / "gt" / f"im_{number}.png").rgb,
                   load_kernel(root / "gt_k_x2" / f"kernel_{number}.mat", scale=2), 2)


def write_lr(path: Path, lr: np.ndarray, quality: int | None = None) -> Path:
    """``lr`` rounded to 8 bits and written to ``path`` as PNG, or as JPEG at ``quality``."""
    from PIL import Image

    from blindsr.outputs import atomic_write_bytes

    pixels = np.round(np.clip(lr, 0.0, 1.0) * 255.0).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, **({"format": "PNG"} if quality is None else
                                            {"format": "JPEG", "quality": quality}))
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(path, buffer.getvalue())


def make_lr(shared: Path, number: int, sigma: float, quality: int | None, work: Path) -> Path:
    """The LR file of scene ``number`` under (sigma, quality), made once."""
    path = work / "lr" / f"im_{number}_{condition(sigma, quality)}{'.png' if quality is None else '.jpg'}"
    if path.exists():
        return path
    rng = np.random.default_rng([SEED, number, int(sigma * 10), quality or 0])
    lr = scene_lr(shared, number)
    if sigma:
        lr = lr + rng.normal(0.0, sigma / 255.0, size=lr.shape)
    return write_lr(path, lr, quality)


def y_psnr(sr: np.ndarray, hr: np.ndarray) -> float:
    """Y-PSNR of an x2 result rounded to 8 bits, as the eval verb scores it."""
    from blindsr.degradation import quantize
    from blindsr.metrics import y_psnr_ssim

    return float(y_psnr_ssim(quantize(sr), hr[:sr.shape[0], :sr.shape[1]], 2)[0])


def handed_over(kernel) -> dict:
    """The x2 kernel as the pipeline hands it to SR (narrowed to the handoff width)."""
    from blindsr.config import HANDOFF_WIDTH
    from blindsr.stages import handoff_kernels

    return handoff_kernels({2: kernel}, HANDOFF_WIDTH)


def sr_now(image, kernel, backend) -> tuple[np.ndarray, dict]:
    """x2 through the pipeline's SR stage, which passes the image's compression on; the result and
    the stage's record."""
    from blindsr.stages import super_resolve

    sr, _, record = super_resolve(image, handed_over(kernel), backend, 2, 0)
    return sr, record


def sr_before(image, kernel, backend) -> np.ndarray:
    """x2 as before the compression term: the back-end called without the image's compression."""
    from blindsr.backends import adapt

    return backend.super_resolve(image.rgb, 2, adapt(handed_over(kernel), backend.needs, 2)).image


def sr_psnr(image, hr: np.ndarray, kernel, noise: float | str) -> float:
    """SRMD x2's Y-PSNR with ``kernel`` handed over as the pipeline does and ``noise`` (a sigma,
    or "auto": what ``sr.noise=auto`` gives, the image's compression included)."""
    from blindsr.backends import get_backend

    return y_psnr(sr_now(image, kernel, get_backend("srmd", device="cpu", noise=noise))[0], hr)


def scores(shared: Path, number: int, sigma: float, quality: int | None, work: Path, grid: tuple[float, ...],
           automatic: bool) -> dict:
    """SRMD's Y-PSNR with the true kernel for every ``grid`` sigma and for the white noise fitted
    under the true kernel ("fitted", what ``sr.noise=auto`` gave before the compression term);
    with ``automatic`` also for ``sr.noise=auto`` as it is now, reading the file ("auto") and the
    same pixels without the file's table ("auto, PNG of it": the table read from the pixels).
    Cached per image and condition."""
    cache = work / "scores" / f"im_{number}_{condition(sigma, quality)}.json"
    result = json.loads(cache.read_text()) if cache.exists() else {"psnr": {}}
    from dataclasses import replace

    from blindsr.estimators.compression import compression_record
    from blindsr.estimators.noise import estimate_noise
    from blindsr.images import read_image
    from blindsr.kernel import load_kernel

    root = shared / "BSD100RK"
    kernel = load_kernel(root / "gt_k_x2" / f"kernel_{number}.mat", scale=2)
    image = read_image(make_lr(shared, number, sigma, quality, work))
    wanted = [f"{s:g}" for s in grid] + ["fitted"] + (["auto"] + (["auto, PNG of it"] if quality else [])
                                                     if automatic else [])
    if all(k in result["psnr"] for k in wanted):
        return result
    hr = read_image(root / "gt" / f"im_{number}.png").rgb
    result["fitted"] = estimate_noise(image.rgb, kernel.array, 2)["sigma"]
    record = compression_record(image.jpeg_luma_table, image.rgb)
    result["compression_sigma"] = record["sigma"] if record else None
    result["quality_read"] = record["quality"] if record else None
    for key in wanted:
        if key in result["psnr"]:
            continue
        if key == "auto":
            result["psnr"][key] = sr_psnr(image, hr, kernel, "auto")
        elif key == "auto, PNG of it":
            png = replace(image, jpeg_luma_table=None)
            found = compression_record(None, png.rgb)
            result["png_quality_read"] = found["quality"] if found else None
            result["psnr"][key] = sr_psnr(png, hr, kernel, "auto")
        else:
            result["psnr"][key] = sr_psnr(image, hr, kernel, result["fitted"] if key == "fitted" else float(key))
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(result))
    return result


def interpolated(result: dict, sigma: float) -> float:
    """PSNR at ``sigma`` read off the grid (linear between grid sigmas; the grid spans 0-15)."""
    xs = [float(k) for k in result["psnr"] if k.replace(".", "").isdigit()]
    return float(np.interp(sigma, sorted(xs), [result["psnr"][f"{x:g}"] for x in sorted(xs)]))


def best(result: dict) -> float:
    return max(v for k, v in result["psnr"].items() if k.replace(".", "").isdigit())


def study(shared: Path, work: Path) -> str:
    """Part ``study``: the grid on the tuning scenes, and every (boost, weight, exponent) of
    sr_sigma = hypot(boost * fitted, weight * table_sigma^exponent) read off it."""
    results = {(sigma, quality): [scores(shared, n, sigma, quality, work, GRID, False) for n in STUDY_SCENES]
               for sigma in STUDY_SIGMAS for quality in STUDY_QUALITIES}
    rows = []
    for (sigma, quality), found in results.items():
        row = {"noise sigma": sigma, "JPEG quality": quality or "none (PNG)",
               "fitted sigma": np.mean([r["fitted"] for r in found]),
               "table sigma": found[0]["compression_sigma"] if quality else None}
        row.update({f"SRMD {k}": np.mean([r["psnr"][k] for r in found]) for k in [f"{s:g}" for s in GRID] + ["fitted"]})
        rows.append(row)
    fits = []
    compressed = [r for (sigma, quality), found in results.items() if quality for r in found]
    for boost in BOOSTS:
        for exponent in EXPONENTS:
            for weight in WEIGHTS:
                said = [interpolated(r, math.hypot(boost * r["fitted"], weight * r["compression_sigma"] ** exponent))
                        for r in compressed]
                gains = [v - r["psnr"]["fitted"] for v, r in zip(said, compressed)]
                to_best = [v - best(r) for v, r in zip(said, compressed)]
                fits.append({"boost": boost, "weight": weight, "exponent": exponent, "mean gain": np.mean(gains),
                             "worst gain": min(gains), "mean to best grid": np.mean(to_best),
                             "p10 to best grid": np.percentile(to_best, 10), "worst to best grid": min(to_best)})
    chosen = max(fits, key=lambda f: f["mean gain"])
    from blindsr.tables import markdown_table

    top = sorted(fits, key=lambda f: -f["mean gain"])[:8]
    return (f"BSD100RK scenes {STUDY_SCENES[0]}-{STUDY_SCENES[-1]} (tuning), x2, true kernels, SRMD given the grid "
            "sigmas or the white noise fitted under the true kernel ('fitted': sr.noise=auto before the "
            "compression term); mean Y-PSNR over the scenes.\n\n"
            + markdown_table(rows, list(rows[0]), digits=2)
            + "\n\nsr_sigma = hypot(boost * fitted, weight * table_sigma^exponent) on the compressed conditions "
            f"({len(compressed)} images), PSNR read off the grid (linear between its sigmas); gain over 'fitted', "
            "and distance to the image's best grid sigma (mean and worst); the 8 best of "
            f"{len(fits)} by mean gain:\n\n"
            + markdown_table(top, list(top[0]), digits=2)
            + f"\n\nBest by mean gain: boost {chosen['boost']:g}, weight {chosen['weight']:g}, "
            f"exponent {chosen['exponent']:g}.")


def check(shared: Path, work: Path) -> tuple[str, list[str]]:
    """Part ``check``: sr.noise=auto as it is now against the fitted white noise and the best grid
    sigma, on scenes and conditions that chose nothing."""
    from blindsr.estimators.compression import (BOOSTED_NOISE_LIMIT, COMPRESSED_NOISE_BOOST,
                                                COMPRESSION_EXPONENT, COMPRESSION_WEIGHT)
    from blindsr.tables import markdown_table

    rows, lines = [], []
    for sigma in CHECK_SIGMAS:
        for quality in CHECK_QUALITIES:
            found = [scores(shared, n, sigma, quality, work, GRID, True) for n in CHECK_SCENES]
            gain = [r["psnr"]["auto"] - r["psnr"]["fitted"] for r in found]
            to_best = [r["psnr"]["auto"] - best(r) for r in found]
            row = {"noise sigma": sigma, "JPEG quality": quality or "none (PNG)",
                   "quality read (file / pixels)": (f"{min(r['quality_read'] for r in found)}-"
                                                    f"{max(r['quality_read'] for r in found)} / "
                                                    + ("-".join(str(f(r.get("png_quality_read") or 0 for r in found))
                                                                for f in (min, max))))
                   if quality else "none / none",
                   "SRMD fitted (before)": np.mean([r["psnr"]["fitted"] for r in found]),
                   "SRMD auto (now)": np.mean([r["psnr"]["auto"] for r in found]),
                   "SRMD auto, PNG of it": (np.mean([r["psnr"]["auto, PNG of it"] for r in found])
                                            if quality else None),
                   "best grid sigma": np.mean([best(r) for r in found]),
                   "now - before mean / p10 / worst": mean_p10_worst(gain, signed=True),
                   "now - best grid mean / p10 / worst": mean_p10_worst(to_best, signed=True)}
            rows.append(row)
            if quality:
                lines.append(f"noise {sigma:g}, quality {quality}: auto gains {np.mean(gain):+.2f} dB on average "
                             f"(worst image {min(gain):+.2f}), {np.mean(to_best):+.2f} dB from the best grid sigma")
            else:
                lines.append(f"noise {sigma:g}, PNG: auto {np.mean(gain):+.3f} dB against before (no compression "
                             "read, so no compression term; what differs is the kernel the white noise is fitted "
                             "under: the handed-over, narrowed one in auto, the true one in 'fitted')")
    text = (f"BSD100RK scenes {CHECK_SCENES[0]}-{CHECK_SCENES[-1]} (no choice touched them), x2, true kernels, noise "
            f"and JPEG qualities other than the study's; sr_sigma = hypot({COMPRESSED_NOISE_BOOST:g} * fitted "
            f"(boosted in its first {BOOSTED_NOISE_LIMIT:g} only), "
            f"{COMPRESSION_WEIGHT:g} * table_sigma^{COMPRESSION_EXPONENT:g}). 'auto (now)' is sr.noise=auto "
            "through the pipeline's own SR stage on the .jpg file (its table); 'PNG of it' the same pixels "
            "without the file (the table read from the pixels); 'fitted (before)' SRMD given the white "
            "noise alone, which is what auto gave before; 'best grid sigma' the best of "
            f"{', '.join(f'{s:g}' for s in GRID)} per image (an oracle). Y-PSNR means over the scenes; "
            "differences per image.\n\n" + markdown_table(rows, list(rows[0]), digits=2))
    return text, lines


def hard_scores(root: Path, number: int, work: Path) -> dict:
    """One hard-set image: SRMD with sr.noise=auto before and now, with the true kernel and with
    the default KernelGAN estimate (made once, seed 0, kept in ``work``). Cached."""
    cache = work / "scores.json"
    scores_all = json.loads(cache.read_text()) if cache.exists() else {}
    if f"im_{number}" in scores_all:
        return scores_all[f"im_{number}"]
    from blindsr.backends import get_backend
    from blindsr.estimators import get_estimator
    from blindsr.estimators.compression import compression_record
    from blindsr.images import read_image
    from blindsr.kernel import kernel_paths, load_kernel, save_kernel

    image = read_image(root / "lr_x2" / f"im_{number}.png")
    hr = read_image(root / "gt" / f"im_{number}.png").rgb
    saved = kernel_paths(work / "kernels", f"im_{number}", 2)["npy"]
    if not saved.exists():
        estimate = get_estimator("kernelgan", device="cpu").estimate(image.rgb, 2, seed=0)
        saved.parent.mkdir(parents=True, exist_ok=True)
        save_kernel(estimate.kernels[2], work / "kernels", f"im_{number}")
    found = compression_record(None, image.rgb)
    result = {"quality_read": found["quality"] if found else None}
    for name, kernel in (("true", load_kernel(root / "gt_k_x2" / f"kernel_{number}.npy", 2)),
                         ("estimate", load_kernel(saved))):
        result[f"{name} before"] = y_psnr(sr_before(image, kernel, get_backend("srmd", device="cpu")), hr)
        result[f"{name} now"] = sr_psnr(image, hr, kernel, "auto")
    scores_all[f"im_{number}"] = result
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(scores_all))
    return result


def false_tables(shared: Path) -> str:
    """How many uncompressed benchmark LR images a table is read from (there should be none)."""
    from blindsr.estimators.compression import estimate_luma_table
    from blindsr.images import read_image

    found, total = [], 0
    for name in ("BSD100RK", "Urban100RK"):
        for scale in (2, 4):
            for path in sorted((shared / name / f"lr_x{scale}").glob("*.png")):
                total += 1
                if estimate_luma_table(read_image(path).rgb) is not None:
                    found.append(f"{name}/lr_x{scale}/{path.name}")
    return (f"Tables read from the pixels of the {total} uncompressed LR images of BSD100RK and Urban100RK "
            f"(x2 and x4): {len(found)}" + (f" ({', '.join(found)})" if found else "") + ".")


def hard(hard_set: Path, work: Path, shared: Path) -> str:
    """Part ``hard``: the hard set's phone parts and its reporting part, through the pixels."""
    from blindsr.tables import markdown_table

    rows = []
    for part, role in HARD_PARTS:
        manifest = json.loads((hard_set / part / "manifest.json").read_text())["images"][:HARD_IMAGES]
        found = {e["number"]: hard_scores(hard_set / part, e["number"], work / "hard" / part) for e in manifest}
        for compressed in (True, False):
            chosen = [e for e in manifest if bool(e.get("jpeg_quality")) == compressed]
            if not chosen:
                continue
            read = [found[e["number"]]["quality_read"] for e in chosen]
            truth = [e["jpeg_quality"] for e in chosen]
            row = {"part": f"{part} ({role})", "JPEG": "yes" if compressed else "no", "images": len(chosen),
                   "quality read right (within 2)": sum(r is not None and abs(r - t) <= 2 for r, t in zip(read, truth))
                   if compressed else f"{sum(r is None for r in read)} none read"}
            for name, label in (("true", "true kernel"), ("estimate", "default estimate")):
                before = [found[e["number"]][f"{name} before"] for e in chosen]
                now = [found[e["number"]][f"{name} now"] for e in chosen]
                row[f"{label}: before"], row[f"{label}: now"] = np.mean(before), np.mean(now)
                row[f"{label}: now - before mean / p10 / worst"] = mean_p10_worst([a - b for a, b in zip(now, before)], signed=True)
            rows.append(row)
    return ("Hard-set images (benchmarks/hard_set.py; PNG files, so the table is read from the pixels), x2, SRMD "
            "with sr.noise=auto before the compression term and now, given the true kernel or the default "
            "KernelGAN estimate (seed 0), handed over as the pipeline does; Y-PSNR means, differences per "
            "image. phone_tune is a tuning part (noise 2-6 then JPEG quality 50-70, like phone); report "
            "holds JPEG quality 75-90 variants beside uncompressed ones.\n\n"
            + markdown_table(rows, list(rows[0]), digits=2) + "\n\n" + false_tables(shared))


def zssr_scores(shared: Path, number: int, sigma: float, quality: int, work: Path) -> dict:
    """ZSSR x2 (default preset, sr.noise_std=auto) with the true kernel on one JPEG file: as
    before the compression term (the back-end called without the image's compression) and now
    (through the pipeline's SR stage). Cached."""
    cache = work / "zssr" / f"im_{number}_{condition(sigma, quality)}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    from blindsr.backends import get_backend
    from blindsr.images import read_image
    from blindsr.kernel import load_kernel

    root = shared / "BSD100RK"
    kernel = load_kernel(root / "gt_k_x2" / f"kernel_{number}.mat", scale=2)
    image = read_image(make_lr(shared, number, sigma, quality, work))
    hr = read_image(root / "gt" / f"im_{number}.png").rgb
    backend = get_backend("zssr", device="cpu")
    before = sr_before(image, kernel, backend)
    now, record = sr_now(image, kernel, backend)
    result = {"before": y_psnr(before, hr), "now": y_psnr(now, hr)}
    result["son_noise"] = record["diagnostics"].get("son_noise")
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(result))
    return result


def zssr_part(shared: Path, work: Path) -> str:
    """Part ``zssr``: ZSSR's sr.noise_std=auto with the compression term, against without."""
    from blindsr.tables import markdown_table

    rows = []
    for scenes, sigma, quality, role in ZSSR_ROWS:
        found = [zssr_scores(shared, n, sigma, quality, work) for n in scenes]
        gain = [r["now"] - r["before"] for r in found]
        rows.append({"scenes": f"{scenes[0]}-{scenes[-1]} ({role})", "noise sigma": sigma, "JPEG quality": quality,
                     "son noise sigma now (mean)": np.mean([(r["son_noise"] or {}).get("sigma", 0.0) for r in found]),
                     "ZSSR before": np.mean([r["before"] for r in found]),
                     "ZSSR now": np.mean([r["now"] for r in found]), "now - before mean / p10 / worst": mean_p10_worst(gain, signed=True)})
    return ("BSD100RK scenes as in the other parts (JPEG files made here), x2, true kernels, ZSSR's default "
            "(fast) preset with sr.noise_std=auto: before the compression term (the white noise alone: "
            "about 1-2 on these photos, below the noisy threshold of 2, so the sons stay clean) and now "
            "(the SRMD rule's sigma: noise on the sons, no back-projection). Seed 0; Y-PSNR means, "
            "differences per image.\n\n" + markdown_table(rows, list(rows[0]), digits=2))


def make_shot_lr(shared: Path, number: int, level: tuple[str, float, float], work: Path) -> tuple[Path, float]:
    """The LR file of scene ``number`` with sensor noise at ``level`` (``SHOT_LEVELS``), made once,
    and the RMS of the noise in the stored values (8-bit units). The scene is blurred and
    subsampled by its true kernel as the protocol does (in the stored values), then decoded to
    linear light, given Gaussian noise of variance read^2 + gain * light (shot noise, the
    Poisson count's Gaussian limit, and read noise), encoded again and rounded to 8 bits."""
    from blindsr.light import linear_to_srgb, srgb_to_linear

    name, read, gain = level
    path = work / "shot" / "lr" / f"im_{number}_{name}.png"
    record = path.with_suffix(".json")
    if path.exists() and record.exists():
        return path, json.loads(record.read_text())["rms_sigma"]
    rng = np.random.default_rng([SEED, number, int(read * 1e4), int(gain * 1e6)])
    clean = np.clip(scene_lr(shared, number), 0.0, 1.0)
    light = srgb_to_linear(clean)
    noise = rng.normal(size=light.shape) * np.sqrt(read ** 2 + gain * light)
    noisy = linear_to_srgb(np.clip(light + noise, 0.0, 1.0))
    write_lr(path, noisy)
    rms = float(np.sqrt(np.mean((noisy - clean) ** 2)) * 255.0)
    record.write_text(json.dumps({"rms_sigma": rms}))
    return path, rms


def shot_scores(shared: Path, number: int, level: tuple[str, float, float], work: Path) -> dict:
    """One sensor-noise image: SRMD's Y-PSNR with the true kernel for every ``GRID`` sigma, the
    noise's RMS sigma and sr.noise=auto, and with the default KernelGAN estimate (seed 0) and
    sr.noise=auto; the estimate's kernel PSNR and the sigma auto gave. Cached."""
    cache = work / "shot" / "scores" / f"im_{number}_{level[0]}.json"
    from benchmarks.common import NOISE_REFIT_RULE, correction_current, kept_kernel, sr_backend

    cached = json.loads(cache.read_text()) if cache.exists() else {}
    if "corrected" in cached and correction_current(cached):
        return cached
    from blindsr.estimators import get_estimator
    from blindsr.estimators.kernelgan import noise_corrected, with_fitted_noise
    from blindsr.images import read_image
    from blindsr.kernel import load_kernel
    from blindsr.metrics import kernel_psnr

    root = shared / "BSD100RK"
    truth = load_kernel(root / "gt_k_x2" / f"kernel_{number}.mat", scale=2)
    path, rms = make_shot_lr(shared, number, level, work)
    image = read_image(path)
    hr = read_image(root / "gt" / f"im_{number}.png").rgb
    if "auto_sigma" in cached:  # SRMD with the true kernel, from an earlier run
        result = {key: cached[key] for key in ("rms_sigma", "psnr", "auto_sigma")}
    else:
        result = {"rms_sigma": rms, "psnr": {f"{s:g}": sr_psnr(image, hr, truth, s) for s in GRID}}
        result["psnr"]["rms"] = sr_psnr(image, hr, truth, rms)
        sr, record = sr_now(image, truth, sr_backend("SRMD"))
        result["psnr"]["auto"], result["auto_sigma"] = y_psnr(sr, hr), record["diagnostics"]["noise"]
    # One estimate without the noise correction (kept), and the same kernel corrected as the
    # estimator corrects it (its refinement's kernel, then the noise fitted under the kernel handed over).
    estimator = get_estimator("kernelgan", device="cpu", noise_correction=False)
    plain = kept_kernel(cache.with_name(f"im_{number}_{level[0]}_uncorrected.npy"),
                        lambda: estimator.estimate(image.rgb, 2, seed=0).kernels[2])
    corrected = with_fitted_noise(noise_corrected(plain, image.rgb, estimator.settings, seed=0), image.rgb,
                                  estimator.settings)
    for name, estimate in (("uncorrected", plain), ("corrected", corrected)):
        result[name] = {"kernel_psnr": float(kernel_psnr(estimate.array, truth.array, size=truth.size)),
                        "confidence": (estimate.provenance.get("confidence") or {}).get("score"),
                        "noise_sigma": (estimate.provenance.get("noise") or {}).get("sigma"),
                        "psnr": sr_psnr(image, hr, estimate, "auto")}
    result["correction"] = corrected.provenance.get("noise_correction")
    result["refit_rule"] = NOISE_REFIT_RULE
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(result))
    return result


def shot(shared: Path, work: Path) -> str:
    """Part ``shot``: SRMD and the default estimate on photos with a sensor's noise."""
    from blindsr.tables import markdown_table

    rows, lines = [], []
    for scenes, role in SHOT_SCENES:
        for level in SHOT_LEVELS:
            found = [shot_scores(shared, n, level, work) for n in scenes]
            for variant in ESTIMATES:
                lost = [f"im_{n} ({r[variant]['psnr'] - r['psnr']['auto']:+.2f} dB, kernel PSNR "
                        f"{r[variant]['kernel_psnr']:.2f}, confidence {r[variant]['confidence']:.2f})"
                        for n, r in zip(scenes, found) if r[variant]["psnr"] - r["psnr"]["auto"] < -1.0]
                lines.append(f"- scenes {scenes[0]}-{scenes[-1]} ({role}), {level[0]}, {variant} estimate: SRMD "
                             f"more than 1 dB below the true kernel on {len(lost)} of {len(found)}"
                             + (f": {', '.join(lost)}" if lost else ""))
            psnr = {k: [r["psnr"][k] for r in found] for k in ("0", "rms", "auto")}
            psnr.update({v: [r[v]["psnr"] for r in found] for v in ESTIMATES})
            rows.append({
                "scenes": f"{scenes[0]}-{scenes[-1]} ({role})",
                "noise": f"{level[0]} (read {level[1]:g}, gain {level[2]:g})",
                "RMS sigma mean": np.mean([r["rms_sigma"] for r in found]),
                "auto sigma mean": np.mean([r["auto_sigma"] for r in found]),
                "SRMD sigma 0": np.mean(psnr["0"]), "SRMD RMS sigma": np.mean(psnr["rms"]),
                "SRMD auto": np.mean(psnr["auto"]), "SRMD best grid sigma": np.mean([best(r) for r in found]),
                "auto - RMS mean / p10 / worst": mean_p10_worst(
                    [a - b for a, b in zip(psnr["auto"], psnr["rms"])], signed=True),
                "auto - best grid mean / p10 / worst": mean_p10_worst(
                    [a - best(r) for a, r in zip(psnr["auto"], found)], signed=True),
                **{f"{v} estimate kernel PSNR mean / p10 / worst": mean_p10_worst([r[v]["kernel_psnr"] for r in found])
                   for v in ESTIMATES},
                **{f"SRMD {v} estimate - true kernel mean / worst": mean_worst(
                    [a - b for a, b in zip(psnr[v], psnr["auto"])], signed=True) for v in ESTIMATES},
                "SRMD corrected - uncorrected mean / worst": mean_worst(
                    [a - b for a, b in zip(psnr["corrected"], psnr["uncorrected"])], signed=True),
                "corrected": sum(bool((r["correction"] or {}).get("applied")) for r in found),
                "confidence below 1": sum((r["corrected"]["confidence"] or 0) < 1 for r in found)})
    levels = ", ".join(f"{name}: read {read:g}, gain {gain:g}" for name, read, gain in SHOT_LEVELS)
    return ("BSD100RK scenes blurred and subsampled x2 by their true kernels, then a sensor's noise: Gaussian "
            "noise of variance read^2 + gain * light added to the linear light (sRGB-decoded), encoded again, "
            f"8-bit PNG ({levels}; light in [0, 1]). In the stored values the noise is largest in the "
            "shadows, so no single sigma matches it everywhere. 'RMS sigma': the added noise's RMS in the "
            "stored values (8-bit units), the closest single sigma to a 'true' one; SRMD (x2) given the true "
            "kernel as the pipeline hands it over with sigma 0, the RMS sigma, sr.noise=auto, or the best of "
            f"{', '.join(f'{s:g}' for s in GRID)} per image (an oracle); and the default KernelGAN estimate "
            "(seed 0) with sr.noise=auto, without the noise correction ('uncorrected') and with it "
            "('corrected': the same kernel narrowed by kernelgan.noise_corrected, its noise fitted again, as "
            "the estimator does; 'corrected' counts the images it narrowed). Y-PSNR means over the scenes, "
            "differences per image. Scenes 1-10 are tuning scenes, 21-30 no choice touched.\n\n"
            + markdown_table(rows, list(rows[0]), digits=2) + "\n\n" + "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=ROOT / "bench_out" / "jpeg_noise")
    parser.add_argument("--part", choices=("study", "check", "hard", "zssr", "shot"), default="check")
    parser.add_argument("--hard-set", type=Path, default=ROOT / "hard_set")
    parser.add_argument("--remark", default="")
    args = parser.parse_args()
    from benchmarks.common import write_section

    if args.part == "study":
        body = study(args.shared, args.work)
        name, title = "jpeg-noise-study", "SRMD's noise level on JPEG photos: the study (tuning scenes)"
    elif args.part == "zssr":
        body = zssr_part(args.shared, args.work)
        name, title = "jpeg-noise-zssr", "ZSSR's son noise on JPEG photos"
    elif args.part == "shot":
        body = shot(args.shared, args.work)
        name, title = "jpeg-noise-shot", "SRMD's noise level and the estimate on photos with a sensor's noise"
    elif args.part == "hard":
        body = hard(args.hard_set, args.work, args.shared)
        name, title = "jpeg-noise-hard", "SRMD's noise level on the hard set's compressed photos"
    else:
        text, lines = check(args.shared, args.work)
        body = text + "\n\n" + "\n".join(f"- {line}" for line in lines)
        name, title = "jpeg-noise", "SRMD's noise level on JPEG photos (held-out scenes)"
    if args.remark:
        body += "\n\n" + args.remark
    print(body)
    write_section(name, title, body, "bench-jpeg-noise" + ("" if args.part == "check" else f"-{args.part}"))


if __name__ == "__main__":
    main()
