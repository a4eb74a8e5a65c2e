"""The default KernelGAN estimate against the same estimate at an earlier revision, side by side
(make bench-kernel-split: the runs split over processes, the 'kernel-split' section of
docs/BENCHMARKS.md; make bench-kernel-faster: the same kernels in less time).

Side by side: one long-lived worker process per revision (``--before``, a git worktree, and this
checkout), each with the whole CPU thread budget and its code loaded, estimating the same image in
turn (the two take turns going first, image by image), so that both see the same machine. Each
worker builds one optimiser before its first estimate: the library's first use of it imports
modules for over a second, which a run of many estimates pays once. Per set: kernel PSNR (mean,
p10, worst), LR-reconstruction PSNR, fallbacks, seconds, units (``benchmarks.common.unit_seconds``,
timed before each image's pair) and the time ratio, image by image. Every estimate is cached by
revision, set and image, so a stopped run resumes.

    python -m benchmarks.kernel_split --before 5f3d64d --set ../shared/data/BSD100RK:1-20 \\
        --set hard_set/tune:1-20
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import native_bf16, numbers, revision, unit_seconds, worktree, write_section
from benchmarks.kernel_budget import set_label, summarise
from blindsr.datasets import load_benchmark
from blindsr.tables import markdown_table

ROOT = Path(__file__).resolve().parents[1]
SPLIT_SECTION = "kernel-split:KernelGAN: the restarts split over processes"
SPLIT_CHANGE = ("batched|split|at {before} its four restarts batched in one process (one thread per restart within "
                "the budget), at {now} in two forked processes of two (`train.split_runs`)")
# Runs in each revision's worker: estimates what it reads on stdin, one JSON line per image.
WORKER = r"""
import json, sys, time
import torch
from blindsr.datasets import load_benchmark
from blindsr.estimators import get_estimator
from blindsr.evaluation import estimate_kernels, kernel_metrics
torch.optim.Adam([torch.zeros(1, requires_grad=True)])
estimator = get_estimator("kernelgan", device="cpu")
for line in sys.stdin:
    job = json.loads(line)
    entry = next(e for e in load_benchmark(job["folder"], 2) if e.name == job["image"])
    kernels, seconds = estimate_kernels(entry, estimator, 2, seed=0)
    row = {"image": entry.name, "seconds": seconds, **kernel_metrics(entry, kernels, 2),
           "fallback": bool(kernels[2].provenance.get("fallback"))}
    print(json.dumps(row), flush=True)
"""


class Worker:
    """A Python process running ``WORKER`` on the code in ``tree``."""

    def __init__(self, tree: Path):
        env = {**os.environ, "PYTHONPATH": str(tree)}
        self.process = subprocess.Popen([sys.executable, "-c", WORKER], cwd=tree, env=env, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def estimate(self, folder: Path, image: str) -> dict[str, Any]:
        self.process.stdin.write(json.dumps({"folder": str(folder.resolve()), "image": image}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the worker stopped on {folder}/{image} (exit code {self.process.wait()})")
        return json.loads(line)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def parse_set(text: str) -> tuple[Path, list[int]]:
    """``FOLDER:1-20`` -> (folder, image numbers)."""
    folder, _, span = text.rpartition(":")
    if not folder:
        raise SystemExit(f"--set {text!r}: expected FOLDER:A-B")
    return Path(folder), numbers(span)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="git revision of the estimate compared against")
    parser.add_argument("--set", action="append", required=True, type=parse_set, dest="sets",
                        help="FOLDER:A-B (DIV2KRK layout, x2); tuning images")
    parser.add_argument("--work", type=Path, default=ROOT / "bench_out" / "kernel_split")
    parser.add_argument("--now", default=None,
                        help="the revision whose cached estimates stand for this checkout's (its KernelGAN code "
                             "unchanged since; default: this checkout's revision)")
    parser.add_argument("--remark", default="", help="a paragraph for the section")
    parser.add_argument("--section", default=SPLIT_SECTION, help="NAME:TITLE of the section written")
    parser.add_argument("--make-target", default="bench-kernel-split")
    parser.add_argument("--change", default=SPLIT_CHANGE,
                        help="BEFORE|NOW|WHAT: short labels of the two revisions' code and a sentence on what "
                             "changed between them (a clause after 'at revision X' for each)")
    args = parser.parse_args()
    now = args.now or revision()
    before_label, now_label, change = args.change.split("|")
    section, _, title = args.section.partition(":")
    trees = {"before": worktree(args.before, args.work), "now": ROOT}
    labels = {"before": f"before ({args.before}, {before_label})", "now": f"now ({now}, {now_label})"}
    workers: dict[str, Worker] = {}
    results: dict[tuple[str, str], list[dict]] = {}
    unit_start = unit_seconds()
    try:
        for folder, wanted in args.sets:
            label = set_label(folder, wanted)
            names = [e.name for e in load_benchmark(folder, 2) if int(e.name.split("_")[-1]) in wanted]
            for i, image in enumerate(names):
                paths = {k: args.work / (args.before if k == "before" else now) / label.replace(" ", "_")
                         / f"{image}.json" for k in trees}
                missing = [k for k in (("before", "now") if i % 2 == 0 else ("now", "before")) if not paths[k].is_file()]
                unit = unit_seconds() if missing else None
                for key in missing:
                    worker = workers.get(key) or workers.setdefault(key, Worker(trees[key]))
                    row = {**worker.estimate(folder, image), "unit": unit}
                    paths[key].parent.mkdir(parents=True, exist_ok=True)
                    paths[key].write_text(json.dumps(row))
                    print(f"{labels[key]} | {label} | {image}: {row['kernel_psnr']:.2f} dB, {row['seconds']:.1f} s",
                          flush=True)
                for key in trees:
                    results.setdefault((label, key), []).append(json.loads(paths[key].read_text()))
    finally:
        for worker in workers.values():
            worker.close()
    unit_end = unit_seconds()
    rows, lines = [], []
    for label in dict.fromkeys(label for label, _ in results):
        before, today = results[(label, "before")], results[(label, "now")]
        for key, found in (("before", before), ("now", today)):
            rows.append({"set": label, "estimate": labels[key], **summarise(found, unit_start)})
        ratios = [t["seconds"] / b["seconds"] for b, t in zip(before, today)]
        gaps = [t["kernel_psnr"] - b["kernel_psnr"] for b, t in zip(before, today)]
        same = sum(t["kernel_psnr"] == b["kernel_psnr"] for b, t in zip(before, today))
        lines.append(f"- {label}: time now / before, image by image: median {statistics.median(ratios):.3f}x "
                     f"(range {min(ratios):.3f}-{max(ratios):.3f}x); kernel PSNR now minus before: mean "
                     f"{np.mean(gaps):+.2f} dB, worst image {min(gaps):+.2f} dB, best {max(gaps):+.2f} dB "
                     f"({same} of {len(gaps)} identical)")
    table = markdown_table(rows, ["set", "estimate", "images", "kernel PSNR mean", "p10", "worst", "LR-PSNR mean",
                                  "LR worst", "fallbacks", "seconds", "units"],
                           {"images": 0, "fallbacks": 0, "seconds": 1, "units": 0})
    body = (f"The default KernelGAN estimate (x2, seed 0) at revision {args.before} and at {now}, "
            f"{change.format(before=args.before, now=now)}, side by side: one worker process per revision, each with "
            f"the process's whole thread budget ({os.cpu_count()} cores here), estimating each image in turn "
            "(who goes first alternates). Each worker imported what the optimiser's first use imports before "
            "its first estimate. Seconds are each estimate's own (set-up, training, refinement); units divide "
            "them by the speed unit (one fp32 ZSSR training step on 1x3x128x128) timed just before that "
            f"image's two estimates: {unit_start:.4f} s at the start and {unit_end:.4f} s at the end of this "
            f"run ({'native bf16' if native_bf16() else 'no native bf16'}). Kernel PSNR on the true kernel's "
            "canvas; tuning images.\n\n" + (args.remark + "\n\n" if args.remark else "") + table
            + "\n\n" + "\n".join(lines))
    write_section(section, title, body, args.make_target)


if __name__ == "__main__":
    main()
