"""The no-estimation baseline: the bicubic kernel every non-blind SR method assumes."""
from __future__ import annotations

import numpy as np

from blindsr.degradation import bicubic_kernel
from blindsr.estimators import Estimate, Progress, register_estimator
from blindsr.registry import NoOptions


@register_estimator("bicubic")
class BicubicEstimator:
    Options = NoOptions
    learned = False

    def __init__(self, device: str = "auto") -> None:
        pass

    def iterations(self, scale: int) -> int:
        return 0

    def check(self, shape: tuple[int, int]) -> None:
        pass

    def estimate(self, rgb: np.ndarray, scale: int, *, seed: int = 0,
                 progress: Progress | None = None) -> Estimate:
        kernels = {s: bicubic_kernel(s) for s in ((2, 4) if scale == 4 else (scale,))}
        return Estimate(kernels, 0.0)
