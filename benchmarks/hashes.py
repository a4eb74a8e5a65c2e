"""Outputs by hash, two revisions side by side: ``pipeline`` (zssr, srmd, bicubic), ``batch`` and
``eval`` (gt and kernelgan with zssr and srmd) on a few benchmark images, default stage options,
fixed seeds; every kernel and SR image hashed, and the eval scores kept at full precision. Shows
that a change of structure left the results alone:

    python -m benchmarks.hashes --data ../shared/data/BSD100RK --before d5a51cf --after HEAD

Each revision runs from a git worktree of it (kept under ``--work``, with its hashes, so a
revision runs once). Eval's cache folders are named by a hash of the stage config; the comparison
ignores that name. SRMD needs its weights and ``BLINDSR_WEIGHTS_SRMD_PCA`` (see ``make bench-srmd``).
Writes the section 'hashes-BEFORE-AFTER' of docs/BENCHMARKS.md (one per pair of revisions).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import worktree, write_section

ROOT = Path(__file__).resolve().parents[1]
HASHED = (".npy", ".png")


def blindsr(*args: str, env: dict[str, str], cwd: Path) -> None:
    command = [sys.executable, "-m", "blindsr", *args]
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.suffix in HASHED and p.is_file()}


def eval_scores(folder: Path) -> dict[str, str]:
    """The Table-1 numbers (kernel PSNR, LR-PSNR, PSNR, SSIM per method and image), as text."""
    table = json.loads(next(folder.glob("table_x2*.json")).read_text())
    out = {}
    for row in table["per_image"]:
        values = {k: row.get(k) for k in ("kernel_psnr", "lr_psnr", "psnr", "ssim")}
        out[f"eval-score/{row['method']}/{row['image']}"] = json.dumps(values, sort_keys=True)
    return out


def run_all(code: Path, data: Path, images: list[int], work: Path) -> dict[str, str]:
    """Every verb's outputs, run by the code in ``code``, hashed by path relative to ``work``."""
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=f"{code}{os.pathsep}{code / 'third_party'}")
    subset = work / "data"
    for folder in ("gt", "lr_x2", "gt_k_x2"):
        (subset / folder).mkdir(parents=True)
    for number in images:
        shutil.copy(data / "gt" / f"im_{number}.png", subset / "gt" / f"im_{number}.png")
        shutil.copy(data / "lr_x2" / f"im_{number}.png", subset / "lr_x2" / f"im_{number}.png")
        for kernel in (data / "gt_k_x2").glob(f"kernel_{number}.*"):
            shutil.copy(kernel, subset / "gt_k_x2" / kernel.name)
    for number in images:
        photo = str(subset / "lr_x2" / f"im_{number}.png")
        for sr in ("zssr", "srmd", "bicubic"):
            blindsr("pipeline", f"input={photo}", f"output={work / 'pipeline' / sr}", f"sr={sr}", env=env, cwd=code)
    blindsr("batch", f"input={subset / 'lr_x2'}", f"output={work / 'batch'}", "sr=srmd", env=env, cwd=code)
    blindsr("eval", f"dataset={subset}", f"output={work / 'eval'}", "estimator=[gt,kernelgan]",
            "sr=[zssr,srmd]", env=env, cwd=code)
    return digests(work / "pipeline") | {f"batch/{k}": v for k, v in digests(work / "batch").items()} | {
        f"eval/{k}": v for k, v in digests(work / "eval" / "tasks_x2").items()} | eval_scores(work / "eval")


def normalised(found: dict[str, str]) -> dict[str, str]:
    """Keys without eval's cache-folder hashes (``kernelgan-5d13f51b/kernels`` -> ``kernelgan``):
    they name the config's encoding, not the results."""
    return {re.sub(r"^eval/([a-z_]+)-[0-9a-f]{8}(/kernels)?/", r"eval/\1/", k): v for k, v in found.items()}


def hashes_at(revision: str, data: Path, images: list[int], work: Path) -> dict[str, str]:
    """The outputs of ``revision`` (a short hash) by hash (computed once, then read from ``work``)."""
    cached = work / f"{revision}-{'-'.join(map(str, images))}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        found = run_all(worktree(revision, work), data, images, Path(tmp))
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a DIV2KRK-layout benchmark (x2)")
    parser.add_argument("--images", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--before", required=True, help="git revision")
    parser.add_argument("--after", default="HEAD", help="git revision")
    parser.add_argument("--work", type=Path, default=ROOT / "bench_out" / "hashes")
    parser.add_argument("--remark", default="", help="a sentence for the section (what changed)")
    args = parser.parse_args()
    revisions = [subprocess.run(["git", "rev-parse", "--short", r], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip() for r in (args.before, args.after)]
    before, after = (normalised(hashes_at(r, args.data.resolve(), args.images, args.work)) for r in revisions)
    differ = sorted(k for k in before if before[k] != after.get(k))
    new = sorted(after.keys() - before.keys())
    kinds = {"kernels (.npy)": lambda k: k.endswith(".npy"),
             "kernel pictures (.png)": lambda k: k.endswith("_kernel_x2.png"),
             "SR images (.png)": lambda k: k.endswith("_x2.png") and "_kernel_" not in k,
             "eval scores (kernel PSNR, LR-PSNR, PSNR, SSIM)": lambda k: k.startswith("eval-score/")}
    lines = [f"Revisions: {revisions[0]} (before) and {revisions[1]} (after); BSD100RK x2 images "
             f"{', '.join(map(str, args.images))}; `pipeline` with sr=zssr, srmd and bicubic, `batch` (srmd), "
             "`eval` with estimator=[gt,kernelgan] sr=[zssr,srmd]; default options, seed 0.", ""]
    if args.remark:
        lines += [args.remark, ""]
    lines += ["| outputs | before | identical after |", "|---|---|---|"]
    for label, kind in kinds.items():
        keys = [k for k in before if kind(k)]
        lines.append(f"| {label} | {len(keys)} | {sum(before[k] == after.get(k) for k in keys)} |")
    lines += ["", f"**{len(before) - len(differ)} of {len(before)}** earlier outputs identical by sha256."]
    if differ:
        lines += ["", "Differing: " + ", ".join(f"`{k}`" for k in differ) + "."]
        scores = [k for k in differ if k.startswith("eval-score/")]
        if scores:
            lines += ["", "How far the differing eval scores moved (before -> after):", "",
                      "| method / image | kernel PSNR | LR-PSNR | Y-PSNR | SSIM |", "|---|---|---|---|---|"]
            for key in scores:
                old, new_ = json.loads(before[key]), json.loads(after[key])
                cells = [f"{old[m]:.4f} -> {new_[m]:.4f}" for m in ("kernel_psnr", "lr_psnr", "psnr")]
                cells.append(f"{old['ssim']:.5f} -> {new_['ssim']:.5f}")
                lines.append(f"| {key.removeprefix('eval-score/')} | " + " | ".join(cells) + " |")
    if new:
        lines += ["", "New outputs (absent before): " + ", ".join(f"`{k}`" for k in new) + "."]
    body = "\n".join(lines)
    print(body)
    write_section(f"hashes-{revisions[0]}-{revisions[1]}",
                  f"Results by hash across a change of structure: {revisions[0]} -> {revisions[1]}", body,
                  "bench-hashes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
