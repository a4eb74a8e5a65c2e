"""Kernel estimates on photos they were not tuned on: the default preset against the paper preset,
the bicubic kernel and the default preset as it was before the robustness work (a baseline git
revision, run from a worktree of it on the same machine in the same run).

Sets (both never used for a choice): the ``report/`` part of the hard development set
(benchmarks/hard_set.py: defocused backgrounds, skies and walls, JPEG, noise) and BSD100RK
images 21-100. Per image: kernel PSNR and LR-reconstruction PSNR of every method, whether the
default fell back (and why), its confidence, and seconds per estimate; per set: mean, 10th
percentile and worst. Each estimate is a job of its own (a fresh process, one torch thread),
two at a time, image by image; finished jobs are kept in ``--work``, so an interrupted run resumes.

    python -m benchmarks.robust --data ../shared/data/BSD100RK --hard hard_set/report --baseline REV
        [--revision HEAD] [--previous REV]

``--previous`` adds the default preset of a later revision than the baseline's ('previous'), run
from its own worktree, so that a change of the default is seen beside the one it replaces.

``--tune hard_set`` studies the tuning images instead (``tune``): the refinement's narrow-kernel
settings, re-run from the unrefined estimates, and the bicubic kernel's likelihood against the
estimate's (section 'robust-tuning'). ``--focus-study hard_set`` re-runs the refinement from the
tuning images' unrefined estimates with each rule for scoring only the in-focus tiles
(``focus_study``, section 'robust-focus'); with ``--focus-camera bench_out/camera/sets``, on the
one-camera tuning sets, clean and noisy (section 'robust-focus-camera').
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CODE_ROOT = "BLINDSR_BENCH_CODE_ROOT"
# The code measured first on the path: the repository root, or for a job of another revision that
# revision's worktree (a job runs this file by its path, so its own folder would be first).
sys.path[0] = os.environ.get(CODE_ROOT, str(ROOT))

METHODS = ("baseline", "default", "paper")  # estimates; the bicubic kernel is scored as well
PREVIOUS = "previous"  # with --previous: the default preset at an earlier revision, beside today's
BSD_FIRST, BSD_LAST = 21, 100
WORKERS = 2
# --tune: the tuning images (docs/RELIABILITY.md, 'The hard development set'), each part's images
# (None: all) and the folder its estimates are kept in.
TUNE_PARTS = (("hard tune", "tune", None), ("hard narrow", "narrow", None), ("hard narrow_hard", "narrow_hard", None),
              ("BSD100RK 1-20", "BSD100RK", range(1, 21)), ("Urban100RK 1-8", "Urban100RK", range(1, 9)))
TUNE_METHODS = ("default", "unrefined")  # the default preset, and it without the refinement
REFINEMENT_KEYS = ("scored", "nll_before", "nll_after", "nll_bicubic", "log_scales")
# The narrow refit's settings studied on the tuning images: (NARROW_VARIANCE, SCENE_BLUR), today's first.
REPRODUCED = 1e-12  # per tap: today's setting, re-run from the saved unrefined kernel, gives the default's
NARROW_VARIANTS = ((1.4, 0.15), (1.4, 0.2), (1.4, 0.3), (2.0, 0.15), (2.0, 0.2), (2.0, 0.3))
# --focus-study: the tuning parts (with the plain windows of Urban100RK 1-8) and the rules for
# scoring only the in-focus tiles, as likelihood.FocusRule(margin, minimum); None: the in-focus
# share alone (the rule before), today's second.
FOCUS_PARTS = TUNE_PARTS + (("hard crops", "crops", None),)
FOCUS_RULES = (None, (0.4, 2), (0.3, 2), (0.5, 2), (0.4, 1), (0.4, 3))
# --focus-study with --focus-camera: the one-camera tuning sets of benchmarks/camera.py (BSD100RK
# 1-10 clean and 11-20 with noise of sigma 5, every third scene with a defocused background).
FOCUS_CAMERA_PARTS = (("camera tune", "camera_tune", None), ("camera tune_noise (sigma 5)", "camera_tune_noise", None))
# The estimate handed over as the Gaussian of its covariance when it is narrow
# (``likelihood.gaussian_if_narrow``), studied from the default estimate.
NARROW_SHAPE = "default, Gaussian when narrow"

def job(lr: Path, method: str, out: Path) -> None:
    """One estimate in this process (the blindsr on sys.path decides the code), saved to ``out``."""
    from blindsr.estimators import get_estimator
    from blindsr.images import read_image

    preset = "paper" if method == "paper" else "default"
    overrides = {"unrefined": {"refine": "none"}, "kernel_shape": {"shape": "kernel"}}.get(method, {})
    estimator = get_estimator("kernelgan", preset=preset, device="cpu", **overrides)
    image = read_image(lr).rgb
    start = time.perf_counter()
    estimate = estimator.estimate(image, 2, seed=0)
    seconds = time.perf_counter() - start
    k = estimate.kernels[2]
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out.with_suffix(".npy"), np.asarray(k.array))
    refinement = k.provenance.get("refinement", {})
    record = {"seconds": seconds, "fallback": k.provenance.get("fallback"), "warnings": estimate.warnings,
              "confidence": k.provenance.get("confidence"), "scored": refinement.get("scored"),
              "refinement": {key: refinement.get(key) for key in REFINEMENT_KEYS}}
    out.write_text(json.dumps(record))


def run_job(code_root: Path, lr: Path, method: str, out: Path) -> None:
    if out.exists():
        return
    env = {**os.environ, CODE_ROOT: str(code_root), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--job", str(Path(lr).resolve()), method, str(out)],
                   env=env, check=True, cwd=code_root)


def run_jobs(jobs: list[tuple]) -> None:
    """``run_job`` over ``jobs``, ``WORKERS`` at a time, with a progress line every six."""
    with ThreadPoolExecutor(WORKERS) as pool:
        for n, _ in enumerate(pool.map(lambda j: run_job(*j), jobs), start=1):
            if n % 6 == 0:
                print(f"{n}/{len(jobs)} estimates", flush=True)


def first_of_each_part(entries: list[tuple], limit: int) -> list[tuple]:
    """The first ``limit`` entries of each part (an entry's first item; 0: all)."""
    if not limit:
        return entries
    return [e for part in dict.fromkeys(e[0] for e in entries) for e in [x for x in entries if x[0] == part][:limit]]


def images(data: Path, hard: Path) -> list[tuple[str, object]]:
    from blindsr.datasets import load_benchmark

    entries = [("hard report", e) for e in load_benchmark(hard, 2)]
    entries += [("BSD100RK 21-100", e) for e in load_benchmark(data, 2)
                if BSD_FIRST <= e.number <= BSD_LAST]
    return entries


def accuracy(entry, kernels: dict[str, np.ndarray]) -> dict[str, float]:
    """``<name>_kernel_psnr`` (on the true kernel's canvas) and ``<name>_lr_psnr`` of each kernel
    (the bicubic kernel added as ``bicubic``) for one benchmark image."""
    from blindsr.degradation import bicubic_kernel
    from blindsr.images import read_image
    from blindsr.kernel import load_kernel
    from blindsr.metrics import kernel_psnr, lr_psnr

    lr, hr = read_image(entry.lr).rgb, read_image(entry.gt).rgb
    truth = load_kernel(entry.kernel, 2)
    out = {}
    for name, k in {**kernels, "bicubic": bicubic_kernel(2).array}.items():
        out[f"{name}_kernel_psnr"] = kernel_psnr(k, truth, size=truth.size)
        out[f"{name}_lr_psnr"] = lr_psnr(hr, k, lr, 2)
    return out


def score(entries: list[tuple[str, object]], work: Path, methods: tuple[str, ...] = METHODS) -> list[dict]:

    rows = []
    for part, entry in entries:
        folder = work / part.split()[0] / entry.name
        if not all((folder / f"{m}.json").exists() for m in methods):
            continue
        row = {"part": part, "image": entry.name,
               **accuracy(entry, {m: np.load(folder / f"{m}.npy") for m in methods})}
        for m in methods:
            row[f"{m}_s"] = json.loads((folder / f"{m}.json").read_text())["seconds"]
        record = json.loads((folder / "default.json").read_text())
        row["fallback"] = record["fallback"] or ""
        row["confidence"] = (record["confidence"] or {}).get("score")
        row["scored"] = record["scored"] or ""
        rows.append(row)
    return rows


def tune_entries(data: Path, hard_root: Path, parts: tuple = TUNE_PARTS,
                 camera: Path | None = None) -> list[tuple[str, str, object]]:
    """(part, work folder, image) of the tuning images of ``parts`` (``camera``: where
    benchmarks/camera.py keeps its sets, for the ``camera_*`` folders)."""
    from blindsr.datasets import load_benchmark

    roots = {"BSD100RK": data, "Urban100RK": data.parent / "Urban100RK"}  # the others: hard-set parts
    if camera is not None:
        roots.update({folder: camera / folder.removeprefix("camera_") for _, folder, _ in FOCUS_CAMERA_PARTS})
    return [(part, folder, e) for part, folder, numbers in parts
            for e in load_benchmark(roots.get(folder, hard_root / folder), 2) if numbers is None or e.number in numbers]


def refit(lr_path: str, unrefined: str, variants: tuple[tuple[float, float], ...], shape: str) -> list[np.ndarray]:
    """The unrefined kernel refined with each (narrow variance, scene blur) variant, then shaped as
    the estimates were (``shape``: the preset's ``shape`` at their revision); the first fit is
    shared, as is each scene blur's refit."""
    from blindsr.estimators.kernelgan.settings import settings_for
    from blindsr.estimators.kernelgan.train import prepare_image
    from blindsr.estimators.likelihood import fit_covariance, gaussian_if_narrow, needs_narrow_refit
    from blindsr.images import read_image
    from blindsr.kernel import SRKernel

    image = prepare_image(read_image(lr_path).rgb, settings_for("default"))
    start = SRKernel.from_array(np.load(unrefined), 2, order=1)
    first = fit_covariance(start, image, 2, True, 0.0)
    narrow = {v: needs_narrow_refit(first, v) for v, _ in variants}
    refits = {b: fit_covariance(start, image, 2, True, b) for b in sorted({b for v, b in variants if narrow[v]})}
    fits = [(refits[b] if narrow[v] else first) for v, b in variants]
    if shape == "gaussian_if_narrow":
        fits = [gaussian_if_narrow(k, v) for k, (v, _) in zip(fits, variants)]
    return [np.asarray(k.array) for k in fits]


def tune_rows(entries: list[tuple[str, str, object]], work: Path, shape: str) -> list[dict]:
    """Per tuning image: kernel PSNR and LR-PSNR of the default estimate, of the bicubic kernel and
    of the unrefined estimate refined with each ``NARROW_VARIANTS`` setting (the first is today's
    and must give the default estimate again: checked), and the bicubic kernel's negative
    log-likelihood minus the estimate's on the pixels the refinement scored."""
    from concurrent.futures import ProcessPoolExecutor

    from blindsr.estimators.likelihood import gaussian_if_narrow
    from blindsr.kernel import SRKernel

    done = [(p, f, e) for p, f, e in entries
            if all((work / f / e.name / f"{m}.json").exists() for m in TUNE_METHODS)]
    with ProcessPoolExecutor(WORKERS) as pool:
        refined = list(pool.map(refit, [str(e.lr) for _, _, e in done],
                                [str(work / f / e.name / "unrefined.npy") for _, f, e in done],
                                [NARROW_VARIANTS] * len(done), [shape] * len(done)))
    rows = []
    for (part, folder, entry), variants in zip(done, refined):
        record = json.loads((work / folder / entry.name / "default.json").read_text())
        default = np.load(work / folder / entry.name / "default.npy")
        kernels = {"default": default, **{variant_name(v): k for v, k in zip(NARROW_VARIANTS, variants)},
                   NARROW_SHAPE: np.asarray(gaussian_if_narrow(SRKernel.from_array(default, 2, order=1)).array)}
        row = {"part": part, "image": entry.name, **accuracy(entry, kernels)}
        refinement = record["refinement"]
        row["fallback"] = record["fallback"] or ""
        row["scored"] = refinement.get("scored") or ""
        row["reproduction_error"] = (0.0 if record["fallback"] else float(np.abs(default - variants[0]).max())
                                     if default.shape == variants[0].shape else math.inf)
        row["reproduced"] = row["reproduction_error"] < REPRODUCED
        has_nll = refinement.get("nll_bicubic") is not None and not record["fallback"]
        row["bicubic_minus_estimate_nll"] = (refinement["nll_bicubic"] - refinement["nll_after"]) if has_nll else math.nan
        row["seconds"] = record["seconds"]
        rows.append(row)
    return rows


def variant_name(variant: tuple[float, float]) -> str:
    return f"narrow<{variant[0]:g} blur {variant[1]:g}"


def variant_table(rows: list[dict]) -> list[dict]:
    """Per part and over all tuning images, the default estimate, each narrow-refit variant and the
    bicubic kernel: kernel PSNR and LR-PSNR (``spread``), and how many images it leaves below the
    bicubic kernel's LR-PSNR (a fallback hands over the bicubic kernel, so it counts as not below)."""
    today = variant_name(NARROW_VARIANTS[0])
    names = ["default"] + [variant_name(v) for v in NARROW_VARIANTS] + [NARROW_SHAPE, "bicubic"]
    label = {"default": "the default estimate", today: today + " (today's, re-run)"}

    def handed(row: dict, name: str, metric: str) -> float:
        return row[f"bicubic_{metric}" if row["fallback"] else f"{name}_{metric}"]

    return spread_lines(part_groups(rows, ("all tuning images", rows)), {n: label.get(n, n) for n in names},
                        "refinement", handed, lambda sub, name: {"below bicubic": sum(
                            1 for r in sub if handed(r, name, "lr_psnr") < r["bicubic_lr_psnr"])})


def tune(args: argparse.Namespace, measured: str) -> None:
    """``--tune``: the refinement's narrow-kernel settings studied on the tuning images, and how
    the bicubic kernel's likelihood compares with the estimate's."""
    from benchmarks.common import worktree, write_section
    from blindsr.tables import markdown_table

    from blindsr.estimators.kernelgan.settings import settings_for
    from blindsr.estimators.likelihood import NARROW_VARIANCE

    args.estimate_shape = args.estimate_shape or settings_for("default").shape
    current = worktree(measured, args.work)
    entries = tune_entries(args.data, args.tune)
    entries = first_of_each_part(entries, args.limit)
    jobs = [(current, e.lr, m, args.work / folder / e.name / f"{m}.json") for _, folder, e in entries
            for m in TUNE_METHODS]
    if not args.score_only:
        run_jobs(jobs)
    rows = tune_rows(entries, args.work, args.estimate_shape)
    table = variant_table(rows)
    preferred = [r for r in rows if r["bicubic_minus_estimate_nll"] < 0]
    below = [r for r in rows if below_bicubic(r, "default")]
    nll = np.array([r["bicubic_minus_estimate_nll"] for r in rows if not r["fallback"]])
    columns = ["part", "image", "default_kernel_psnr", "default_lr_psnr", "bicubic_kernel_psnr", "bicubic_lr_psnr"]
    columns += [f"{name}_{m}" for name in [variant_name(v) for v in NARROW_VARIANTS[1:]] + [NARROW_SHAPE]
                for m in ("kernel_psnr", "lr_psnr")]
    columns += ["bicubic_minus_estimate_nll", "scored", "fallback", "reproduced", "seconds"]
    body = ("Tuning images only (docs/RELIABILITY.md: the hard set's `tune/`, `narrow/` and `narrow_hard/` parts, "
            f"BSD100RK 1-20, Urban100RK 1-8); the default preset at revision {measured}, seed 0, and the same "
            "estimate without its refinement, refined again here with each setting of the narrow refit "
            "(`likelihood.refine_covariance`: a fit whose mean principal variance is below `narrow` HR px^2 is "
            "redone with a Gaussian scene softness of variance `blur` in the prior), each shaped as the "
            f"estimates were (`{args.estimate_shape}`). The first setting is "
            f"today's; it reproduced the default estimate to 1e-12 per tap (float rounding of the saved kernel) on {sum(r['reproduced'] for r in rows)} of "
            f"{len(rows)} images (largest difference on any: {max(r['reproduction_error'] for r in rows):.1e}). Kernel PSNR and LR-PSNR (dB) of the kernel handed over; a fallback hands over "
            "the bicubic kernel whatever the setting. 'below bicubic': images whose LR-PSNR is below the "
            "bicubic kernel's. '" + NARROW_SHAPE + "': the default estimate handed over as the Gaussian of "
            f"its covariance when its mean principal variance is below {NARROW_VARIANCE:g} HR px^2 "
            "(`likelihood.gaussian_if_narrow`).\n\n" + markdown_table(table, list(table[0]))
            + "\n\nThe bicubic kernel against the refined estimate, by the refinement's own score (its negative "
            "log-likelihood minus the estimate's, nats per LR frequency, on the pixels the refinement scored): "
            f"lower for the bicubic kernel on {len(preferred)} of {len(nll)} images; smallest difference "
            f"{nll.min():+.4f}, median {np.median(nll):+.4f}. The default estimate is below the bicubic kernel's "
            f"LR-PSNR on {len(below)} images" + named(below)
            + ": a guard that falls back when the bicubic kernel scores better would catch none of them."
            + "".join(f"\n- {remark}" for remark in args.remark)
            + "\n\nPer image:\n\n" + markdown_table(rows, columns))
    write_section("robust-tuning", "Narrow kernels and the bicubic kernel on the tuning images", body,
                  "bench-robust-tune")
    print(markdown_table(table, list(table[0])))


def focus_rule_name(rule: tuple[float, int] | None) -> str:
    return "in-focus share alone" if rule is None else f"margin {rule[0]:g}, at least {rule[1]}"


def focus_refits(lr_path: str, unrefined: str, rules: tuple) -> list[tuple[np.ndarray, str]]:
    """The unrefined kernel refined as the default preset does (``KernelGANEstimator``: the
    preset's shape) under each rule for scoring only the in-focus tiles, and what each scored."""
    from blindsr.estimators.kernelgan.settings import settings_for
    from blindsr.estimators.kernelgan.train import prepare_image
    from blindsr.estimators.likelihood import FocusRule, refine_covariance
    from blindsr.images import read_image
    from blindsr.kernel import SRKernel

    settings = settings_for("default")
    image = prepare_image(read_image(lr_path).rgb, settings)
    start = SRKernel.from_array(np.load(unrefined), 2, order=1)
    out = []
    for rule in rules:
        focus = FocusRule(*rule) if rule else FocusRule(math.inf, 0)
        k = refine_covariance(start, image, 2, shape=settings.shape, focus=focus)
        out.append((np.asarray(k.array), k.provenance["refinement"]["scored"]))
    return out


def focus_study(args: argparse.Namespace, measured: str) -> None:
    """``--focus-study``: per tuning image, the default refinement re-run from the unrefined
    estimate under each rule of ``FOCUS_RULES`` (section 'robust-focus'; with ``--focus-camera``,
    on the one-camera tuning sets: section 'robust-focus-camera')."""
    from concurrent.futures import ProcessPoolExecutor

    from benchmarks.common import worktree, write_section
    from blindsr.tables import markdown_table

    current = worktree(measured, args.work)
    camera = args.focus_camera
    parts = FOCUS_CAMERA_PARTS if camera else FOCUS_PARTS
    entries = first_of_each_part(tune_entries(args.data, args.focus_study, parts, camera), args.limit)
    jobs = [(current, e.lr, "unrefined", args.work / folder / e.name / "unrefined.json") for _, folder, e in entries]
    if not args.score_only:
        run_jobs(jobs)
    done = [(p, f, e) for p, f, e in entries if (args.work / f / e.name / "unrefined.json").exists()]
    with ProcessPoolExecutor(WORKERS) as pool:
        refits = list(pool.map(focus_refits, [str(e.lr) for _, _, e in done],
                               [str(args.work / f / e.name / "unrefined.npy") for _, f, e in done],
                               [FOCUS_RULES] * len(done)))
    names = [focus_rule_name(r) for r in FOCUS_RULES]
    rows = []
    for (part, _, entry), fits in zip(done, refits):
        row = {"part": part, "image": entry.name, **accuracy(entry, {n: k for n, (k, _) in zip(names, fits)})}
        row.update({f"{n}_scored": scored for n, (_, scored) in zip(names, fits)})
        rows.append(row)
    plain = [r for r in rows if r["part"] in ("BSD100RK 1-20", "Urban100RK 1-8", "hard narrow", "hard crops")]
    groups = part_groups(rows, *([] if camera else [("plain photos (BSD100RK 1-20, Urban100RK 1-8, narrow, crops)",
                                                     plain)]), ("all these images", rows))
    table = spread_lines(groups, {n: n for n in names}, "rule", more=lambda sub, name: {
        "in-focus tiles scored": sum(1 for r in sub if r[f"{name}_scored"] != "whole image"),
        "below bicubic": sum(1 for r in sub if r[f"{name}_lr_psnr"] < r["bicubic_lr_psnr"])})
    before, today = names[0], names[1]
    changed = [r for r in rows if r[f"{before}_scored"] != r[f"{today}_scored"]]
    columns = ["part", "image", "bicubic_lr_psnr"] + [f"{n}_{m}" for n in (before, today)
                                                       for m in ("kernel_psnr", "lr_psnr", "scored")]
    from benchmarks.camera import SETS as CAMERA_SETS  # here: a job of another revision has no camera.py

    images = ("The one-camera tuning sets of `make bench-camera` (benchmarks/camera.py; one DIV2KRK kernel per "
              "set): " + "; ".join(f"{name}: {CAMERA_SETS[name].describe()}" for name in ("tune", "tune_noise"))
              + "." if camera else
              "Tuning images only (docs/RELIABILITY.md: the hard set's `tune/`, `narrow/`, `narrow_hard/` and "
              "`crops/` parts, BSD100RK 1-20, Urban100RK 1-8).")
    body = (images + " The default preset without its refinement "
            f"(`estimator.refine=none`) at revision {measured}, seed 0, then the default refinement re-run "
            "from it under each rule for scoring only the in-focus tiles (`likelihood.scores_in_focus_tiles`): "
            "'in-focus share alone' scores them whenever fewer than 80% of the tiles are in focus (the rule "
            "before); 'margin m, at least n' also asks for n tiles that are flat or wider than the sharp "
            "reference by more than log-scale m (`TileEvidence.out_of_focus`). Today's rule is the second. "
            "Kernel PSNR and LR-PSNR (dB) of the refined kernel; 'below bicubic': images whose LR-PSNR is "
            "below the bicubic kernel's (no fallback is applied here).\n\n" + markdown_table(table, list(table[0]))
            + f"\n\nImages on which today's rule scores other pixels than the rule before: {len(changed)}"
            + "".join(f"\n- {remark}" for remark in args.remark)
            + "\n\n" + (markdown_table(changed, columns) if changed else ""))
    if camera:
        write_section("robust-focus-camera", "The in-focus rule on the one-camera tuning sets (clean and noisy)",
                      body, "bench-robust-focus-camera")
    else:
        write_section("robust-focus", "Which pixels the refinement scores: the in-focus rule on the tuning images",
                      body, "bench-robust-focus")
    print(markdown_table(table, list(table[0])))


def shape_rows(entries: list[tuple[str, object]], work: Path) -> list[dict]:
    """Per held-out image: the default estimate made with KernelGAN's shape kept (``kernel_shape``)
    and as ``estimator.shape=gaussian_if_narrow`` hands it over, the Gaussian of its covariance
    when narrow (``likelihood.gaussian_if_narrow``; a fallback's bicubic kernel as it is), scored
    under the name ``default``."""
    from blindsr.estimators.likelihood import gaussian_if_narrow, mean_variance
    from blindsr.kernel import SRKernel

    rows = []
    for part, entry in entries:
        folder = work / part.split()[0] / entry.name
        if not (folder / "kernel_shape.json").exists():
            continue
        record = json.loads((folder / "kernel_shape.json").read_text())
        before = SRKernel.from_array(np.load(folder / "kernel_shape.npy"), 2, order=1)
        after = before if record["fallback"] else gaussian_if_narrow(before)
        row = {"part": part, "image": entry.name,
               **accuracy(entry, {"kernel_shape": before.array, "default": after.array}),
               "mean_variance": mean_variance(before),
               "gaussian": after.provenance.get("shape", {}).get("chosen") == "gaussian",
               "fallback": record["fallback"] or "", "seconds": record["seconds"]}
        rows.append(row)
    return rows


SHAPE_LABELS = {"kernel_shape": "KernelGAN's shape (the default)", "default": "Gaussian when narrow",
                "bicubic": "bicubic kernel"}


def shape_summary(rows: list[dict]) -> list[dict]:
    return spread_lines(part_groups(rows), SHAPE_LABELS, "kernel handed over", more=lambda sub, m: {
        "below bicubic": sum(1 for r in sub if below_bicubic(r, m)) if m != "bicubic" else 0})


def shape_study(args: argparse.Namespace, measured: str) -> None:
    """``--shape-study``: the held-out images' default estimates with KernelGAN's shape kept, and
    with narrow ones handed over as Gaussians (section 'robust-narrow-shape')."""
    from benchmarks.common import worktree, write_section
    from blindsr.estimators.likelihood import NARROW_VARIANCE
    from blindsr.tables import markdown_table

    current = worktree(measured, args.work)
    entries = first_of_each_part(images(args.data, args.hard), args.limit)
    jobs = [(current, e.lr, "kernel_shape", args.work / p.split()[0] / e.name / "kernel_shape.json") for p, e in entries]
    if not args.score_only:
        run_jobs(jobs)
    rows = shape_rows(entries, args.work)
    name_scored_part(rows)
    table = shape_summary(rows)
    changed = [r for r in rows if r["gaussian"]]
    worse = [r for r in changed if r["default_lr_psnr"] < r["kernel_shape_lr_psnr"] - 0.1]
    lines = [f"- handed over as the Gaussian (narrow): {len(changed)} of {len(rows)} images"
             + named(changed),
             f"- of those, LR-PSNR more than 0.1 dB lower than with KernelGAN's shape: {len(worse)}"
             + named(worse)]
    for part in dict.fromkeys(r["part"] for r in changed):
        sub = [r for r in changed if r["part"] == part]
        for metric in ("kernel_psnr", "lr_psnr"):
            delta = np.array([r[f"default_{metric}"] - r[f"kernel_shape_{metric}"] for r in sub])
            lines.append(f"- {part}, the {len(sub)} narrow estimates, {metric.replace('_', ' ')} change: mean "
                         f"{delta.mean():+.2f} dB, worst {delta.min():+.2f} dB, best {delta.max():+.2f} dB")
    columns = ["part", "image"] + [f"{m}_{x}" for m in SHAPE_LABELS for x in ("kernel_psnr", "lr_psnr")]
    columns += ["mean_variance", "gaussian", "fallback", "seconds"]
    body = ("Held-out images only (the hard set's `report/` part and BSD100RK 21-100, never used for a "
            f"choice). The default preset at revision {measured} with KernelGAN's refined shape kept "
            "(`estimator.shape=kernel`), seed 0, one estimate per image, two at a "
            "time, one thread each; the same kernel as `estimator.shape=gaussian_if_narrow` hands it over: the "
            f"Gaussian of its covariance when its mean principal variance is below {NARROW_VARIANCE:g} HR px^2 "
            "(`likelihood.gaussian_if_narrow`; a fallback's bicubic kernel as it is). Kernel PSNR (dB, on the "
            "true kernel's 11x11 canvas) and LR-PSNR (dB, the true HR scene re-degraded with the kernel, against "
            "the LR input); 'below bicubic': images whose LR-PSNR is below the bicubic kernel's without a "
            "fallback.\n\n" + markdown_table(table, list(table[0])) + "\n\nChecks:\n\n" + "\n".join(lines)
            + "".join(f"\n- {remark}" for remark in args.remark)
            + "\n\nPer image:\n\n" + markdown_table(rows, columns))
    write_section("robust-narrow-shape", "Narrow kernels handed over as Gaussians (held-out images)", body,
                  "bench-robust-shape")
    print("\n".join(lines))


def spread(metric: str, values: list[float]) -> dict[str, float]:
    """``<metric> mean``, ``<metric> p10`` and ``<metric> worst`` of ``values``."""
    v = np.asarray(values)
    return {f"{metric} mean": v.mean(), f"{metric} p10": np.percentile(v, 10), f"{metric} worst": v.min()}


def part_groups(rows: list[dict], *extra: tuple[str, list[dict]]) -> list[tuple[str, list[dict]]]:
    """(part, its rows) for each part in order of appearance, then the ``extra`` groups."""
    parts = dict.fromkeys(r["part"] for r in rows)
    return [(part, [r for r in rows if r["part"] == part]) for part in parts] + list(extra)


def spread_lines(groups: list[tuple[str, list[dict]]], methods: dict[str, str], column: str,
                 value: Callable[[dict, str, str], float] | None = None,
                 more: Callable[[list[dict], str], dict] | None = None) -> list[dict]:
    """One summary line per group and method (``methods``: row key -> label, shown under
    ``column``): the images, the ``spread`` of kernel PSNR and LR-PSNR (``value(row, key, metric)``;
    by default the row's ``<key>_<metric>``) and what ``more(group rows, key)`` adds."""
    value = value or (lambda row, key, metric: row[f"{key}_{metric}"])
    out = []
    for group, sub in groups:
        for key, label in methods.items():
            line = {"part": group, column: label, "images": len(sub)}
            for metric in ("kernel_psnr", "lr_psnr"):
                line.update(spread(metric, [value(r, key, metric) for r in sub]))
            out.append({**line, **(more(sub, key) if more else {})})
    return out


def below_bicubic(row: dict, method: str) -> bool:
    """Whether ``method``'s kernel reconstructs the LR image worse than the bicubic kernel on an
    image where no fallback announced it (issue 11's check)."""
    return row[f"{method}_lr_psnr"] < row["bicubic_lr_psnr"] and not row["fallback"]


def named(rows: list[dict]) -> str:
    """' (im_2 (part), ...)' naming ``rows``' images, or '' for none."""
    return f" ({', '.join(r['image'] + ' (' + r['part'] + ')' for r in rows)})" if rows else ""


def summary(rows: list[dict], methods: tuple[str, ...] = METHODS) -> list[dict]:
    return spread_lines(part_groups(rows), {m: m for m in (*methods, "bicubic")}, "method", more=lambda sub, m: {
        "seconds": float(np.mean([r[f"{m}_s"] for r in sub])) if m != "bicubic" else 0.0})


def checks(rows: list[dict], methods: tuple[str, ...] = METHODS) -> str:
    below_paper = [r for r in rows if r["default_lr_psnr"] < r["paper_lr_psnr"] - 1.0]
    unannounced = [r for r in rows if below_bicubic(r, "default")]
    fallbacks = [r for r in rows if r["fallback"]]
    bsd = [r for r in rows if r["part"].startswith("BSD")]
    lines = [
        f"- default more than 1 dB below the paper preset in LR-PSNR: {len(below_paper)} of {len(rows)}"
        + named(below_paper),
        f"- default below the bicubic kernel's LR-PSNR without an announced fallback: {len(unannounced)}"
        + named(unannounced),
        f"- fallbacks: {len(fallbacks)}" + "".join(f"; {r['image']} ({r['part']}): {r['fallback']}" for r in fallbacks),
    ]
    if bsd:
        new = np.mean([r["default_kernel_psnr"] for r in bsd])
        old = np.mean([r["baseline_kernel_psnr"] for r in bsd])
        lines.append(f"- {bsd[0]['part']}, mean kernel PSNR: default {new:.2f} dB, "
                     f"baseline {old:.2f} dB ({len(bsd)} images)")
    ratio = np.sum([r["default_s"] for r in rows]) / np.sum([r["baseline_s"] for r in rows])
    lines.append(f"- time per estimate, default / baseline, same images (side by side unless a remark below "
                 f"says otherwise): {ratio:.3f}x")
    if rows and PREVIOUS in methods:
        for label, part in [("all images", rows)] + ([(bsd[0]["part"], bsd)] if bsd else []):
            gain = np.array([r["default_kernel_psnr"] - r[f"{PREVIOUS}_kernel_psnr"] for r in part])
            lines.append(f"- {label}, kernel PSNR default minus previous: mean {gain.mean():+.2f} dB, worst image "
                         f"{gain.min():+.2f} dB, best {gain.max():+.2f} dB ({len(part)} images)")
        ratio = np.sum([r["default_s"] for r in rows]) / np.sum([r[f"{PREVIOUS}_s"] for r in rows])
        lines.append(f"- time per estimate, default / previous, same images (side by side unless a remark below "
                     f"says otherwise): {ratio:.3f}x")
    return "\n".join(lines)


def name_scored_part(rows: list[dict]) -> None:
    """Name the BSD100RK images actually scored in their part (a limited or interrupted run scores
    part of them)."""
    scored = ranges(sorted(int(r["image"].split("_")[-1]) for r in rows if r["part"].startswith("BSD")))
    for r in rows:
        if r["part"].startswith("BSD"):
            r["part"] = f"BSD100RK {scored}"


def ranges(numbers: list[int]) -> str:
    """Sorted image numbers as runs, e.g. [21, 22, 23, 77, 78] -> '21-23, 77-78'."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in runs)


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--job":
        job(Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="BSD100RK (DIV2KRK layout)")
    parser.add_argument("--hard", type=Path, help="the hard set's report part")
    parser.add_argument("--baseline", help="git revision of the earlier default")
    parser.add_argument("--previous",
                        help="git revision of the default before today's (after the baseline), shown as 'previous'")
    parser.add_argument("--tune", type=Path, metavar="HARD_SET",
                        help="study the bicubic guard on the tuning images instead (the hard set's root folder)")
    parser.add_argument("--focus-study", type=Path, metavar="HARD_SET",
                        help="the in-focus rule on the tuning images (the hard set's root folder)")
    parser.add_argument("--focus-camera", type=Path, metavar="CAMERA_SETS",
                        help="with --focus-study: the one-camera tuning sets instead (where benchmarks/camera.py "
                             "makes them)")
    parser.add_argument("--shape-study", action="store_true",
                        help="the held-out images with and without the Gaussian for narrow estimates")
    parser.add_argument("--revision", default="HEAD", help="git revision of the code measured")
    parser.add_argument("--work", type=Path, default=ROOT / "bench_out" / "robust")
    parser.add_argument("--limit", type=int, default=0, help="first N images of each set (0: all)")
    parser.add_argument("--score-only", action="store_true",
                        help="run no estimate: score the images whose estimates are all finished")
    parser.add_argument("--estimate-shape", default=None,
                        help="--tune: the default preset's refined shape at --revision (default: today's)")
    parser.add_argument("--remark", action="append", default=[],
                        help="a line added to the section (e.g. how an interrupted run was completed)")
    args = parser.parse_args()
    if args.focus_camera and not args.focus_study:
        parser.error("--focus-camera goes with --focus-study")
    from benchmarks.common import worktree, write_section
    from blindsr.tables import markdown_table

    measured = subprocess.run(["git", "rev-parse", "--short", args.revision], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()
    args.work = args.work / measured
    args.work.mkdir(parents=True, exist_ok=True)
    if args.tune:
        tune(args, measured)
        return
    if args.focus_study:
        focus_study(args, measured)
        return
    if args.shape_study:
        if not args.hard:
            parser.error("--shape-study needs --hard")
        shape_study(args, measured)
        return
    if not (args.hard and args.baseline):
        parser.error("--hard and --baseline are required unless --tune is given")
    methods = (METHODS[0], PREVIOUS, *METHODS[1:]) if args.previous else METHODS
    code = {"baseline": worktree(args.baseline, args.work), "default": worktree(measured, args.work)}
    if args.previous:
        code[PREVIOUS] = worktree(args.previous, args.work)
    entries = images(args.data, args.hard)
    entries = first_of_each_part(entries, args.limit)
    # The paper preset runs from today's code; an earlier default from its own revision's.
    jobs = [(code.get(m, code["default"]), e.lr, "default" if m == PREVIOUS else m,
             args.work / p.split()[0] / e.name / f"{m}.json") for p, e in entries for m in methods]
    if not args.score_only:
        run_jobs(jobs)
    rows = score(entries, args.work, methods)
    name_scored_part(rows)
    report = checks(rows, methods)
    columns = ["part", "image"] + [f"{m}_{x}" for m in (*methods, "bicubic") for x in ("kernel_psnr", "lr_psnr")]
    columns += ["fallback", "confidence", "scored"] + [f"{m}_s" for m in methods]
    stats = ["part", "method", "images"] + [f"{m} {s}" for m in ("kernel_psnr", "lr_psnr")
                                           for s in ("mean", "p10", "worst")] + ["seconds"]
    body = ("Kernel PSNR (dB, against the true kernel on its 11x11 canvas) and LR-PSNR (dB: the true HR "
            "scene re-degraded with the kernel, against the LR input) per estimator. `baseline` is the "
            f"default preset at revision {args.baseline} (before restart health checks, tile selection "
            f"and confidence); `default` and `paper` are the presets at revision {measured}, each run "
            "from a git worktree of its revision; `bicubic` is the plain "
            "bicubic kernel. "
            + (f"`previous` is the default preset at revision {args.previous}, run from its worktree. "
               if args.previous else "")
            + "Seed 0; estimates two at a time, one thread each; seconds are the estimate "
            "alone.\n\n" + markdown_table(summary(rows, methods), stats) + "\n\nChecks:\n\n" + report
            + "".join(f"\n- {remark}" for remark in args.remark)
            + "\n\nPer image:\n\n" + markdown_table(rows, columns))
    write_section("robust", "Kernel estimates on held-out photos (robustness)", body, "bench-robust")
    print(report)


if __name__ == "__main__":
    main()
