"""``none``: no super-resolution; ``eval`` then scores the kernels alone (kernel and LR PSNR)."""
from __future__ import annotations

import numpy as np

from blindsr.backends import KernelFree, Progress, SRResult, register_backend
from blindsr.errors import UsageError
from blindsr.kernel import SRKernel


@register_backend("none")
class NoBackend(KernelFree):
    benchmark_only = True

    def super_resolve(self, rgb: np.ndarray, scale: int, kernels: dict[int, SRKernel], *,
                      seed: int = 0, progress: Progress | None = None) -> SRResult:
        raise UsageError("sr=none scores kernels without super-resolving: use it with eval")
