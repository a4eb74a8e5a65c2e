"""Kernel estimators behind one registry; names equal the Hydra ``estimator`` group options.

An estimator turns an RGB image (float64 (H, W, 3) in [0, 1]) into handoff kernels
(``blindsr.kernel.SRKernel``) for the requested scale: ``{2: k2}`` or ``{2: k2, 4: k4}``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from blindsr.kernel import SRKernel
from blindsr.registry import NoOptions, Registry

Progress = Callable[[int], None]


@dataclass
class Estimate:
    """Kernels by scale, plus what the estimator wants recorded (timings, diagnostics, warnings)."""

    kernels: dict[int, SRKernel]
    seconds: float
    diagnostics: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class Estimator(Protocol):
    name: str
    learned: bool  # estimates from the image (narrowed before SR by ``handoff_width``), or fixed

    def iterations(self, scale: int) -> int:
        """Units of work ``estimate`` reports through ``progress`` (for one progress bar)."""

    def check(self, shape: tuple[int, int]) -> None:
        """Raise ``InputError`` if an image of ``shape`` (rows, cols) cannot be handled; verbs call
        this before creating any output."""

    def estimate(self, rgb: np.ndarray, scale: int, *, seed: int = 0,
                 progress: Progress | None = None) -> Estimate:
        ...


class FixedKernels:
    """Base of the estimators that learn nothing from the image: no options, no work, any size."""

    Options = NoOptions
    learned = False

    def __init__(self, device: str = "auto") -> None:
        pass

    def iterations(self, scale: int) -> int:
        return 0

    def check(self, shape: tuple[int, int]) -> None:
        pass


ESTIMATORS = Registry("estimator", "blindsr.estimators", ("bicubic", "kernelgan", "truth"))
register_estimator = ESTIMATORS.register
get_estimator = ESTIMATORS.get
estimator_names = ESTIMATORS.names
