"""Super-resolution of sharpened photos (make bench-sharpening-tune / -report -> the sections
'sharpening-tune' / 'sharpening-report').

Most photos were sharpened in the camera (an unsharp mask) before JPEG. No blur kernel explains a
sharpened image: the mask lifts the frequencies a blur lowers, so the blind estimate on such photos
is further from the optics' kernel ('kernel-sharp-tune'). What a user sees, though, is the SR
result; this benchmark measures it. Per image of the hard set's sharpened parts
(``benchmarks/hard_set.py``: protocol kernel, noise, unsharp mask, JPEG), x2, Y-PSNR against the
true HR scene of SRMD (``sr.noise=auto``) and ZSSR (the default preset, ``noise_std=auto``) given:

- the default KernelGAN estimate (seed 0), handed over as the pipeline does (narrowed to the
  handoff width unless it fell back);
- the true kernel (the optics' blur, before the mask), as ``estimator=gt`` hands it over;
- the bicubic kernel: what a non-blind tool assumes;
- the estimate narrowed further (SRMD only, ``NARROWER``): what a narrower handoff would gain on
  sharpened photos and lose on plain ones.

The tuning part ``sharp_tune`` comes with ``sharp_tune_plain``: the same scenes, kernels, noise and
JPEG without the mask, so the mask's own cost is measured image by image. ``--part report`` runs
the held-out part ``sharp`` (no plain twin). Also per image: the estimate's spread (square root of
the trace of its covariance, in HR pixels) over the true kernel's, its kernel PSNR and its
confidence. Every estimate and score is cached under ``--work`` (written atomically); a stopped
run resumes.

    python -m benchmarks.sharpening [--part tune|report] [--hard-set hard_set]
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.common import cache_row, cached_estimate, cached_rows, run_hard_set_parts, sr_backend
from blindsr.config import HANDOFF_WIDTH
from blindsr.datasets import BenchmarkImage
from blindsr.degradation import bicubic_kernel
from blindsr.evaluation import sr_metrics
from blindsr.kernel import load_kernel
from blindsr.metrics import kernel_psnr
from blindsr.stages import handoff_kernels
from blindsr.tables import differences, markdown_table, mean_p10_worst

# part -> its folders in the hard set, in order (a tuning part is paired with its plain twin).
PARTS = {"tune": ("sharp_tune", "sharp_tune_plain"), "report": ("sharp",)}
IMAGES = 20
SRMD_KERNELS = ("estimate", "true", "bicubic")
ZSSR_KERNELS = ("estimate", "true", "bicubic")
# Handoff widths narrower than the default's (HANDOFF_WIDTH), SRMD given the estimate: what a
# narrower kernel would gain on sharpened photos and lose on their plain twins.
NARROWER = (0.85, 0.75)


def spread(array: np.ndarray) -> float:
    """Square root of the trace of a kernel's covariance (its taps' positions weighted by the taps,
    negative taps clipped), in pixels of its grid."""
    k = np.clip(np.asarray(array, dtype=np.float64), 0.0, None)
    k = k / k.sum()
    rows, cols = np.indices(k.shape)
    total = 0.0
    for axis in (rows, cols):
        mean = (k * axis).sum()
        total += (k * (axis - mean) ** 2).sum()
    return float(np.sqrt(total))


def image_scores(entry: BenchmarkImage, work: Path) -> dict:
    """One image's scores (cached in ``work/scores.json``; scores the cache lacks are added)."""
    cache = work / "scores.json"
    found, row = cached_rows(cache, entry.name)
    missing = [column for column in score_columns() if column[0] not in row]
    if "kernel_psnr" in row and not missing:
        return row
    kernel, record = cached_estimate(entry, work / "estimates", entry.name)
    truth = load_kernel(entry.kernels[2], 2)
    handed = {"estimate": handoff_kernels({2: kernel}, HANDOFF_WIDTH), "true": {2: truth},
              "bicubic": {2: bicubic_kernel(2)},
              **{f"estimate {w}": handoff_kernels({2: kernel}, w) for w in NARROWER}}
    if "kernel_psnr" not in row:
        row.update({"kernel_psnr": kernel_psnr(kernel, truth, size=truth.size),
                    "spread_ratio": spread(kernel.array) / spread(truth.array),
                    "confidence": record["confidence"], "fallback": bool(record["fallback"]),
                    "estimate_s": record["seconds"]})
    for column, backend, name in missing:
        row[column] = sr_metrics(entry, handed[name], sr_backend(backend), 2, 0)["psnr"]
    return cache_row(cache, found, entry.name, row)


def score_columns() -> list[tuple[str, str, str]]:
    """(cache key, back-end, kernel handed over) of every SR score."""
    srmd = list(SRMD_KERNELS) + [f"estimate {w}" for w in NARROWER]
    return [(f"srmd {k}", "SRMD", k) for k in srmd] + [(f"zssr {k}", "ZSSR", k) for k in ZSSR_KERNELS]


def section(part: str, results: dict[str, dict[str, dict]]) -> str:
    columns = [(column, backend, kernel.replace("estimate ", "estimate, handoff width "))
               for column, backend, kernel in score_columns()]
    rows = []
    for folder, found in results.items():
        images = list(found.values())
        for column, backend, kernel in columns:
            true = f"{backend.lower()} true"
            rows.append({"part": folder, "SR": backend, "kernel": kernel, "images": len(images),
                         "Y-PSNR mean / p10 / worst": mean_p10_worst([r[column] for r in images]),
                         "minus true kernel mean / p10 / worst": "" if column == true else
                         differences([r[column] - r[true] for r in images])})
    lines = []
    for folder, found in results.items():
        images = list(found.values())
        ratio = np.array([r["spread_ratio"] for r in images])
        lines.append(f"- {folder}: the estimate's spread over the true kernel's: median {np.median(ratio):.2f}, "
                     f"below 1 on {int((ratio < 1).sum())} of {len(ratio)} images; kernel PSNR "
                     f"{mean_p10_worst([r['kernel_psnr'] for r in images])} (mean / p10 / worst); confidence below 1 on "
                     f"{sum((r['confidence'] or 0) < 1 for r in images)}, fallbacks "
                     f"{sum(r['fallback'] for r in images)}")
        for backend in ("SRMD", "ZSSR"):
            gaps = [r[f"{backend.lower()} estimate"] - r[f"{backend.lower()} bicubic"] for r in images]
            lines.append(f"- {folder}: {backend} given the estimate minus given the bicubic kernel, image by image: "
                         f"{differences(gaps)}")
        for width in NARROWER:
            lines.append(f"- {folder}: SRMD given the estimate at handoff width {width} minus at the default "
                         f"{HANDOFF_WIDTH}: {differences([r[f'srmd estimate {width}'] - r['srmd estimate'] for r in images])}")
    if len(results) == 2:
        (sharp_name, sharp), (plain_name, plain) = results.items()
        for column, _, _ in columns:
            gaps = [sharp[i][column] - plain[i][column] for i in sharp if i in plain]
            lines.append(f"- {column.replace('srmd', 'SRMD').replace('zssr', 'ZSSR')}: {sharp_name} minus "
                         f"{plain_name}, image by image (the mask's cost): {differences(gaps)}")
    return ("Hard-set images (benchmarks/hard_set.py), x2, Y-PSNR (dB, 8-bit result, border shaved) against the "
            "true HR scene. SR given the default KernelGAN estimate (seed 0, narrowed to the handoff width as "
            "the pipeline does), the true kernel (the optics' blur before the mask), or the bicubic kernel; "
            "SRMD with sr.noise=auto, ZSSR with its default preset (noise_std=auto). Differences are per image, "
            "mean / p10 / worst (dB). " + ("Tuning part: nothing here was chosen on reporting images."
                                            if part == "tune" else "Reporting part: no choice touched it.")
            + "\n\n" + markdown_table(rows, list(rows[0])) + "\n\n" + "\n".join(lines)
            + "\n\nPer image (Y-PSNR in dB; spread: the estimate's over the true kernel's):\n\n" + per_image(results, columns))


def per_image(results: dict[str, dict[str, dict]], columns: list[tuple[str, str, str]]) -> str:
    rows = [{"part": folder, "image": name, "kernel PSNR": r["kernel_psnr"], "spread": r["spread_ratio"],
             "confidence": r["confidence"], **{f"{backend} {kernel}": r[column] for column, backend, kernel in columns}}
            for folder, found in results.items() for name, r in found.items()]
    return markdown_table(rows, list(rows[0]))


def main() -> None:
    run_hard_set_parts(__doc__.split("\n\n")[0], "sharpening", PARTS,
                       {"tune": "SR of sharpened photos (tuning)", "report": "SR of sharpened photos (held out)"},
                       lambda entry, folder, work: image_scores(entry, work), section, IMAGES)


if __name__ == "__main__":
    main()
