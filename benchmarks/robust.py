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
        [--revision HEAD]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CODE_ROOT = "BLINDSR_BENCH_CODE_ROOT"
# The code measured first on the path: the repository root, or for a job of another revision that
# revision's worktree (a job runs this file by its path, so its own folder would be first).
sys.path[0] = os.environ.get(CODE_ROOT, str(ROOT))

METHODS = ("baseline", "default", "paper")  # estimates; the bicubic kernel is scored as well
BSD_FIRST, BSD_LAST = 21, 100
WORKERS = 2


def job(lr: Path, method: str, out: Path) -> None:
    """One estimate in this process (the blindsr on sys.path decides the code), saved to ``out``."""
    from blindsr.estimators import get_estimator
    from blindsr.images import read_image

    preset = "paper" if method == "paper" else "default"
    estimator = get_estimator("kernelgan", preset=preset, device="cpu")
    image = read_image(lr).rgb
    start = time.perf_counter()
    estimate = estimator.estimate(image, 2, seed=0)
    seconds = time.perf_counter() - start
    k = estimate.kernels[2]
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out.with_suffix(".npy"), np.asarray(k.array))
    record = {"seconds": seconds, "fallback": k.provenance.get("fallback"), "warnings": estimate.warnings,
              "confidence": k.provenance.get("confidence"),
              "scored": k.provenance.get("refinement", {}).get("scored")}
    out.write_text(json.dumps(record))


def run_job(code_root: Path, lr: Path, method: str, out: Path) -> None:
    if out.exists():
        return
    env = {**os.environ, CODE_ROOT: str(code_root), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--job", str(Path(lr).resolve()), method, str(out)],
                   env=env, check=True, cwd=code_root)


def images(data: Path, hard: Path) -> list[tuple[str, object]]:
    from blindsr.datasets import load_benchmark

    entries = [("hard report", e) for e in load_benchmark(hard, 2)]
    entries += [("BSD100RK 21-100", e) for e in load_benchmark(data, 2)
                if BSD_FIRST <= e.number <= BSD_LAST]
    return entries


def score(entries: list[tuple[str, object]], work: Path) -> list[dict]:
    from blindsr.degradation import bicubic_kernel
    from blindsr.images import read_image
    from blindsr.kernel import load_kernel
    from blindsr.metrics import kernel_psnr, lr_psnr

    rows = []
    for part, entry in entries:
        folder = work / part.split()[0] / entry.name
        if not all((folder / f"{m}.json").exists() for m in METHODS):
            continue
        lr, hr = read_image(entry.lr).rgb, read_image(entry.gt).rgb
        truth = load_kernel(entry.kernel, 2)
        row = {"part": part, "image": entry.name}
        kernels = {m: np.load(folder / f"{m}.npy") for m in METHODS}
        kernels["bicubic"] = bicubic_kernel(2).array
        for m, k in kernels.items():
            row[f"{m}_kernel_psnr"] = kernel_psnr(k, truth, size=truth.size)
            row[f"{m}_lr_psnr"] = lr_psnr(hr, k, lr, 2)
        for m in METHODS:
            row[f"{m}_s"] = json.loads((folder / f"{m}.json").read_text())["seconds"]
        record = json.loads((folder / "default.json").read_text())
        row["fallback"] = record["fallback"] or ""
        row["confidence"] = (record["confidence"] or {}).get("score")
        row["scored"] = record["scored"] or ""
        rows.append(row)
    return rows


def summary(rows: list[dict]) -> list[dict]:
    out = []
    for part in dict.fromkeys(r["part"] for r in rows):
        sub = [r for r in rows if r["part"] == part]
        for m in (*METHODS, "bicubic"):
            line = {"part": part, "method": m, "images": len(sub)}
            for metric in ("kernel_psnr", "lr_psnr"):
                v = np.array([r[f"{m}_{metric}"] for r in sub])
                line.update({f"{metric} mean": v.mean(), f"{metric} p10": np.percentile(v, 10),
                             f"{metric} worst": v.min()})
            line["seconds"] = float(np.mean([r[f"{m}_s"] for r in sub])) if m != "bicubic" else 0.0
            out.append(line)
    return out


def checks(rows: list[dict]) -> str:
    below_paper = [r["image"] + f" ({r['part']})" for r in rows if r["default_lr_psnr"] < r["paper_lr_psnr"] - 1.0]
    below_bicubic = [r["image"] + f" ({r['part']})" for r in rows
                     if r["default_lr_psnr"] < r["bicubic_lr_psnr"] and not r["fallback"]]
    fallbacks = [r for r in rows if r["fallback"]]
    bsd = [r for r in rows if r["part"].startswith("BSD")]
    lines = [
        f"- default more than 1 dB below the paper preset in LR-PSNR: {len(below_paper)} of {len(rows)}"
        + (f" ({', '.join(below_paper)})" if below_paper else ""),
        f"- default below the bicubic kernel's LR-PSNR without an announced fallback: {len(below_bicubic)}"
        + (f" ({', '.join(below_bicubic)})" if below_bicubic else ""),
        f"- fallbacks: {len(fallbacks)}" + "".join(f"; {r['image']} ({r['part']}): {r['fallback']}" for r in fallbacks),
    ]
    if bsd:
        new = np.mean([r["default_kernel_psnr"] for r in bsd])
        old = np.mean([r["baseline_kernel_psnr"] for r in bsd])
        lines.append(f"- {bsd[0]['part']}, mean kernel PSNR: default {new:.2f} dB, "
                     f"baseline {old:.2f} dB ({len(bsd)} images)")
    ratio = np.sum([r["default_s"] for r in rows]) / np.sum([r["baseline_s"] for r in rows])
    lines.append(f"- time per estimate, default / baseline, same images, same run: {ratio:.3f}x")
    return "\n".join(lines)


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
    parser.add_argument("--hard", type=Path, required=True, help="the hard set's report part")
    parser.add_argument("--baseline", required=True, help="git revision of the earlier default")
    parser.add_argument("--revision", default="HEAD", help="git revision of the code measured")
    parser.add_argument("--work", type=Path, default=ROOT / "bench_out" / "robust")
    parser.add_argument("--limit", type=int, default=0, help="first N images of each set (0: all)")
    parser.add_argument("--score-only", action="store_true",
                        help="run no estimate: score the images whose estimates are all finished")
    parser.add_argument("--remark", action="append", default=[],
                        help="a line added to the section (e.g. how an interrupted run was completed)")
    args = parser.parse_args()
    from benchmarks.common import worktree, write_section
    from blindsr.tables import markdown_table

    measured = subprocess.run(["git", "rev-parse", "--short", args.revision], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()
    args.work = args.work / measured
    args.work.mkdir(parents=True, exist_ok=True)
    baseline, current = worktree(args.baseline, args.work), worktree(measured, args.work)
    entries = images(args.data, args.hard)
    if args.limit:
        entries = [e for part in dict.fromkeys(p for p, _ in entries)
                   for e in [x for x in entries if x[0] == part][:args.limit]]
    jobs = [(baseline if m == "baseline" else current, e.lr, m, args.work / p.split()[0] / e.name / f"{m}.json")
            for p, e in entries for m in METHODS]
    if not args.score_only:
        with ThreadPoolExecutor(WORKERS) as pool:
            for n, _ in enumerate(pool.map(lambda j: run_job(*j), jobs), start=1):
                if n % 6 == 0:
                    print(f"{n}/{len(jobs)} estimates", flush=True)
    rows = score(entries, args.work)
    scored = ranges(sorted(int(r["image"].split("_")[-1]) for r in rows if r["part"].startswith("BSD")))
    for r in rows:  # name the images actually scored (an interrupted run scores part of them)
        if r["part"].startswith("BSD"):
            r["part"] = f"BSD100RK {scored}"
    columns = ["part", "image"] + [f"{m}_{x}" for m in (*METHODS, "bicubic") for x in ("kernel_psnr", "lr_psnr")]
    columns += ["fallback", "confidence", "scored", "baseline_s", "default_s", "paper_s"]
    stats = ["part", "method", "images"] + [f"{m} {s}" for m in ("kernel_psnr", "lr_psnr")
                                           for s in ("mean", "p10", "worst")] + ["seconds"]
    body = ("Kernel PSNR (dB, against the true kernel on its 11x11 canvas) and LR-PSNR (dB: the true HR "
            "scene re-degraded with the kernel, against the LR input) per estimator. `baseline` is the "
            f"default preset at revision {args.baseline} (before restart health checks, tile selection "
            f"and confidence); `default` and `paper` are the presets at revision {measured}, each run "
            "from a git worktree of its revision; `bicubic` is the plain "
            "bicubic kernel. Seed 0; estimates two at a time, one thread each; seconds are the estimate "
            "alone.\n\n" + markdown_table(summary(rows), stats) + "\n\nChecks:\n\n" + checks(rows)
            + "".join(f"\n- {remark}" for remark in args.remark)
            + "\n\nPer image:\n\n" + markdown_table(rows, columns))
    write_section("robust", "Kernel estimates on held-out photos (robustness)", body, "bench-robust")
    print(checks(rows))


if __name__ == "__main__":
    main()
