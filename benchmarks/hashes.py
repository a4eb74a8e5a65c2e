"""Outputs by hash: ``pipeline`` (zssr, srmd, bicubic), ``batch`` and ``eval`` on a few benchmark
images with fixed seeds, every kernel and SR image hashed. Run it on two revisions and compare, to
show that a change of structure left the results alone:

    python -m benchmarks.hashes --data ../shared/data/BSD100RK --out before.json
    python -m benchmarks.hashes --data ../shared/data/BSD100RK --out after.json --compare before.json

The stage options are the defaults (no overrides), so both revisions run what a user gets.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HASHED = (".npy", ".png")


def blindsr(*args: str, env: dict[str, str]) -> None:
    command = [sys.executable, "-m", "blindsr", *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.suffix in HASHED and p.is_file()}


def run_all(data: Path, images: list[int], work: Path, env: dict[str, str]) -> dict[str, str]:
    """Every verb's outputs under ``work``, hashed by path relative to it."""
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
            blindsr("pipeline", f"input={photo}", f"output={work / 'pipeline' / sr}", f"sr={sr}", env=env)
    blindsr("batch", f"input={subset / 'lr_x2'}", f"output={work / 'batch'}", "sr=srmd", env=env)
    blindsr("eval", f"dataset={subset}", f"output={work / 'eval'}", "estimator=[gt,kernelgan]",
            "sr=[zssr,srmd]", env=env)
    return digests(work / "pipeline") | {f"batch/{k}": v for k, v in digests(work / "batch").items()} | {
        f"eval/{k.split('/', 2)[0]}/{k.rsplit('/', 1)[-1]}": v  # cache folders are named by config hash
        for k, v in digests(work / "eval" / "tasks_x2").items()} | eval_scores(work / "eval")


def eval_scores(folder: Path) -> dict[str, str]:
    """The Table-1 numbers (kernel PSNR, LR-PSNR, PSNR, SSIM per method), as text."""
    table = json.loads(next(folder.glob("table_x2*.json")).read_text())
    out = {}
    for row in table["per_image"]:
        values = {k: row.get(k) for k in ("kernel_psnr", "lr_psnr", "psnr", "ssim")}
        out[f"eval-score/{row['method']}/{row['image']}"] = json.dumps(values, sort_keys=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a DIV2KRK-layout benchmark (x2)")
    parser.add_argument("--images", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, required=True, help="JSON of path -> sha256")
    parser.add_argument("--compare", type=Path, help="an earlier --out to compare with")
    args = parser.parse_args()
    env = dict(os.environ, PYTHONHASHSEED="0")
    with tempfile.TemporaryDirectory() as tmp:
        found = run_all(args.data.resolve(), args.images, Path(tmp), env)
    args.out.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    print(f"{len(found)} outputs hashed -> {args.out}")
    if args.compare:
        before = json.loads(args.compare.read_text())
        differ = sorted(k for k in before.keys() | found.keys() if before.get(k) != found.get(k))
        for key in differ:
            print(f"differs: {key}")
        print(f"{len(found) - len(differ)} of {len(before.keys() | found.keys())} identical")
        return 1 if differ else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
