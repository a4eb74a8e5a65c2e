"""The default pipeline's speed, in seconds and in machine-independent units, and what each ZSSR
change costs in PSNR (make bench-speed) -> the 'speed' section of docs/BENCHMARKS.md.

The unit is one fp32 training step of the plain ZSSR network on 1x3x128x128
(``benchmarks.common.unit_seconds``), timed at the start and the end of the same run, and again
just before every cached run is made: the cache keeps that unit with the run's seconds, so a run
read back in a later pass keeps the units it was measured in (the unit drifts between passes,
and within one, as a shared machine's speed does). Runs cached before the unit was kept are given
the pass's first unit, and the section says how many.

Parts (every run is cached as JSON under ``--work``; an interrupted benchmark re-run with the same
``--work`` computes only what is missing; delete the folder after a code change):
  ablation  ZSSR settings one change at a time, ground-truth kernels, x2, on the tuning images
            (``--tune``, where the fast preset was chosen): seconds, speed-up, Y-PSNR, and each
            row's mean and worst-image change against the row that is the fast preset today.
  blind     the blind pipeline (the default KernelGAN estimate, handed over at the default width,
            then ZSSR) on images no choice touched (``--report`` x2, ``--report-x4`` x4), end to
            end: before (the estimate on one CPU thread, ZSSR preset kernelgan) vs now (one thread
            per batched restart, preset fast). Both estimates are timed side by side and must give
            the same kernels; SR uses them. The same images again with the ground-truth kernels.
  fp32      the blind part's SR again with fp32 training (``--fp32`` x2, ``--fp32-x4`` x4): what CPUs without
            native bf16 (AVX2-only) run, where ``precision=auto`` resolves to fp32.
  demo      ``make demo`` timed end to end, with the default precision and with fp32 training.
  x4        the gradual x4 on its own (section 'speed-x4'): the fast preset's iterations per stage
            on the tuning images (``--tune``, ground-truth x4 kernels, precision auto and fp32),
            then the blind, ground-truth and fp32 comparisons of ``blind`` at x4 only.
  isa       this CPU as it is and made to run as an AVX2-only one (``benchmarks.isa``, a child
            process per instruction set): the speed unit, the default KernelGAN x2 estimate of the
            ``--tune-kernel`` images (seconds, units, kernel PSNR), and ``make demo`` under AVX2.
  steps     cheaper training steps for the fast preset (section 'speed-steps'): smaller crops,
            fewer iterations at a higher rate, fewer channels, each against the preset before on
            the tuning images (``--tune``, ground-truth kernels); the cheapest that meets the rule
            at x2 is checked again in fp32 and at x4.
  seeds     the preset before 'steps' and 48 channels with several seeds (``--seeds``), x2, both
            precisions, the tuning images (section 'speed-steps-seeds'): how much of a step's
            measured change the seed alone moves. Chooses nothing.
  bf16      the fast preset with fp32 and with bf16 training, ground-truth kernels, x2, on the
            tuning images (``--tune``), one after the other on this CPU, and what ``precision=auto``
            picks here (section 'speed-bf16'; not cached: it is about this machine).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import zssr
from omegaconf import OmegaConf

from benchmarks.common import machine_line, native_bf16, numbers, unit_seconds, write_section
from blindsr.backends import get_backend
from blindsr.config import HANDOFF_WIDTH
from blindsr.datasets import BenchmarkImage, load_benchmark
from blindsr.estimators.truth import true_kernels
from blindsr.evaluation import estimate_kernels, sr_metrics
from blindsr.kernel import SRKernel, load_kernel, save_kernel
from blindsr.runtime import torch_threads
from blindsr.stages import build_estimator, handoff_kernels
from blindsr.tables import markdown_table

# (label, ZSSR preset, overrides): each row adds one change to the row above it, then variants of
# the last. The fast preset's rows name its width and budget, so that a row (and its cached runs)
# keeps its meaning when the preset changes; the reference row is the one that equals the preset.
W64 = {"width": 64}
ABLATION = [
    ("kernelgan preset (today's default)", "kernelgan", {}),
    ("+ body at LR resolution, sub-pixel head", "kernelgan", {"body": "lr"}),
    ("+ cosine schedule, 1000 iterations", "kernelgan", {"body": "lr", "schedule": "cosine", "max_iters": 1000}),
    ("fast preset as first chosen (cosine, 800 iterations, tests every 100)", "fast", {**W64, "max_iters": 800}),
    ("fast, 600 iterations", "fast", {**W64, "max_iters": 600}),
    ("fast, 500 iterations", "fast", {**W64, "max_iters": 500}),
    ("fast, 400 iterations", "fast", {**W64, "max_iters": 400}),
]
TODAY, NEW = "kernelgan", "fast"
# The gradual x4 (a x2 stage that pre-trains the network, then the x4 stage): the x2 stage's
# iterations under the fast preset. Explicit values, so that a cached run keeps its meaning when
# the preset changes.
X4_ABLATION = [
    ("kernelgan preset", "kernelgan", {}),
    ("fast, x2 stage 600 (as x2: the fast preset before)", "fast", {**W64, "intermediate_iters": 600}),
    ("fast, x2 stage 300", "fast", {**W64, "intermediate_iters": 300}),
    ("fast, x2 stage 150", "fast", {**W64, "intermediate_iters": 150}),
    ("fast, no x2 stage", "fast", {**W64, "intermediate_iters": 0}),
    ("fast, no x2 stage, x4 stage 800", "fast", {**W64, "intermediate_iters": 0, "max_iters": 800}),
    ("fast, both stages 500", "fast", {**W64, "intermediate_iters": 500, "max_iters": 500}),
]

# Cheaper training steps for the fast preset, each against the preset as it was before them (600
# iterations, 64 channels, 128-px crops). Explicit values, so that a cached run keeps its meaning
# when the preset changes.
STEPS_BEFORE = {"max_iters": 600, "width": 64, "crop_size": 128}
STEPS = [
    ("fast before (600 iterations, 64 channels, 128-px crops)", {}),
    ("96-px crops", {"crop_size": 96}),
    ("96-px crops for the first half", {"early_crop_size": 96}),
    ("64-px crops for the first half", {"early_crop_size": 64}),
    ("64-px crops for the first two thirds", {"early_crop_size": 64, "early_crop_fraction": 0.67}),
    ("64-px crops for the first half, 500 iterations", {"early_crop_size": 64, "max_iters": 500}),
    ("400 iterations at rate 2e-3", {"max_iters": 400, "learning_rate": 2e-3}),
    ("400 iterations at rate 1.5e-3", {"max_iters": 400, "learning_rate": 1.5e-3}),
    ("450 iterations at rate 1.5e-3", {"max_iters": 450, "learning_rate": 1.5e-3}),
    ("48 channels", {"width": 48}),
    ("40 channels", {"width": 40}),
    ("32 channels", {"width": 32}),
    ("48 channels, 500 iterations", {"width": 48, "max_iters": 500}),
]
STEPS_MEAN_DB, STEPS_WORST_DB = -0.05, -0.10  # the rule, set before the rows ran


def run_key(kind: str, scale: int, entry: BenchmarkImage, preset: str) -> str:
    """A cached run's name; the new preset's carries its iteration budget, which has changed."""
    from zssr.settings import preset as zssr_preset

    settings = zssr_preset(preset)
    budget = "" if preset == TODAY else f"_{settings.max_iters}"
    if preset != TODAY and scale == 4 and settings.intermediate_iters is not None:
        budget += f"_x2stage{settings.intermediate_iters}"
    return f"{kind}_x{scale}_{entry.name}_{preset}{budget}"
SPEEDUP_GOAL = 8.0
PSNR_TOLERANCE = 0.1
KERNELGAN_UNITS_GOAL = 100
ISA_SECTION = "speed-isa:Speed as an AVX2-only CPU"  # --isa-section: its default


class Cache:
    """One JSON file per run under ``root``; ``get(key, compute)`` computes only what is missing.

    Before a run is computed, ``unit`` (``unit_seconds`` by default) is timed and kept with the run
    as ``unit_s``: the unit its seconds were measured in. ``first_unit`` stands in for runs cached
    without one (``unit_of``), and ``without_unit`` counts the runs read that way."""

    def __init__(self, root: Path, first_unit: float = math.nan,
                 unit: Callable[[], float] = unit_seconds) -> None:
        self.root = root
        self.first_unit = first_unit
        self.unit = unit
        self.without_unit: set[str] = set()
        root.mkdir(parents=True, exist_ok=True)

    def get(self, key: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        path = self.root / f"{key}.json"
        if path.is_file():
            row = json.loads(path.read_text())
            if "unit_s" not in row:
                self.without_unit.add(key)
            return row
        unit = self.unit()
        row = {**compute(), "unit_s": unit}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(row))
        tmp.replace(path)
        print(key, {k: v for k, v in row.items() if not isinstance(v, (dict, list))}, flush=True)
        return row

    def unit_of(self, row: dict[str, Any]) -> float:
        """The unit a cached run's seconds were measured in: its own, else ``first_unit``."""
        return row.get("unit_s", self.first_unit)

    def units_line(self) -> str:
        """The section's line on where the units come from."""
        line = ("Units divide each run's seconds by the unit timed just before that run was made (kept in the "
                "cache with it)")
        if not self.without_unit:
            return line + "."
        return (f"{line}; {len(self.without_unit)} runs read from a cache made before units were kept use this "
                f"pass's first unit ({self.first_unit:.4f} s).")


def entries(data: Path, scale: int, wanted: list[int]) -> list[BenchmarkImage]:
    found = {e.number: e for e in load_benchmark(data, scale)}
    return [found[n] for n in wanted if n in found]


def zssr_run(entry: BenchmarkImage, kernels: dict[int, SRKernel], preset: str, scale: int, seed: int = 0,
             **overrides: Any) -> dict[str, Any]:
    backend = get_backend("zssr", preset=preset, device="cpu", **overrides)
    row = sr_metrics(entry, kernels, backend, scale, seed=seed)
    return {"psnr": row["psnr"], "ssim": row["ssim"], "sr_s": row["sr_s"]}


def ablation(cache: Cache, data: Path, tune: list[int]) -> tuple[str, list[dict]]:
    rows = []
    for label, preset, overrides in ABLATION:
        runs = [cache.get(f"ablation_{e.name}_{preset}_{'_'.join(f'{k}-{v}' for k, v in overrides.items())}",
                          lambda e=e: zssr_run(e, true_kernels(e, 2), preset, 2, **overrides))
                for e in entries(data, 2, tune)]
        rows.append({"ZSSR": label, "images": len(runs),
                     "seconds": statistics.mean(r["sr_s"] for r in runs),
                     "Y-PSNR": statistics.mean(r["psnr"] for r in runs), "psnr": [r["psnr"] for r in runs]})
    # The per-image reference: the row whose settings are the fast preset's today.
    from zssr.settings import preset as zssr_preset

    now = next(row for row, (_, preset, overrides) in zip(rows, ABLATION)
               if zssr_preset(preset, **overrides) == zssr_preset(NEW))
    now["ZSSR"] += " (the fast preset now)"
    base = rows[0]
    for row in rows:
        row["speed-up"] = base["seconds"] / row["seconds"]
        row["dB vs today"] = row["Y-PSNR"] - base["Y-PSNR"]
        row["dB vs fast now"] = row["Y-PSNR"] - now["Y-PSNR"]
        row["worst image dB vs fast now"] = min(a - b for a, b in zip(row["psnr"], now["psnr"]))
    return markdown_table(rows, ["ZSSR", "images", "seconds", "speed-up", "Y-PSNR", "dB vs today", "dB vs fast now",
                                 "worst image dB vs fast now"],
                          {"seconds": 1, "speed-up": 1, "images": 0}), rows


def bf16_part(data: Path, tune: list[int]) -> str:
    """The ``bf16`` part: the fast preset trained in fp32 and in bf16 on each tuning image, side by
    side, the unit timed before each image; what ``precision=auto`` resolves to on this CPU."""
    rows = []
    for e in entries(data, 2, tune):
        unit = unit_seconds()
        for precision in ("fp32", "bf16"):
            run = zssr_run(e, true_kernels(e, 2), "fast", 2, precision=precision)
            rows.append({"image": e.name, "precision": precision, "seconds": run["sr_s"],
                         "units": run["sr_s"] / unit, "Y-PSNR": run["psnr"]})
            print(rows[-1], flush=True)
    mean = {p: statistics.mean(r["seconds"] for r in rows if r["precision"] == p) for p in ("fp32", "bf16")}
    flags, onednn = zssr.x86_bf16_flags(), zssr.onednn_bf16()
    return (f"ZSSR fast preset, ground-truth kernels, x2, tuning images {', '.join(map(str, tune))}, seed 0, one run "
            "at a time (fp32 then bf16 per image; the unit timed before each image). oneDNN reports bf16 "
            f"support: {onednn}; the CPU's bf16 instructions ({', '.join(f'`torch.cpu.{k}`: {v}' for k, v in flags.items())}); "
            f"`precision=auto` resolves to **{zssr.resolve_precision('auto', torch.device('cpu'))}** here.\n\n"
            + markdown_table(rows, list(rows[0]), {"seconds": 1, "units": 0})
            + f"\n\nMean seconds: fp32 {mean['fp32']:.1f}, bf16 {mean['bf16']:.1f} (bf16 / fp32 = "
            f"{mean['bf16'] / mean['fp32']:.2f}x).")


def x4_ablation(cache: Cache, data: Path, tune: list[int]) -> str:
    """The fast preset's x2-stage budget at x4 on the tuning images (ground-truth kernels), with
    the default precision and with fp32 training (AVX2-only CPUs); the kernelgan preset with the
    default precision as the reference."""
    rows = []
    for precision in ("auto", "fp32"):
        for label, preset, overrides in X4_ABLATION:
            if preset == TODAY and precision == "fp32":
                continue
            options = {**overrides, **({"precision": precision} if precision != "auto" else {})}
            runs = [cache.get(f"ablation4_{e.name}_{preset}_{'_'.join(f'{k}-{v}' for k, v in options.items())}",
                              lambda e=e: zssr_run(e, true_kernels(e, 4), preset, 4, **options))
                    for e in entries(data, 4, tune)]
            rows.append({"ZSSR": label, "precision": precision, "images": len(runs),
                         "seconds": statistics.mean(r["sr_s"] for r in runs),
                         "units": statistics.mean(r["sr_s"] / cache.unit_of(r) for r in runs),
                         "Y-PSNR": statistics.mean(r["psnr"] for r in runs), "psnr": [r["psnr"] for r in runs]})
    base, before = rows[0], {r["precision"]: r for r in rows if r["ZSSR"] == X4_ABLATION[1][0]}
    for row in rows:
        row["speed-up"] = base["seconds"] / row["seconds"]
        row["dB vs kernelgan"] = row["Y-PSNR"] - base["Y-PSNR"]
        ref = before[row["precision"]]["psnr"] if row["precision"] in before else row["psnr"]
        row["worst image dB vs fast before"] = min(a - b for a, b in zip(row["psnr"], ref))
    return markdown_table(rows, ["ZSSR", "precision", "images", "seconds", "units", "speed-up", "Y-PSNR",
                                 "dB vs kernelgan", "worst image dB vs fast before"],
                          {"seconds": 1, "units": 0, "speed-up": 1, "images": 0})


def steps_rows(cache: Cache, data: Path, tune: list[int], scale: int, precision: str,
               candidates: list[tuple[str, dict[str, Any]]], seed: int = 0) -> list[dict[str, Any]]:
    """The fast preset with each candidate's overrides on ``STEPS_BEFORE``, ground-truth kernels,
    the tuning images: mean seconds and units, Y-PSNR, and the mean and worst-image change against
    the first candidate (the preset before), with whether the rule holds."""
    rows = []
    for label, overrides in candidates:
        options = {**STEPS_BEFORE, **overrides, **({"precision": precision} if precision != "auto" else {})}
        name = "_".join(f"{k}-{v}" for k, v in sorted(options.items())) + (f"_seed-{seed}" if seed else "")
        runs = [cache.get(f"steps_x{scale}_{e.name}_{name}",
                          lambda e=e: zssr_run(e, true_kernels(e, scale), NEW, scale, seed, **options))
                for e in entries(data, scale, tune)]
        rows.append({"ZSSR fast preset with": label, "scale": f"x{scale}", "precision": precision, "seed": seed,
                     "images": len(runs), "seconds": statistics.mean(r["sr_s"] for r in runs),
                     "units": statistics.mean(r["sr_s"] / cache.unit_of(r) for r in runs),
                     "Y-PSNR": statistics.mean(r["psnr"] for r in runs), "psnr": [r["psnr"] for r in runs]})
    base = rows[0]
    for row in rows:
        row["speed-up"] = base["seconds"] / row["seconds"]
        row["dB"] = row["Y-PSNR"] - base["Y-PSNR"]
        row["worst image dB"] = min(a - b for a, b in zip(row["psnr"], base["psnr"]))
        row["meets the rule"] = row["dB"] >= STEPS_MEAN_DB and row["worst image dB"] >= STEPS_WORST_DB
    return rows


def steps_part(cache: Cache, data: Path, tune: list[int]) -> str:
    """Cheaper training steps (section 'speed-steps'): every candidate at x2 with the default
    precision; the cheapest that meets the rule (by mean seconds) then at x2 in fp32 and at x4 in
    both precisions, each against the preset before. It enters the preset only where it meets the
    rule in all four."""
    columns = ["ZSSR fast preset with", "scale", "precision", "images", "seconds", "units", "speed-up", "Y-PSNR",
               "dB", "worst image dB", "meets the rule"]
    digits = {"seconds": 1, "units": 0, "speed-up": 2, "images": 0}
    rows = steps_rows(cache, data, tune, 2, "auto", STEPS)
    passing = [r for r in rows[1:] if r["meets the rule"]]
    images = ", ".join(map(str, tune))
    text = [f"### Every candidate (x2, ground-truth kernels, tuning images {images}, precision auto)",
            markdown_table(rows, columns, digits)]
    if not passing:
        return "\n\n".join(text + ["No candidate meets the rule: the preset stays as it was."])
    chosen = min(passing, key=lambda r: r["seconds"])
    pair = [STEPS[0], next(c for c in STEPS if c[0] == chosen["ZSSR fast preset with"])]
    checked = [*steps_rows(cache, data, tune, 2, "fp32", pair), *steps_rows(cache, data, tune, 4, "auto", pair),
               *steps_rows(cache, data, tune, 4, "fp32", pair)]
    held = all(r["meets the rule"] for r in checked)
    text += [f"### The cheapest that meets the rule, {chosen['ZSSR fast preset with']}, in fp32 and at x4 "
             "(ground-truth kernels, the same images)", markdown_table(checked, columns, digits),
             f"Verdict: {chosen['ZSSR fast preset with']} {'meets' if held else 'does not meet'} the rule in every "
             f"check{'' if held else ' (the preset stays as it was)'}."]
    return "\n\n".join(text)


def seeds_part(cache: Cache, data: Path, tune: list[int], seeds: list[int]) -> str:
    """How much of a step's measured change is the seed's (section 'speed-steps-seeds'): the
    preset before and 48 channels (the one candidate that met the rule at x2 with precision auto)
    at x2 in both precisions with each of ``seeds`` (ZSSR's initial weights, crops and noise),
    the tuning images; the same rule per seed, then on the per-image means over the seeds.
    Chooses nothing."""
    pair = [STEPS[0], next(c for c in STEPS if c[1] == {"width": 48})]
    rows, summaries = [], []
    for precision in ("auto", "fp32"):
        per_seed = [steps_rows(cache, data, tune, 2, precision, pair, seed) for seed in seeds]
        rows += [row for pair_rows in per_seed for row in pair_rows]
        before = np.array([p[0]["psnr"] for p in per_seed])  # (seeds, images)
        after = np.array([p[1]["psnr"] for p in per_seed])
        change = (after - before).mean(axis=0)  # per image, over the seeds
        summaries.append({"precision": precision, "seeds": len(seeds),
                          "before: an image's range over the seeds (mean, largest)":
                              f"{np.ptp(before, axis=0).mean():.2f}, {np.ptp(before, axis=0).max():.2f}",
                          f"before: range of the {len(tune)}-image mean over the seeds": np.ptp(before.mean(axis=1)),
                          "48 channels dB (mean over seeds)": change.mean(),
                          "worst image dB (mean over seeds)": change.min(),
                          "meets the rule on the means": change.mean() >= STEPS_MEAN_DB
                          and change.min() >= STEPS_WORST_DB})
    columns = ["ZSSR fast preset with", "precision", "seed", "images", "seconds", "Y-PSNR", "dB", "worst image dB",
               "meets the rule"]
    return (markdown_table(rows, columns, {"seconds": 1, "images": 0, "seed": 0}) + "\n\n"
            + markdown_table(summaries, list(summaries[0]), {"seeds": 0}))


def estimate(cache: Cache, work: Path, entry: BenchmarkImage, scale: int) -> tuple[dict[int, SRKernel], dict]:
    """The default estimate, timed side by side as it ran before (one CPU thread) and as it runs now
    (one thread per batched restart within the process's budget, ``kernelgan.cpu_threads``); the
    two must give the same kernels bit for bit."""
    folder = work / "kernels" / f"x{scale}"
    wanted = (2, 4) if scale == 4 else (scale,)

    def compute() -> dict[str, Any]:
        estimator = build_estimator(OmegaConf.create({"name": "kernelgan", "preset": "default"}), "cpu")
        row: dict[str, Any] = {}
        digests = {}
        for label, threads in (("today", 1), ("new", torch.get_num_threads())):
            with torch_threads(threads):
                kernels, row[f"{label}_s"] = estimate_kernels(entry, estimator, scale, seed=0)
            digests[label] = [hashlib.sha256(kernels[s].array.tobytes()).hexdigest() for s in wanted]
        folder.mkdir(parents=True, exist_ok=True)
        for kernel in kernels.values():
            save_kernel(kernel, folder, entry.name)
        row["identical"] = digests["today"] == digests["new"]
        return row

    row = cache.get(f"estimate2_x{scale}_{entry.name}", compute)
    kernels = {s: load_kernel(folder / f"{entry.name}_kernel_x{s}.npy", s) for s in wanted}
    return kernels, row


def blind(cache: Cache, work: Path, data: Path, report: list[int], report_x4: list[int], fp32: list[int],
          fp32_x4: list[int]) -> tuple[str, dict]:
    per_image, truth_rows, fp32_rows = [], [], []
    for scale, wanted in ((2, report), (4, report_x4)):
        for entry in entries(data, scale, wanted):
            kernels, est = estimate(cache, work, entry, scale)
            handed = handoff_kernels(kernels, HANDOFF_WIDTH)
            seconds = {TODAY: est["today_s"], NEW: est["new_s"]}
            units = {preset: t / cache.unit_of(est) for preset, t in seconds.items()}
            row: dict[str, Any] = {"image": entry.name, "scale": f"x{scale}", "estimate s (before)": est["today_s"],
                                   "estimate s (now)": est["new_s"], "estimate units (now)": units[NEW],
                                   "estimate unit s": cache.unit_of(est), "same kernels": est["identical"]}
            gt_row: dict[str, Any] = {"image": entry.name, "scale": f"x{scale}"}
            for preset in (TODAY, NEW):
                run = cache.get(run_key("blind", scale, entry, preset), lambda: zssr_run(entry, handed, preset, scale))
                row[f"{preset} SR s"] = run["sr_s"]
                row[f"{preset} total s"] = seconds[preset] + run["sr_s"]
                row[f"{preset} units"] = units[preset] + run["sr_s"] / cache.unit_of(run)
                row[f"{preset} Y-PSNR"] = run["psnr"]
                gt = cache.get(run_key("truth", scale, entry, preset),
                               lambda: zssr_run(entry, true_kernels(entry, scale), preset, scale))
                gt_row[f"{preset} s"] = gt["sr_s"]
                gt_row[f"{preset} Y-PSNR"] = gt["psnr"]
            row["speed-up"] = row[f"{TODAY} total s"] / row[f"{NEW} total s"]
            row["dB"] = row[f"{NEW} Y-PSNR"] - row[f"{TODAY} Y-PSNR"]
            gt_row["speed-up"] = gt_row[f"{TODAY} s"] / gt_row[f"{NEW} s"]
            gt_row["dB"] = gt_row[f"{NEW} Y-PSNR"] - gt_row[f"{TODAY} Y-PSNR"]
            per_image.append(row)
            truth_rows.append(gt_row)
            if entry.number in (fp32 if scale == 2 else fp32_x4):
                f_row: dict[str, Any] = {"image": entry.name, "scale": f"x{scale}",
                                         "estimate s (before)": est["today_s"], "estimate s (now)": est["new_s"]}
                for preset in (TODAY, NEW):
                    run = cache.get(run_key("fp32", scale, entry, preset),
                                    lambda: zssr_run(entry, handed, preset, scale, precision="fp32"))
                    f_row[f"{preset} total s"] = seconds[preset] + run["sr_s"]
                    f_row[f"{preset} units"] = units[preset] + run["sr_s"] / cache.unit_of(run)
                    f_row[f"{preset} Y-PSNR"] = run["psnr"]
                f_row["speed-up"] = f_row[f"{TODAY} total s"] / f_row[f"{NEW} total s"]
                f_row["dB"] = f_row[f"{NEW} Y-PSNR"] - f_row[f"{TODAY} Y-PSNR"]
                fp32_rows.append(f_row)
    return report_text(per_image, truth_rows, fp32_rows)


def speed_verdict(key: str, s: dict[str, Any]) -> str:
    """One check line: a comparison's speed-up and mean PSNR change against issue 12's goal."""
    met = s["speed-up"] >= SPEEDUP_GOAL and s["mean dB"] >= -PSNR_TOLERANCE
    return (f"- {key}: {s['speed-up']:.1f}x, {s['mean dB']:+.3f} dB mean (goal >= {SPEEDUP_GOAL:g}x and "
            f">= -{PSNR_TOLERANCE} dB: {'met' if met else 'NOT met'})")


def summary(rows: list[dict], today: str, new: str) -> dict[str, Any]:
    """Speed-up of the summed times (what a folder of these images costs) and the mean PSNR change."""
    if not rows:
        return {}
    return {"images": len(rows), "speed-up": sum(r[today] for r in rows) / sum(r[new] for r in rows),
            "mean dB": statistics.mean(r["dB"] for r in rows), "worst dB": min(r["dB"] for r in rows)}


def report_text(per_image: list[dict], truth_rows: list[dict], fp32_rows: list[dict]) -> tuple[str, dict]:
    """The blind part's tables and checks; every row's units are its runs' own (``Cache.unit_of``)."""
    parts, checks = [], {}
    digits = {k: 1 for k in ("estimate s (before)", "estimate s (now)", f"{TODAY} SR s", f"{NEW} SR s",
                             f"{TODAY} total s", f"{NEW} total s", f"{TODAY} s", f"{NEW} s", "speed-up")}
    digits |= {f"{TODAY} units": 0, f"{NEW} units": 0, "estimate units (now)": 0}
    for title, rows, today, new, columns in (
        ("Blind pipeline (default KernelGAN estimate + ZSSR), precision auto", per_image,
         f"{TODAY} total s", f"{NEW} total s",
         ["image", "scale", "estimate s (before)", "estimate s (now)", "estimate units (now)", "same kernels",
          f"{TODAY} SR s", f"{NEW} SR s",
          f"{TODAY} total s", f"{NEW} total s",
          f"{TODAY} units", f"{NEW} units", "speed-up", f"{TODAY} Y-PSNR", f"{NEW} Y-PSNR", "dB"]),
        ("ZSSR with the ground-truth kernels, precision auto", truth_rows, f"{TODAY} s", f"{NEW} s",
         ["image", "scale", f"{TODAY} s", f"{NEW} s", "speed-up", f"{TODAY} Y-PSNR", f"{NEW} Y-PSNR", "dB"]),
        ("Blind pipeline with fp32 training (what AVX2-only CPUs run)", fp32_rows, f"{TODAY} total s",
         f"{NEW} total s", ["image", "scale", "estimate s (before)", "estimate s (now)", f"{TODAY} total s",
                            f"{NEW} total s", f"{TODAY} units", f"{NEW} units", "speed-up", f"{TODAY} Y-PSNR",
                            f"{NEW} Y-PSNR", "dB"]),
    ):
        if not rows:
            continue
        for scale in ("x2", "x4"):
            subset = [r for r in rows if r["scale"] == scale]
            s = summary(subset, today, new)
            if s:
                checks[f"{title} {scale}"] = s
        lines = [f"{key.split(', precision')[0].split(' with fp32')[0]} {scale}: {s['images']} images, "
                 f"**{s['speed-up']:.1f}x** faster in total, mean {s['mean dB']:+.3f} dB, worst {s['worst dB']:+.3f} dB"
                 for key, s in checks.items() if key.startswith(title) for scale in (key[-2:],)]
        parts.append(f"### {title}\n\n" + markdown_table(rows, columns, digits) + "\n\n" + "\n".join(
            f"- {line}" for line in lines))
    estimates = [r for r in per_image if r["scale"] == "x2"]
    if estimates:
        before = statistics.mean(r["estimate s (before)"] for r in estimates)
        now = statistics.mean(r["estimate s (now)"] for r in estimates)
        # Each estimate in the unit timed just before it (its ratio to the 'before' time is the
        # same in any unit: the two were timed side by side).
        now_units = [r["estimate units (now)"] for r in estimates]
        unit_range = [min(r["estimate unit s"] for r in estimates), max(r["estimate unit s"] for r in estimates)]
        before_units = statistics.mean(r["estimate units (now)"] * r["estimate s (before)"] / r["estimate s (now)"]
                                       for r in estimates)
        checks["KernelGAN x2 estimate"] = {"before_units": before_units, "now_units": statistics.mean(now_units),
                                           "identical": all(r["same kernels"] for r in per_image)}
        parts.append(f"### The default KernelGAN estimate (x2, {len(estimates)} images)\n\n"
                     f"Mean {before:.1f} s = {before_units:.0f} units on one CPU thread (before), {now:.1f} s = "
                     f"{statistics.mean(now_units):.0f} units now ({before / now:.2f}x; images "
                     f"{min(now_units):.0f}-{max(now_units):.0f} units), each estimate in the unit timed just before "
                     f"it ({unit_range[0]:.4f}-{unit_range[1]:.4f} s); kernels identical bit for bit on every image "
                     f"(x2 and x4): {checks['KernelGAN x2 estimate']['identical']}.")
    return "\n\n".join(parts), checks


def demo(work: Path, unit: float, env: dict[str, str] | None = None,
         precisions: tuple[str, ...] = ("auto", "fp32")) -> str:
    """``make demo`` (its whole pipeline), timed as a user runs it, with the default precision and
    with fp32 training (what AVX2-only CPUs run); ``env``: extra environment (``benchmarks.isa``)."""
    rows = []
    for precision in precisions:
        start = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "blindsr.demo", "--output", str(work / f"demo_{precision}"),
                              "--precision", precision], capture_output=True, text=True,
                             env={**os.environ, **(env or {})})
        seconds = time.perf_counter() - start
        timing = next((line for line in run.stdout.splitlines() if line.startswith("time:")), "")
        psnr = next((line.split("|")[2].strip() for line in run.stdout.splitlines()
                     if line.startswith("| blindsr")), "")
        rows.append({"ZSSR precision": precision, "exit code": run.returncode, "seconds": seconds,
                     "units": seconds / unit, "stages": timing.removeprefix("time: "), "Y-PSNR": psnr})
    return ("`python -m blindsr.demo` (whole pipeline on the CC0 cat, x2, then the comparison), wall time "
            "including start-up:\n\n" + markdown_table(rows, list(rows[0]), {"seconds": 0, "units": 0}))


def isa_part(work: Path, data: Path, images: str) -> str:
    """The ``isa`` part: ``benchmarks.isa`` as this CPU is and as an AVX2-only one, and the demo
    under AVX2, its units from that child's unit."""
    from benchmarks.isa import AVX2_ENV

    rows, results, mean_psnr, spread = [], {}, {}, {}
    clean = {k: v for k, v in os.environ.items() if k not in AVX2_ENV}
    for label, env in (("as it is", {}), ("AVX2 only", AVX2_ENV)):
        run = subprocess.run([sys.executable, "-m", "benchmarks.isa", "--data", str(data), "--images", images,
                              "--work", str(work / "isa" / ("avx2" if env else "native"))],
                             capture_output=True, text=True, env={**clean, **env})
        if run.returncode:
            raise SystemExit(f"benchmarks.isa ({label}) failed:\n{run.stderr[-2000:]}")
        result = results[label] = json.loads(run.stdout.strip().splitlines()[-1])
        seconds = [e["seconds"] for e in result["estimates"]]
        psnr = np.array([e["kernel_psnr"] for e in result["estimates"]])
        mean_psnr[label] = psnr.mean()
        # Units by the unit timed at the start and at the end of the child: on a machine whose speed
        # drifts they differ, and the goal counts as met only by both.
        spread[label] = [statistics.mean(seconds) / u for u in result["units"]]
        rows.append({"this CPU": label, "ATen capability": result["capability"], "native bf16": result["native_bf16"],
                     "unit s (start / end)": " / ".join(f"{u:.4f}" for u in result["units"]),
                     "estimates": len(seconds), "estimate s": statistics.mean(seconds),
                     "estimate units (start / end unit)": " / ".join(f"{v:.0f}" for v in spread[label]),
                     "kernel PSNR mean / p10 / worst": f"{psnr.mean():.2f} / {np.percentile(psnr, 10):.2f} / {psnr.min():.2f}"})
    avx2 = results["AVX2 only"]
    low, high = min(spread["AVX2 only"]), max(spread["AVX2 only"])
    check = (f"- default KernelGAN x2 estimate with AVX2 only: {low:.0f}-{high:.0f} units by the unit timed at "
             f"the start and at the end (goal <= {KERNELGAN_UNITS_GOAL} by both: "
             f"{'met' if high <= KERNELGAN_UNITS_GOAL else 'NOT met'}), kernel PSNR mean "
             f"{mean_psnr['AVX2 only']:.2f} dB against {mean_psnr['as it is']:.2f} dB with the full instruction set")
    text = ("This CPU as it is, and made to run the code paths of an AVX2-only CPU (`benchmarks.isa`: "
            "oneDNN and ATen limited to AVX2, so no AVX-512 and no native bf16; clocks, cache and memory stay "
            "this machine's, so it stands in for such a CPU without being one). Each row is one child process: "
            "its unit, then the default KernelGAN x2 estimate of each image (cached per image and "
            "instruction set).\n\n" + markdown_table(rows, list(rows[0]), {"estimate s": 1})
            + "\n\n`make demo` with AVX2 only (units from that child's first unit):\n\n"
            + demo(work / "isa", avx2["units"][0], AVX2_ENV, ("auto",)) + "\n\n" + check)
    return text


def units_head(start: float, cache: Cache) -> str:
    """The opening of a section of its own: the unit at the start (``start``) and now, whether
    bf16 is native, and where the runs' units come from."""
    return (f"Speed unit (one fp32 ZSSR training step, plain network, 1x3x128x128): {start:.4f} s at the start, "
            f"{unit_seconds():.4f} s at the end of this run; {'native' if native_bf16() else 'no native'} bf16. "
            f"{cache.units_line()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="BSD100RK folder")
    parser.add_argument("--work", type=Path, default=Path("speed_runs"))
    parser.add_argument("--tune", default="1-5", help="images the fast preset was chosen on")
    parser.add_argument("--report", default="21-30", help="x2 images no choice touched")
    parser.add_argument("--report-x4", default="21-22")
    parser.add_argument("--fp32", default="21-30", help="x2 images of the fp32 part")
    parser.add_argument("--fp32-x4", default="21-22")
    parser.add_argument("--tune-kernel", default="1-20", help="images of the isa part's estimates")
    parser.add_argument("--parts", default="ablation,blind,demo,isa")
    parser.add_argument("--seeds", default="0-2", help="seeds of the seeds part")
    parser.add_argument("--remark", action="append", default=[], help="a line added to the speed section")
    parser.add_argument("--isa-section", default=ISA_SECTION, metavar="NAME:TITLE",
                        help="the isa part's section (another CPU's measurement can keep a section of its own)")
    args = parser.parse_args()
    if not (args.data / "lr_x2").is_dir():
        raise SystemExit(f"{args.data}: BSD100RK not found (set DATA=...)")
    units = [unit_seconds()]
    print(f"unit: {units[0]:.4f} s", flush=True)
    cache = Cache(args.work, units[0])
    sections = []
    parts = args.parts.split(",")
    if "ablation" in parts:
        text, _ = ablation(cache, args.data, numbers(args.tune))
        sections.append(f"### ZSSR changes one at a time (ground-truth kernels, x2, tuning images "
                        f"{args.tune}; cached runs keep the seconds they were measured with)\n\n{text}")
    if "blind" in parts:
        text, checks = blind(cache, args.work, args.data, numbers(args.report), numbers(args.report_x4),
                             numbers(args.fp32), numbers(args.fp32_x4))
        sections.append(text)
        verdicts = []
        kernelgan = checks.pop("KernelGAN x2 estimate", None)
        if kernelgan:
            met = kernelgan["now_units"] <= KERNELGAN_UNITS_GOAL
            verdicts.append(f"- default KernelGAN x2 estimate: {kernelgan['now_units']:.0f} units (goal <= "
                            f"{KERNELGAN_UNITS_GOAL} units: {'met' if met else 'NOT met'}), kernels unchanged: "
                            f"{kernelgan['identical']}")
        verdicts += [speed_verdict(key, s) for key, s in checks.items()
                     if "ground-truth" in key or "fp32" in key or key.endswith("x2")]
        sections.append("### Checks\n\n" + "\n".join(verdicts))
    if "demo" in parts:
        sections.append("### make demo (units: the unit timed just before it)\n\n" + demo(args.work, unit_seconds()))
    if "x4" in parts:  # a section of its own: the x4 preset changed after 'speed' was last run
        table = x4_ablation(cache, args.data, numbers(args.tune))
        text, checks = blind(cache, args.work, args.data, [], numbers(args.report_x4), [],
                             numbers(args.fp32_x4))
        verdicts = [speed_verdict(key, s) for key, s in checks.items()]
        head = (f"{units_head(units[0], cache)} The fast preset's x2-stage budget is chosen on BSD100RK x4 images "
                f"{args.tune} (ground-truth kernels); reported on x4 {args.report_x4}, which no choice touched. "
                f"Seed 0; one job at a time. The kernelgan preset's runs are its own, unchanged.")
        write_section("speed-x4", "Speed of the default pipeline at x4 (gradual ZSSR)",
                      "\n\n".join([head, *args.remark,
                                    f"### The x2 stage's budget (tuning images {args.tune}, ground-truth kernels)\n\n"
                                    + table, text, "### Checks\n\n" + "\n".join(verdicts)]),
                      "bench-speed-x4")
    rule = (f"mean Y-PSNR at most {-STEPS_MEAN_DB:g} dB below the preset before and no image more than "
            f"{-STEPS_WORST_DB:g} dB below its own run with the preset before")
    # Sections of their own: the tuning runs behind a step of the preset, and the seed's part in them.
    own = {"steps": ("speed-steps", "ZSSR: cheaper training steps for the fast preset (tuning images)",
                     lambda: steps_part(cache, args.data, numbers(args.tune)),
                     f"seed 0, one job at a time. The rule: a candidate meets it with {rule}."),
           "seeds": ("speed-steps-seeds", "ZSSR: what the seed alone moves in the step rule (tuning images)",
                     lambda: seeds_part(cache, args.data, numbers(args.tune), numbers(args.seeds)),
                     f"ground-truth kernels, x2, seeds {args.seeds}; one job at a time. The rule is the one of "
                     f"'speed-steps': {rule}.")}
    for part, (name, title, make, about) in own.items():
        if part in parts:
            text = make()
            head = f"{units_head(units[0], cache)} BSD100RK tuning images {args.tune}, {about}"
            write_section(name, title, "\n\n".join([head, *args.remark, text]), f"bench-{name}")
    if "bf16" in parts:  # a section of its own: it is about this CPU
        write_section("speed-bf16", "ZSSR in bf16 and fp32 on this CPU", bf16_part(args.data, numbers(args.tune)),
                      "bench-speed-bf16")
    if "isa" in parts:  # a section of its own, so that it can be run alone (make bench-speed-avx2)
        name, title = args.isa_section.split(":", 1)
        write_section(name, title, isa_part(args.work, args.data, args.tune_kernel), "bench-speed-avx2")
    if not sections:  # only parts with sections of their own
        return
    units.append(unit_seconds())
    head = (f"Speed unit (one fp32 ZSSR training step, plain network, 1x3x128x128): {units[0]:.4f} s at the "
            f"start, {units[-1]:.4f} s at the end of this run; {'native' if native_bf16() else 'no native'} bf16 "
            f"({machine_line().split(';')[0]}). {cache.units_line()} Report images: BSD100RK x2 "
            f"{args.report}, x4 {args.report_x4}; the fast preset was chosen on images {args.tune} only. "
            f"Seed 0; one job at a time.")
    write_section("speed", "Speed of the default pipeline (ZSSR fast preset)", "\n\n".join([head, *args.remark, *sections]),
                  "bench-speed")
    print("updated docs/BENCHMARKS.md")


if __name__ == "__main__":
    sys.exit(main())
