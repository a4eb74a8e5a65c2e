"""SR back-ends behind one registry; names equal the Hydra ``sr`` group options.

A back-end declares what it needs from the kernel handoff (``KernelNeeds``); ``adapt`` is the one
place where handoff kernels are converted to that (scales present, x4 derived from x2 when
missing, support cropped or padded with the lost energy recorded). Back-end specific conversions
beyond that (e.g. SRMD's bicubic-downsampler fit) live in the back-end's own module.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from blindsr.errors import UsageError
from blindsr.kernel import SRKernel
from blindsr.registry import NoOptions, Registry

Progress = Callable[[int], None]


@dataclass(frozen=True)
class KernelNeeds:
    """What a back-end takes from the handoff.

    Attributes:
        scales: SR factors it supports.
        kernels: "none" (ignores kernels), "target" (the kernel of the requested scale) or
            "stages" (every stage of a gradual run: x2, then x4 for scale 4).
        support: odd kernel size it requires, or None for any.
    """

    scales: tuple[int, ...]
    kernels: str = "target"
    support: int | None = None


@dataclass
class SRResult:
    image: np.ndarray  # float64 (H * s, W * s, 3) in [0, 1]
    seconds: float
    diagnostics: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class Backend(Protocol):
    name: str
    needs: KernelNeeds

    def work(self, shape: tuple[int, int], scale: int) -> int:
        """Units of progress ``super_resolve`` will report (for one progress bar)."""

    def super_resolve(self, rgb: np.ndarray, scale: int, kernels: dict[int, SRKernel], *,
                      seed: int = 0, progress: Progress | None = None) -> SRResult:
        """Super-resolve an RGB image in [0, 1] by ``scale`` with kernels from ``adapt``."""


class KernelFree:
    """Base of the back-ends that use no kernel: no options, no progress to report."""

    Options = NoOptions
    needs = KernelNeeds(scales=(2, 3, 4), kernels="none")

    def __init__(self, device: str = "auto") -> None:
        pass

    def work(self, shape: tuple[int, int], scale: int) -> int:
        return 0


BACKENDS = Registry("SR back-end", "blindsr.backends", ("bicubic", "zssr", "srmd", "none"))
register_backend = BACKENDS.register
get_backend = BACKENDS.get
backend_names = BACKENDS.names


def adapt(kernels: dict[int, SRKernel], needs: KernelNeeds, scale: int) -> dict[int, SRKernel]:
    """Handoff kernels -> exactly what a back-end declared it needs, for SR factor ``scale``."""
    if scale not in needs.scales:
        raise UsageError(f"this back-end supports scale {', '.join(map(str, needs.scales))}, not {scale}")
    if needs.kernels == "none":
        return {}
    wanted = (2, 4) if needs.kernels == "stages" and scale == 4 else (scale,)
    out = {}
    for s in wanted:
        if s in kernels:
            k = kernels[s]
        elif s == 4 and 2 in kernels:
            k = kernels[2].derive_x4()
        else:
            have = ", ".join(f"x{k}" for k in sorted(kernels))
            raise UsageError(f"an x{s} kernel is needed (have {have}); give kernel=K2,K4, or name kernel "
                             "files *_x2.npy / *_x4.npy so that their scale is known")
        out[s] = k.fit_support(needs.support) if needs.support else k
    return out
