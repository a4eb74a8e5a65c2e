"""The no-kernel baseline: MATLAB-style bicubic interpolation."""
from __future__ import annotations

import time

import numpy as np

from blindsr.backends import KernelFree, Progress, SRResult, register_backend
from blindsr.degradation import bicubic_upscale
from blindsr.kernel import SRKernel


@register_backend("bicubic")
class BicubicBackend(KernelFree):
    def super_resolve(self, rgb: np.ndarray, scale: int, kernels: dict[int, SRKernel], *,
                      seed: int = 0, progress: Progress | None = None) -> SRResult:
        start = time.perf_counter()
        return SRResult(bicubic_upscale(rgb, scale), time.perf_counter() - start)
