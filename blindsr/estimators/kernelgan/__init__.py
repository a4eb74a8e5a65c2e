"""KernelGAN kernel estimation (Bell-Kligler, Shocher, Irani, NeurIPS 2019), as an estimator.

``settings`` holds the hyper-parameters and presets, ``networks`` the generator and
discriminator, ``crops`` the crop sampling, ``train`` one run. This module turns runs into handoff
kernels: soft threshold, re-centring into the project convention, the analytic x4 kernel, and
what to do when training goes numerically wrong (one restart with another seed, then the bicubic
kernel with a warning - never a silent garbage kernel).
"""
from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch

from blindsr import __version__
from blindsr.degradation import bicubic_kernel
from blindsr.estimators import Estimate, Progress, register_estimator
from blindsr.estimators.kernelgan.settings import KernelGANSettings, settings_for
from blindsr.estimators.kernelgan.train import ImageTooSmall, NumericalFault, RunResult, soft_threshold, train
from blindsr.errors import InputError
from blindsr.kernel import SRKernel
from blindsr.runtime import select_device, torch_threads

log = logging.getLogger(__name__)
FAULT_RESEED = 7919  # seed offset of the one retry after a numerical fault


def to_handoff(native: np.ndarray, settings: KernelGANSettings, provenance: dict[str, Any]) -> SRKernel:
    """Native G kernel -> soft-thresholded, re-centred x2 handoff kernel."""
    k = soft_threshold(native, settings.threshold_rank, settings.threshold_factor)
    return SRKernel.from_array(k, 2, provenance=provenance)


@register_estimator("kernelgan")
class KernelGANEstimator:
    def __init__(self, preset: str = "default", device: str = "auto", **overrides: Any) -> None:
        self.settings = settings_for(preset, overrides)
        self.preset = preset
        self.device = select_device(device)

    def iterations(self, scale: int) -> int:
        return self.settings.iterations * self.settings.restarts

    def estimate(self, rgb: np.ndarray, scale: int, *, seed: int = 0,
                 progress: Progress | None = None) -> Estimate:
        start = time.perf_counter()
        warnings: list[str] = []
        try:
            result = self._run_with_retry(rgb, seed, progress, warnings)
        except ImageTooSmall as exc:
            raise InputError(str(exc)) from None
        if result is None:
            kernels = {2: bicubic_kernel(2).with_provenance(fallback="kernelgan numerical fault")}
        else:
            provenance = {"estimator": "kernelgan", "preset": self.preset, "version": __version__,
                          "seed": result.diagnostics.get("seed", seed),
                          "iterations": self.settings.iterations,
                          "device": str(self.device), "seconds": round(result.seconds, 3),
                          "diagnostics": result.diagnostics}
            kernels = {2: to_handoff(result.kernel, self.settings, provenance)}
        if scale == 4:
            kernels[4] = kernels[2].derive_x4()
        elif scale != 2:
            raise InputError(f"KernelGAN estimates x2 and x4 kernels, not x{scale}")
        return Estimate(kernels, time.perf_counter() - start,
                        diagnostics=kernels[2].provenance.get("diagnostics", {}), warnings=warnings)

    def _run_with_retry(self, rgb: np.ndarray, seed: int, progress: Progress | None,
                        warnings: list[str]) -> RunResult | None:
        for attempt, run_seed in enumerate((seed, seed + FAULT_RESEED)):
            try:
                with torch_threads(1 if self.device.type == "cpu" else torch.get_num_threads()):
                    result = train(rgb, self.settings, run_seed, self.device, progress)
                result.diagnostics["seed"] = run_seed
                return result
            except NumericalFault as exc:
                message = f"KernelGAN run with seed {run_seed} failed numerically ({exc})"
                warnings.append(message + ("; retrying with another seed" if attempt == 0
                                           else "; falling back to the bicubic kernel"))
                log.warning(warnings[-1])
        return None
