"""``none``: no super-resolution; ``eval`` then scores the kernels alone (kernel and LR PSNR)."""
from __future__ import annotations

import numpy as np

from blindsr.backends import KernelNeeds, Progress, SRResult, register_backend
from blindsr.errors import UsageError
from blindsr.kernel import SRKernel
from blindsr.registry import NoOptions


@register_backend("none")
class NoBackend:
    Options = NoOptions
    needs = KernelNeeds(scales=(2, 3, 4), kernels="none")
    benchmark_only = True

    def __init__(self, device: str = "auto") -> None:
        pass

    def work(self, shape: tuple[int, int], scale: int) -> int:
        return 0

    def super_resolve(self, rgb: np.ndarray, scale: int, kernels: dict[int, SRKernel], *,
                      seed: int = 0, progress: Progress | None = None) -> SRResult:
        raise UsageError("sr=none scores kernels without super-resolving: use it with eval")
