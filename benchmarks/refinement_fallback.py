"""What to hand over when only the refinement is untrusted: the bicubic kernel or KernelGAN's
unrefined estimate (section 'refinement-fallback', tuning images only).

The default estimate falls back when its confidence is low (``estimators.confidence``). Where the
runs are physical, agree and the image has texture, and only the refinement ran to its bound, the
restarts' combined kernel before the refinement is still there to hand over. This measures, per
tuning image, the default estimate (today's handover), the same estimate without its refinement
(``estimator.refine=none``: the same runs, bit for bit), the bicubic kernel and, where the default
fell back, the paper preset; then the handover of each rule:

* ``bicubic`` - the bicubic kernel whenever the confidence is low (the rule before);
* ``unrefined`` - KernelGAN's unrefined estimate when the refinement alone made the confidence low
  (``confidence.refinement_alone``), the bicubic kernel for any other reason.

The decision rule, written before the first run: ``unrefined`` becomes the default when (1) on
every tuning image where it hands over the unrefined estimate, that estimate's LR-PSNR is at least
the bicubic kernel's, and (2) on the tuning images where it could (runs, agreement and texture
trusted: ``confidence.others_trusted``), the
unrefined estimate is below the bicubic kernel's LR-PSNR on at most ``SAFE_SHARE`` of them and
never by more than ``SAFE_MARGIN_DB``. (2) is the measure of the fallback kernel's safety, which
(1) alone cannot give where few images fall back.

    python -m benchmarks.refinement_fallback --data ../shared/data/BSD100RK --hard-set hard_set
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np

from benchmarks.robust import (FOCUS_PARTS, ROOT, accuracy, first_of_each_part, named, part_groups, run_jobs,
                               spread_lines, tune_entries)

# The sky parts first: they are the ones made to provoke the fallback.
PARTS = (("hard sky_tune", "sky_tune", None), ("hard urban_sky_tune", "urban_sky_tune", None)) + FOCUS_PARTS
SAFE_SHARE = 0.05
SAFE_MARGIN_DB = 1.0


def rows_of(entries: list[tuple[str, str, object]], work: Path) -> list[dict]:
    """Per image: each kernel's accuracy, what the default's confidence said, and what each rule
    hands over (``<rule>_kernel_psnr``, ``<rule>_lr_psnr``)."""
    from blindsr.estimators.confidence import others_trusted, refinement_alone

    rows = []
    for part, folder, entry in entries:
        where = work / folder / entry.name
        if not all((where / f"{m}.json").exists() for m in ("default", "unrefined")):
            continue
        record = json.loads((where / "default.json").read_text())
        confidence = record["confidence"]
        kernels = {m: np.load(where / f"{m}.npy") for m in ("default", "unrefined")}
        has_paper = (where / "paper.json").exists()
        if has_paper:
            kernels["paper"] = np.load(where / "paper.npy")
        row = {"part": part, "image": entry.name, **accuracy(entry, kernels),
               "fallback": record["fallback"] or "", "confidence": confidence["score"],
               **{f"factor_{k}": v for k, v in confidence["factors"].items()},
               "eligible": others_trusted(confidence), "triggered": bool(record["fallback"]) and refinement_alone(confidence)}
        if not has_paper:
            row.update(paper_kernel_psnr=math.nan, paper_lr_psnr=math.nan)
        for metric in ("kernel_psnr", "lr_psnr"):  # the default itself is the bicubic rule's handover
            row[f"unrefined rule_{metric}"] = row[f"unrefined_{metric}" if row["triggered"] else f"default_{metric}"]
        rows.append(row)
    return rows


def by_part(rows: list[dict]) -> str:
    """' (part: n, ...)' counting ``rows`` by part, or '' for none."""
    counts = Counter(r["part"] for r in rows)  # in order of first appearance
    return f" ({', '.join(f'{part}: {n}' for part, n in counts.items())})" if rows else ""


def verdict(rows: list[dict]) -> tuple[list[str], bool]:
    """The decision rule's lines and whether ``unrefined`` is adopted."""
    triggered = [r for r in rows if r["triggered"]]
    losing = [r for r in triggered if r["unrefined_lr_psnr"] < r["bicubic_lr_psnr"]]
    pool = [r for r in rows if r["eligible"]]
    gap = np.array([r["unrefined_lr_psnr"] - r["bicubic_lr_psnr"] for r in pool])
    below = [r for r, g in zip(pool, gap) if g < 0]
    one = not losing
    two = len(below) <= SAFE_SHARE * len(pool) and (gap.min() >= -SAFE_MARGIN_DB if len(gap) else True)
    lines = [
        f"- (1) images where the rule hands over the unrefined estimate: {len(triggered)}" + named(triggered)
        + f"; of them below the bicubic kernel's LR-PSNR: {len(losing)}" + named(losing)
        + (" - met" if one else " - not met"),
        f"- (2) images where it could (runs, agreement, texture trusted): {len(pool)}; the unrefined estimate below "
        f"the bicubic kernel's LR-PSNR on {len(below)} ({100 * len(below) / max(len(pool), 1):.1f}%, bar "
        f"{100 * SAFE_SHARE:g}%)" + by_part(below)
        + (f"; unrefined minus bicubic: worst {gap.min():+.2f} dB (bar -{SAFE_MARGIN_DB:g}), 10th percentile "
           f"{np.percentile(gap, 10):+.2f}, median {np.median(gap):+.2f}" if len(gap) else "")
        + (" - met" if two else " - not met"),
        "- verdict: " + ("`unrefined` becomes the default" if one and two else "the bicubic fallback stays"),
    ]
    return lines, one and two


def main() -> None:
    from benchmarks.common import worktree, write_section
    from blindsr.tables import markdown_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="BSD100RK (DIV2KRK layout)")
    parser.add_argument("--hard-set", type=Path, required=True, help="the hard set's root folder")
    parser.add_argument("--revision", default="HEAD", help="git revision of the code measured")
    parser.add_argument("--work", type=Path, default=ROOT / "bench_out" / "refinement_fallback")
    parser.add_argument("--limit", type=int, default=0, help="first N images of each part (0: all)")
    parser.add_argument("--score-only", action="store_true", help="run no estimate: score what is finished")
    parser.add_argument("--remark", action="append", default=[], help="a line added to the section")
    args = parser.parse_args()
    measured = subprocess.run(["git", "rev-parse", "--short", args.revision], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()
    work = args.work / measured
    work.mkdir(parents=True, exist_ok=True)
    code = worktree(measured, work)
    entries = first_of_each_part(tune_entries(args.data, args.hard_set, PARTS), args.limit)
    if not args.score_only:
        run_jobs([(code, e.lr, m, work / f / e.name / f"{m}.json") for _, f, e in entries
                  for m in ("default", "unrefined")])
        fell_back = [(f, e) for _, f, e in entries if (work / f / e.name / "default.json").exists()
                     and json.loads((work / f / e.name / "default.json").read_text())["fallback"]]
        run_jobs([(code, e.lr, "paper", work / f / e.name / "paper.json") for f, e in fell_back])
    rows = rows_of(entries, work)
    lines, _ = verdict(rows)
    table = spread_lines(part_groups(rows, ("all tuning images", rows)),
                         {"default": "bicubic when untrusted (before)",
                          "unrefined rule": "unrefined when only the refinement is untrusted",
                          "unrefined": "unrefined always", "bicubic": "bicubic kernel"}, "kernel handed over",
                         more=lambda sub, key: {"below bicubic": sum(
                             1 for r in sub if r[f"{key}_lr_psnr"] < r["bicubic_lr_psnr"])})
    shown = [r for r in rows if r["fallback"] or (r["eligible"] and r["unrefined_lr_psnr"] < r["bicubic_lr_psnr"])]
    columns = ["part", "image", "default_kernel_psnr", "default_lr_psnr", "unrefined_kernel_psnr",
               "unrefined_lr_psnr", "paper_kernel_psnr", "paper_lr_psnr", "bicubic_kernel_psnr", "bicubic_lr_psnr",
               "confidence", "factor_runs", "factor_agreement", "factor_texture", "factor_refinement", "eligible",
               "triggered", "fallback"]
    body = ("Tuning images only (docs/RELIABILITY.md: the hard set's `sky_tune/`, `urban_sky_tune/`, `tune/`, "
            "`narrow/`, `narrow_hard/` and `crops/` parts, BSD100RK 1-20, Urban100RK 1-8). The default preset at "
            f"revision {measured}, seed 0, and the same estimate without its refinement (`estimator.refine=none`: "
            "the same runs), each a process of its own, two at a time, one thread each; the paper preset where "
            "the default fell back. Kernel PSNR and LR-PSNR (dB) of the kernel each rule hands over; 'below "
            "bicubic': images whose LR-PSNR is below the bicubic kernel's. The decision rule was written "
            "before the run (benchmarks/refinement_fallback.py): 'unrefined' becomes the default when (1) no "
            "image on which it hands over the unrefined estimate is below the bicubic kernel's LR-PSNR, and (2) "
            f"on the images where it could, the unrefined estimate is below it on at most {100 * SAFE_SHARE:g}% "
            f"and never by more than {SAFE_MARGIN_DB:g} dB.\n\n" + markdown_table(table, list(table[0]))
            + "\n\nDecision:\n\n" + "\n".join(lines) + "".join(f"\n- {remark}" for remark in args.remark)
            + "\n\nImages that fell back, or whose unrefined estimate the rule could hand over and is below the "
            "bicubic kernel's LR-PSNR:\n\n" + (markdown_table(shown, columns) if shown else "(none)"))
    write_section("refinement-fallback", "When only the refinement is untrusted: the bicubic kernel or the "
                  "unrefined estimate (tuning images)", body, "bench-refinement-fallback")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
