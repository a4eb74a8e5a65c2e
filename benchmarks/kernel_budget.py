"""KernelGAN's cost against its accuracy (make bench-kernel-budget) -> the 'kernel-budget' section
of docs/BENCHMARKS.md.

Candidate training budgets of the default estimate (iterations, restarts, and a schedule
compressed to the iterations) run side by side, one job at a time, on tuning images (where the
shipped budget is chosen) and on reporting images that no choice touched. Per set: kernel PSNR
(mean, p10, worst), LR-reconstruction PSNR (mean, worst), low-confidence fallbacks, seconds and
units (one fp32 ZSSR training step, ``benchmarks.common.unit_seconds``, timed in the same run).
Every estimate is cached under ``--work`` (by candidate, set and image), so a stopped run resumes.

    python -m benchmarks.kernel_budget --set tune=../shared/data/BSD100RK:1-20 \\
        --set tune=hard_set/tune:1-20 --set report=../shared/data/Urban100RK:9-20
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import native_bf16, numbers, revision, unit_seconds, write_section
from blindsr.datasets import load_benchmark
from blindsr.estimators import get_estimator
from blindsr.evaluation import estimate_kernels, kernel_metrics
from blindsr.tables import markdown_table

ROOT = Path(__file__).resolve().parents[1]
# name -> KernelGAN overrides of the default preset, explicit so that they do not depend on it.
# "compressed" scales the schedule's clock (bicubic-weight decay, learning-rate drop) with the
# iterations, so every phase still happens.
TODAY = "today (1000 x 4)"
PAPER = "paper preset"
CANDIDATES: dict[str, dict[str, Any]] = {
    TODAY: {"iterations": 1000, "restarts": 4, "schedule_every": 200, "lr_decay_every": 750},
    "700 x 4 compressed": {"iterations": 700, "restarts": 4, "schedule_every": 140, "lr_decay_every": 525},
    "500 x 4": {"iterations": 500, "restarts": 4, "schedule_every": 200, "lr_decay_every": 750},
    "500 x 4 compressed": {"iterations": 500, "restarts": 4, "schedule_every": 100, "lr_decay_every": 375},
    "350 x 4 compressed": {"iterations": 350, "restarts": 4, "schedule_every": 70, "lr_decay_every": 260},
    "1000 x 2": {"iterations": 1000, "restarts": 2, "schedule_every": 200, "lr_decay_every": 750},
    "700 x 3": {"iterations": 700, "restarts": 3, "schedule_every": 200, "lr_decay_every": 750},
    "400 x 5 compressed": {"iterations": 400, "restarts": 5, "schedule_every": 80, "lr_decay_every": 300},
    "350 x 6 compressed": {"iterations": 350, "restarts": 6, "schedule_every": 70, "lr_decay_every": 260},
    # The same budget with a smaller discriminator: its 64-channel layers are most of a step's work.
    "D 32 channels": {"iterations": 1000, "restarts": 4, "schedule_every": 200, "lr_decay_every": 750,
                      "d_channels": 32},
    "D 5 layers": {"iterations": 1000, "restarts": 4, "schedule_every": 200, "lr_decay_every": 750, "d_layers": 5},
    "D 32 channels and 5 layers": {"iterations": 1000, "restarts": 4, "schedule_every": 200,
                                   "lr_decay_every": 750, "d_channels": 32, "d_layers": 5},
    # The same schedule cut short after the learning-rate drop at 750 (the low-rate iterations
    # only refine the kernel); "750" stops at the drop, before any low-rate iteration.
    "800 x 4 (tail cut)": {"iterations": 800, "restarts": 4, "schedule_every": 200, "lr_decay_every": 750},
    "750 x 4 (tail cut)": {"iterations": 750, "restarts": 4, "schedule_every": 200, "lr_decay_every": 750},
    "800 x 4 (tail cut) with D 32 channels": {"iterations": 800, "restarts": 4, "schedule_every": 200,
                                              "lr_decay_every": 750, "d_channels": 32},
    # The same budget on smaller crops: D's work per step grows with its output map (G crop 64: D
    # crop 26, map 20x20; 56: 22, 16x16; 48: 18, 12x12), G's with its output.
    "G crop 64 (1000 x 4)": {"iterations": 1000, "restarts": 4, "schedule_every": 200, "lr_decay_every": 750,
                             "g_crop": 64},  # the default before 'kernel-budget-crop'
    "G crop 56": {"iterations": 1000, "restarts": 4, "schedule_every": 200, "lr_decay_every": 750, "g_crop": 56},
    "G crop 48": {"iterations": 1000, "restarts": 4, "schedule_every": 200, "lr_decay_every": 750, "g_crop": 48},
    # 56-px crops with the schedule cut short after the learning-rate drop, as "800 x 4 (tail cut)".
    "G crop 56 900 (tail cut)": {"iterations": 900, "restarts": 4, "schedule_every": 200, "lr_decay_every": 750,
                                 "g_crop": 56},
    "G crop 56 800 (tail cut)": {"iterations": 800, "restarts": 4, "schedule_every": 200, "lr_decay_every": 750,
                                 "g_crop": 56},
    # Not a budget: the authors' configuration (one 3000-iteration run, no refinement), for reference.
    PAPER: {"preset": "paper"},
    # Not a budget: today's estimate without the likelihood refinement (KernelGAN's combined kernel).
    "today without refinement": {"iterations": 1000, "restarts": 4, "schedule_every": 200,
                                 "lr_decay_every": 750, "refine": "none"},
}
# The discriminator of the preset these budgets were measured with (64 channels, 7 layers), unless a
# candidate names another: explicit, so that a cached candidate keeps its meaning if the preset's changes.
for _overrides in CANDIDATES.values():
    _overrides.setdefault("d_channels", 64)
    _overrides.setdefault("d_layers", 7)


def parse_set(text: str) -> tuple[str, Path, list[int]]:
    """``part=FOLDER:1-20`` -> (part, folder, image numbers)."""
    part, _, rest = text.partition("=")
    folder, _, span = rest.rpartition(":")
    if part not in ("tune", "report") or not folder:
        raise SystemExit(f"--set {text!r}: expected tune=FOLDER:A-B or report=FOLDER:A-B")
    return part, Path(folder), numbers(span)


def set_label(folder: Path, wanted: list[int]) -> str:
    name = folder.name if folder.parent.name != "hard_set" else f"hard {folder.name}"
    return f"{name} {wanted[0]}-{wanted[-1]}"


def run_candidate(name: str, overrides: dict[str, Any], folder: Path, wanted: list[int],
                  work: Path) -> list[dict[str, Any]]:
    """Each estimate of ``name``, cached with the speed unit timed just before the first estimate
    of this candidate on this set that was not cached (the machine's speed drifts within a run)."""
    entries = [e for e in load_benchmark(folder, 2) if int(e.name.split("_")[-1]) in wanted]
    estimator = get_estimator("kernelgan", device="cpu", **overrides)
    rows = []
    unit = None
    for entry in entries:
        path = work / name.replace(" ", "_").replace(",", "") / set_label(folder, wanted).replace(" ", "_") \
            / f"{entry.name}.json"
        if path.is_file():
            rows.append(json.loads(path.read_text()))
            continue
        if unit is None:
            unit = unit_seconds()
        kernels, seconds = estimate_kernels(entry, estimator, 2, seed=0)
        row = {"image": entry.name, "seconds": seconds, "unit": unit, **kernel_metrics(entry, kernels, 2),
               "fallback": bool(kernels[2].provenance.get("fallback"))}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(row))
        rows.append(row)
        print(f"{name} | {set_label(folder, wanted)} | {entry.name}: {row['kernel_psnr']:.2f} dB, "
              f"{seconds:.1f} s", flush=True)
    return rows


def cache_note(work: Path) -> str:
    """Where the estimates come from, in words for the section."""
    if work.resolve().parent == (ROOT / "bench_out" / "kernel_budget").resolve():
        return f"The estimates were made at revision {work.name} (the cache is kept per revision)."
    return "The estimates were read from a cache given with --work, or made in this run where it had none."


def summarise(rows: list[dict[str, Any]], unit: float) -> dict[str, Any]:
    """Per-set statistics; units divide each estimate's seconds by the unit cached with it
    (``unit`` where an older cache recorded none)."""
    kp = np.array([r["kernel_psnr"] for r in rows])
    lp = np.array([r["lr_psnr"] for r in rows])
    seconds = statistics.mean(r["seconds"] for r in rows)
    return {"images": len(rows), "kernel PSNR mean": kp.mean(), "p10": np.percentile(kp, 10), "worst": kp.min(),
            "LR-PSNR mean": lp.mean(), "LR worst": lp.min(), "fallbacks": sum(r["fallback"] for r in rows),
            "below bicubic": sum(r["lr_psnr"] < r["bicubic_lr_psnr"] and not r["fallback"] for r in rows),
            "seconds": seconds, "units": statistics.mean(r["seconds"] / r.get("unit", unit) for r in rows)}


def paper_lines(results: dict[tuple[str, str, str], list[dict]], part: str) -> str:
    """Per set that also ran the paper preset: for every other candidate, the images whose
    LR-PSNR is more than 1 dB below the paper preset's on the same image, and the worst
    difference (issue 11's check, image by image)."""
    lines = []
    for (p, label, name), rows in results.items():
        paper = results.get((p, label, PAPER))
        if p != part or name == PAPER or paper is None:
            continue
        by_image = {r["image"]: r["lr_psnr"] for r in paper}
        gaps = {r["image"]: r["lr_psnr"] - by_image[r["image"]] for r in rows if r["image"] in by_image}
        below = [image for image, gap in gaps.items() if gap < -1.0]
        lines.append(f"- {label}, {name}: LR-PSNR more than 1 dB below the paper preset's on {len(below)} of "
                     f"{len(gaps)} images{' (' + ', '.join(below) + ')' if below else ''}; difference mean "
                     f"{np.mean(list(gaps.values())):+.2f} dB, worst {min(gaps.values()):+.2f} dB")
    return "\n\n" + "\n".join(lines) if lines else ""


def paired_lines(results: dict[tuple[str, str, str], list[dict]], part: str) -> str:
    """With ``--paired``: per candidate, the first set of ``part`` against its second image by
    image (the same scenes made two ways, e.g. with and without a camera's sharpening): the mean
    kernel PSNR difference, how many images lost, and the largest loss."""
    labels = list(dict.fromkeys(label for p, label, _ in results if p == part))
    if len(labels) != 2:
        return ""
    lines = []
    for name in dict.fromkeys(n for p, label, n in results if p == part and label == labels[0]):
        first, second = results.get((part, labels[0], name)), results.get((part, labels[1], name))
        if second is None:
            continue
        other = {r["image"]: r["kernel_psnr"] for r in second}
        gaps = [r["kernel_psnr"] - other[r["image"]] for r in first if r["image"] in other]
        lines.append(f"- {name}: kernel PSNR on {labels[0]} minus {labels[1]}, image by image: mean "
                     f"{np.mean(gaps):+.2f} dB, lower on {sum(g < 0 for g in gaps)} of {len(gaps)} images, "
                     f"largest loss {min(gaps):+.2f} dB")
    return "\n\n" + "\n".join(lines) if lines else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", action="append", required=True, type=parse_set, dest="sets",
                        help="tune=FOLDER:A-B or report=FOLDER:A-B (DIV2KRK layout, x2)")
    parser.add_argument("--candidates", default=",".join(CANDIDATES),
                        help="comma-separated names from CANDIDATES (default: all)")
    parser.add_argument("--report-candidates", default=None,
                        help="candidates run on the report sets (default: the same as --candidates)")
    parser.add_argument("--work", type=Path, default=None,
                        help="the estimates' cache (default: bench_out/kernel_budget/<revision>, so that a "
                             "run at another revision estimates afresh)")
    parser.add_argument("--remark", default="", help="a paragraph for the section")
    parser.add_argument("--paired", action="store_true",
                        help="compare a part's two sets image by image (the same scenes made two ways)")
    parser.add_argument("--section", default="kernel-budget:KernelGAN: cost against accuracy",
                        help="NAME:TITLE of the section written (another keeps the default's table)")
    parser.add_argument("--make-target", default="bench-kernel-budget", help="the make target named in the section")
    args = parser.parse_args()
    chosen = [c.strip() for c in args.candidates.split(",") if c.strip()]
    reported = [c.strip() for c in (args.report_candidates or args.candidates).split(",") if c.strip()]
    unknown = [c for c in chosen + reported if c not in CANDIDATES]
    if unknown:
        raise SystemExit(f"unknown candidate(s) {unknown}; choose from {list(CANDIDATES)}")
    args.work = args.work or ROOT / "bench_out" / "kernel_budget" / revision()
    unit_start = unit_seconds()
    results: dict[tuple[str, str, str], list[dict]] = {}
    for part, folder, wanted in args.sets:
        for name in (chosen if part == "tune" else reported):
            results[(part, set_label(folder, wanted), name)] = run_candidate(
                name, CANDIDATES[name], folder, wanted, args.work)
    unit_end = unit_seconds()
    unit = unit_start
    tables = []
    for part in ("tune", "report"):
        rows = []
        for (p, label, name), found in results.items():
            if p == part:
                rows.append({"set": label, "budget": name, **summarise(found, unit)})
        if rows:
            title = ("Tuning images (the budget is chosen here)" if part == "tune"
                     else "Reporting images (no choice touched them)")
            tables.append(f"### {title}\n\n" + markdown_table(
                rows, ["set", "budget", "images", "kernel PSNR mean", "p10", "worst", "LR-PSNR mean", "LR worst",
                       "fallbacks", "below bicubic", "seconds", "units"],
                {"images": 0, "fallbacks": 0, "below bicubic": 0, "seconds": 1, "units": 0})
                + paper_lines(results, part) + (paired_lines(results, part) if args.paired else ""))
    overrides = "; ".join(f"{n}: {CANDIDATES[n]}" for n in dict.fromkeys(chosen + reported))
    body = (f"Default KernelGAN estimate (x2, seed 0; on the CPU its restarts trained in forked processes of two "
            f"where `train.split_runs` allows, since revision 33df1f9, and before it batched on one thread per "
            f"restart within the budget) under each budget; kernel PSNR on the true kernel's canvas. Speed unit "
            f"(one fp32 ZSSR training step on 1x3x128x128): {unit_start:.4f} s at the start, {unit_end:.4f} s "
            f"at the end of this run ({'native' if native_bf16() else 'no native'} bf16). Units divide each estimate's "
            f"seconds by the unit cached with it: timed just before that candidate's estimates on that set (in caches "
            f"made before this rule: at the start of the run that made them), or by this run's first where the "
            f"cache has none. "
            f"Seconds are each estimate's own, including its KernelGAN set-up and refinement. 'below bicubic': "
            f"estimates whose LR-PSNR is below the plain bicubic kernel's on the same image, without a fallback. "
            f"{cache_note(args.work)} "
            f"Overrides of the default preset: {overrides}.\n\n"
            + (args.remark + "\n\n" if args.remark else "") + "\n\n".join(tables))
    print(body)
    name, _, title = args.section.partition(":")
    write_section(name, title or name, body, args.make_target)


if __name__ == "__main__":
    main()
