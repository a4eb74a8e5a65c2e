"""The CPU allocator setting (``blindsr.runtime.keep_freed_memory``) on and off, side by side
(make bench-speed-allocator) -> the 'speed-allocator' section of docs/BENCHMARKS.md.

Every run is a child process (the setting is process-wide and cannot be undone): the default
KernelGAN x2 estimate, and ZSSR's default preset at x2 with the ground-truth kernel, of each image,
with ``BLINDSR_ALLOCATOR=default`` (glibc's malloc as it comes) and without (the setting on),
alternating so that a slow spell of the machine hits both. A child reports its seconds, the minor
page faults it took during the run (``getrusage``) and a hash of its result: the two must agree
bit for bit, since only where freed memory lives changes.

    python -m benchmarks.allocator --data ../shared/data/BSD100RK --images 1-5
"""
from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import numbers, unit_seconds, write_section
from blindsr.runtime import ALLOCATOR_ENV, KEPT_FREE_BYTES, allocator_environment
from blindsr.tables import markdown_table

TASKS = ("kernelgan", "zssr")
SETTINGS = ("default", "kept")  # glibc as it comes; keep_freed_memory on


def child(data: Path, number: int, task: str) -> dict:
    """One run in this process: seconds, page faults and the result's hash."""
    from blindsr.backends import get_backend
    from blindsr.datasets import load_benchmark
    from blindsr.estimators import get_estimator
    from blindsr.estimators.truth import true_kernels
    from blindsr.images import read_image
    from blindsr.runtime import keep_freed_memory
    from blindsr.stages import super_resolve

    entry = next(e for e in load_benchmark(data, 2) if e.number == number)
    if task == "kernelgan":
        stage = get_estimator("kernelgan", device="cpu")
        image = read_image(entry.lr).rgb
    else:
        stage = get_backend("zssr", device="cpu")
        image = read_image(entry.lr)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    if task == "kernelgan":
        result = stage.estimate(image, 2, seed=0).kernels[2].array
    else:
        result = super_resolve(image, true_kernels(entry, 2), stage, 2, 0, None)[0]
    seconds = time.perf_counter() - start
    return {"image": entry.name, "task": task, "seconds": seconds,
            "page_faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults,
            "allocator_kept": keep_freed_memory(), "sha256": hashlib.sha256(result.tobytes()).hexdigest()}


def run_child(data: Path, number: int, task: str, setting: str) -> dict:
    run = subprocess.run([sys.executable, "-m", "benchmarks.allocator", "--data", str(data), "--child",
                          f"{number}:{task}"], capture_output=True, text=True,
                         env=allocator_environment(setting == "kept"))
    if run.returncode:
        raise SystemExit(f"benchmarks.allocator child ({number}, {task}, {setting}) failed:\n{run.stderr[-2000:]}")
    row = json.loads(run.stdout.strip().splitlines()[-1])
    print(setting, {k: v for k, v in row.items() if k != "sha256"}, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="BSD100RK folder")
    parser.add_argument("--images", default="1-5")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        number, task = args.child.split(":")
        print(json.dumps(child(args.data, int(number), task)))
        return
    if not (args.data / "lr_x2").is_dir():
        raise SystemExit(f"{args.data}: BSD100RK not found (set DATA=...)")
    units = [unit_seconds()]
    rows, summary = [], []
    for task in TASKS:
        pairs = []
        for i, number in enumerate(numbers(args.images)):
            order = SETTINGS if i % 2 == 0 else SETTINGS[::-1]
            runs = {setting: run_child(args.data, number, task, setting) for setting in order}
            pairs.append(runs)
            rows.append({"task": task, "image": runs["default"]["image"],
                         "default s": runs["default"]["seconds"], "kept s": runs["kept"]["seconds"],
                         "speed-up": runs["default"]["seconds"] / runs["kept"]["seconds"],
                         "default page faults": runs["default"]["page_faults"],
                         "kept page faults": runs["kept"]["page_faults"],
                         "setting on in the kept run": runs["kept"]["allocator_kept"]
                         and not runs["default"]["allocator_kept"],
                         "identical result": runs["default"]["sha256"] == runs["kept"]["sha256"]})
        default = sum(p["default"]["seconds"] for p in pairs)
        kept = sum(p["kept"]["seconds"] for p in pairs)
        summary.append(f"- {task}: {len(pairs)} images, {default / len(pairs):.1f} s -> {kept / len(pairs):.1f} s "
                       f"per image ({default / len(pairs) / units[0]:.0f} -> {kept / len(pairs) / units[0]:.0f} "
                       f"units), **{default / kept:.2f}x** in total; speed-up per image "
                       f"{min(r['speed-up'] for r in rows if r['task'] == task):.2f}-"
                       f"{max(r['speed-up'] for r in rows if r['task'] == task):.2f}x; results identical: "
                       f"{all(r['identical result'] for r in rows if r['task'] == task)}")
    units.append(unit_seconds())
    body = (f"Speed unit (one fp32 ZSSR training step, plain network, 1x3x128x128): {units[0]:.4f} s at the start, "
            f"{units[-1]:.4f} s at the end of this run; units use the first. Each run is its own child process, "
            f"with glibc's malloc as it comes (`{ALLOCATOR_ENV}=default`) or with the setting that keeps "
            f"{KEPT_FREE_BYTES >> 20} MB of freed memory (`blindsr.runtime.keep_freed_memory`), the two "
            f"alternating image by image. kernelgan: the default x2 estimate of BSD100RK x2 images {args.images}; "
            f"zssr: the default preset at x2 with the ground-truth kernel. Page faults: minor faults during the "
            f"run (getrusage).\n\n"
            + markdown_table(rows, list(rows[0]), {"default s": 1, "kept s": 1, "speed-up": 2,
                                                   "default page faults": 0, "kept page faults": 0})
            + "\n\n" + "\n".join(summary))
    write_section("speed-allocator", "Speed: the CPU allocator keeps freed memory", body, "bench-speed-allocator")
    print("updated docs/BENCHMARKS.md")


if __name__ == "__main__":
    sys.exit(main())
