"""``gt``: a benchmark's own ground-truth kernels (the upper bound of Table 1; ``eval`` only).

The kernels come from the benchmark entry, not from the image, so this estimator is driven through
``kernels_for`` by the evaluation; on a photo there is nothing to read them from.
"""
from __future__ import annotations

import numpy as np

from blindsr.datasets import BenchmarkImage
from blindsr.errors import InputError, UsageError
from blindsr.estimators import Estimate, FixedKernels, Progress, register_estimator
from blindsr.kernel import SRKernel, load_kernel

ONLY_EVAL = "estimator=gt reads a benchmark's ground-truth kernels: use it with eval"


def true_kernels(entry: BenchmarkImage, scale: int) -> dict[int, SRKernel]:
    """The benchmark's own kernels: the target scale's, and x2 as well for x4 (gradual SR)."""
    wanted = (2, 4) if scale == 4 else (scale,)
    missing = [s for s in wanted if s not in entry.kernels]
    if missing:
        raise InputError(f"{entry.name}: no ground-truth kernel in gt_k_x{missing[0]}/")
    return {s: load_kernel(entry.kernels[s], s) for s in wanted}


@register_estimator("gt")
class GroundTruthEstimator(FixedKernels):
    benchmark_only = True

    def kernels_for(self, entry: BenchmarkImage, scale: int) -> dict[int, SRKernel]:
        return true_kernels(entry, scale)

    def check(self, shape: tuple[int, int]) -> None:
        raise UsageError(ONLY_EVAL)

    def estimate(self, rgb: np.ndarray, scale: int, *, seed: int = 0,
                 progress: Progress | None = None) -> Estimate:
        raise UsageError(ONLY_EVAL)
