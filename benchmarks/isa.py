"""One instruction set's measurements for ``benchmarks.speed`` (its ``isa`` part), run as a child
process so that the environment can restrict oneDNN and ATen before torch starts.

``AVX2`` (``ONEDNN_MAX_CPU_ISA=AVX2``, ``ATEN_CPU_CAPABILITY=avx2``) makes this CPU run the code
paths of an AVX2-only machine: no AVX-512, no native bf16 (``precision=auto`` then trains in fp32,
as it does there). Clocks, cache and memory stay this machine's, so it is a stand-in for such a
CPU, not one. Prints one JSON object: the speed unit at the start and the end, whether bf16 is
native, and per image the default KernelGAN x2 estimate's seconds and kernel PSNR (cached per
image under ``--work``, keyed by the instruction set).

    python -m benchmarks.isa --data ../shared/data/BSD100RK --images 1-20 --work speed_runs/isa/avx2
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from benchmarks.common import native_bf16, numbers, unit_seconds

# The environment that makes this CPU run as an AVX2-only one.
AVX2_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="BSD100RK folder")
    parser.add_argument("--images", default="1-20")
    parser.add_argument("--work", type=Path, required=True)
    args = parser.parse_args()
    from blindsr.datasets import load_benchmark
    from blindsr.estimators import get_estimator
    from blindsr.estimators.truth import true_kernels
    from blindsr.images import read_image
    from blindsr.metrics import kernel_psnr

    args.work.mkdir(parents=True, exist_ok=True)
    units = [unit_seconds()]
    wanted = set(numbers(args.images))
    estimator = get_estimator("kernelgan", device="cpu")
    rows = []
    for entry in load_benchmark(args.data, 2):
        if entry.number not in wanted:
            continue
        cache = args.work / f"{entry.name}.json"
        if not cache.is_file():
            start = time.perf_counter()
            kernel = estimator.estimate(read_image(entry.lr).rgb, 2, seed=0).kernels[2]
            seconds = time.perf_counter() - start
            truth = true_kernels(entry, 2)[2]
            cache.write_text(json.dumps({"image": entry.name, "seconds": seconds,
                                         "kernel_psnr": kernel_psnr(kernel, truth, size=truth.size)}))
        rows.append(json.loads(cache.read_text()))
    units.append(unit_seconds())
    print(json.dumps({"capability": torch.backends.cpu.get_cpu_capability(), "native_bf16": native_bf16(),
                      "units": units, "estimates": rows}))


if __name__ == "__main__":
    sys.exit(main())
