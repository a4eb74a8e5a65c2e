"""The no-estimation baseline: the bicubic kernel every non-blind SR method assumes."""
from __future__ import annotations

import numpy as np

from blindsr.degradation import bicubic_kernel
from blindsr.estimators import Estimate, FixedKernels, Progress, register_estimator


@register_estimator("bicubic")
class BicubicEstimator(FixedKernels):
    def estimate(self, rgb: np.ndarray, scale: int, *, seed: int = 0,
                 progress: Progress | None = None) -> Estimate:
        kernels = {s: bicubic_kernel(s) for s in ((2, 4) if scale == 4 else (scale,))}
        return Estimate(kernels, 0.0)
