"""Photos blurred in linear light (make bench-light-tune / -report -> the sections 'light-tune' /
'light-report').

A lens blurs the light; the camera encodes it with its tone curve afterwards. The DIV2KRK protocol
blurs the encoded values instead, and so does everything blindsr does unless ``light=linear``
(``blindsr.light``): decode the image with the sRGB curve, estimate and super-resolve there,
encode the result. This benchmark measures, per image of the hard set's linear-light parts
(``benchmarks/hard_set.py``: protocol kernels applied to the scene's linear light), x2, with
``light=encoded`` (the default) and ``light=linear``:

- the default KernelGAN estimate (seed 0): kernel PSNR against the true kernel, and confidence;
- Y-PSNR against the true HR scene of SRMD (``sr.noise=auto``) given that estimate (handed over
  as the pipeline does) and given the true kernel, and of ZSSR (default preset) given the estimate.

The tuning part ``linear_tune`` comes with ``linear_tune_plain``: the same scenes and kernels
blurred as the protocol does, so what ``light=linear`` costs on such images is measured image by
image (ZSSR is run on the linear-light parts only). ``--part report`` runs the held-out part
``linear``. Every estimate and score is cached under ``--work`` (written atomically); a stopped run
resumes.

    python -m benchmarks.light [--part tune|report] [--hard-set hard_set]
"""
from __future__ import annotations

from pathlib import Path


from benchmarks.common import cache_row, cached_estimate, cached_rows, run_hard_set_parts, sr_backend
from blindsr.config import HANDOFF_WIDTH
from blindsr.datasets import BenchmarkImage
from blindsr.evaluation import sr_metrics
from blindsr.kernel import load_kernel
from blindsr.light import LIGHTS
from blindsr.metrics import kernel_psnr
from blindsr.stages import handoff_kernels
from blindsr.tables import differences, markdown_table, mean_p10_worst

# part -> its folders in the hard set (a tuning part is paired with its protocol-blurred twin).
PARTS = {"tune": ("linear_tune", "linear_tune_plain"), "report": ("linear",)}
PLAIN = "linear_tune_plain"  # blurred as the protocol does: no ZSSR runs (SRMD shows the cost)
IMAGES = 20


def score_columns(folder: str) -> list[tuple[str, str, str, str]]:
    """(cache key, back-end, kernel, light) of every SR score of a folder."""
    backends = (("SRMD", "estimate"), ("SRMD", "true")) + (() if folder == PLAIN else (("ZSSR", "estimate"),))
    return [(f"{b.lower()} {k} {light}", b, k, light) for b, k in backends for light in LIGHTS]


def image_scores(entry: BenchmarkImage, folder: str, work: Path) -> dict:
    """One image's scores (cached in ``work/scores.json``; scores the cache lacks are added)."""
    cache = work / "scores.json"
    found, row = cached_rows(cache, entry.name)
    missing = [c for c in score_columns(folder) if c[0] not in row]
    if all(f"kernel_psnr {light}" in row for light in LIGHTS) and not missing:
        return row
    truth = load_kernel(entry.kernels[2], 2)
    estimates = {}
    for light in LIGHTS:
        kernel, record = cached_estimate(entry, work / "estimates", f"{entry.name}_{light}", light)
        estimates[light] = handoff_kernels({2: kernel}, HANDOFF_WIDTH)
        row.update({f"kernel_psnr {light}": kernel_psnr(kernel, truth, size=truth.size),
                    f"confidence {light}": record["confidence"], f"fallback {light}": bool(record["fallback"]),
                    f"estimate_s {light}": record["seconds"]})
    for column, backend, kernel, light in missing:
        kernels = estimates[light] if kernel == "estimate" else {2: truth}
        row[column] = sr_metrics(entry, kernels, sr_backend(backend), 2, 0, light=light)["psnr"]
    return cache_row(cache, found, entry.name, row)


def section(part: str, results: dict[str, dict[str, dict]]) -> str:
    rows, lines = [], []
    for folder, found in results.items():
        images = list(found.values())
        for light in LIGHTS:
            rows.append({"part": folder, "measure": "kernel PSNR of the estimate", "light": light,
                         "mean / p10 / worst": mean_p10_worst([r[f"kernel_psnr {light}"] for r in images]),
                         "linear minus encoded": "" if light == "encoded" else differences(
                             [r["kernel_psnr linear"] - r["kernel_psnr encoded"] for r in images])})
        for column, backend, kernel, light in score_columns(folder):
            other = column.replace(" linear", " encoded")
            rows.append({"part": folder, "measure": f"{backend} Y-PSNR, given the {kernel} kernel"
                         if kernel == "true" else f"{backend} Y-PSNR, given the estimate", "light": light,
                         "mean / p10 / worst": mean_p10_worst([r[column] for r in images]),
                         "linear minus encoded": "" if light == "encoded" else differences(
                             [r[column] - r[other] for r in images])})
        for light in LIGHTS:
            lines.append(f"- {folder}, light={light}: confidence below 1 on "
                         f"{sum((r[f'confidence {light}'] or 0) < 1 for r in images)} of {len(images)}, fallbacks "
                         f"{sum(r[f'fallback {light}'] for r in images)}")
    return ("Hard-set images (benchmarks/hard_set.py), x2. Kernel PSNR of the default KernelGAN estimate (seed 0) "
            "against the true kernel; Y-PSNR (dB, 8-bit result, border shaved) against the true HR scene of SRMD "
            "(sr.noise=auto) given the estimate (narrowed to the handoff width, as the pipeline does) or the true "
            "kernel, and of ZSSR (default preset) given the estimate; each with light=encoded (the default: the "
            "kernel acts on the stored values) and light=linear (estimate and SR on the sRGB-decoded image, the "
            "result encoded again). Differences are per image, mean / p10 / worst. "
            + ("Tuning part: nothing here was chosen on reporting images." if part == "tune"
               else "Reporting part: no choice touched it.")
            + "\n\n" + markdown_table(rows, list(rows[0])) + "\n\n" + "\n".join(lines)
            + "\n\nPer image:\n\n" + per_image(results))


def per_image(results: dict[str, dict[str, dict]]) -> str:
    rows = []
    for folder, found in results.items():
        for name, r in found.items():
            rows.append({"part": folder, "image": name,
                         **{f"kernel PSNR {light}": r[f"kernel_psnr {light}"] for light in LIGHTS},
                         **{f"{b} {k} {light}": r.get(c) for c, b, k, light in score_columns("")}})
    return markdown_table(rows, list(rows[0]))


def main() -> None:
    run_hard_set_parts(__doc__.split("\n\n")[0], "light", PARTS,
                       {"tune": "Photos blurred in linear light (tuning)",
                        "report": "Photos blurred in linear light (held out)"}, image_scores, section, IMAGES)


if __name__ == "__main__":
    main()
