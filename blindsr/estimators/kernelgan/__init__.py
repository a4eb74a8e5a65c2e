"""KernelGAN kernel estimation (Bell-Kligler, Shocher, Irani, NeurIPS 2019), as an estimator.

``settings`` holds the hyper-parameters and presets, ``networks`` the generator and
discriminator, ``crops`` the crop sampling, ``train`` one run. This module turns runs into handoff
kernels: soft threshold, re-centring into the project convention, the analytic x4 kernel, and
what to do when training goes numerically wrong (each run retries once with another seed; with
no run left, the bicubic kernel with a warning - never a silent garbage kernel).
"""
from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from blindsr import __version__
from blindsr.degradation import bicubic_kernel
from blindsr.estimators import Estimate, Progress, register_estimator
from blindsr.estimators.kernelgan.settings import KernelGANSettings, settings_for
from blindsr.estimators.kernelgan.train import ImageTooSmall, NumericalFault, RunResult, soft_threshold, train
from blindsr.errors import InputError
from blindsr.kernel import SRKernel, crop_or_pad
from blindsr.metrics import kernel_psnr
from blindsr.runtime import select_device, torch_threads

log = logging.getLogger(__name__)
FAULT_RESEED = 7919  # seed offset of the one retry after a numerical fault
RESTART_SEED_STRIDE = 1_000_003


def to_handoff(native: np.ndarray, settings: KernelGANSettings, provenance: dict[str, Any]) -> SRKernel:
    """Native G kernel -> soft-thresholded, re-centred x2 handoff kernel."""
    k = soft_threshold(native, settings.threshold_rank, settings.threshold_factor)
    return SRKernel.from_array(k, 2, provenance=provenance)


def combine(kernels: list[SRKernel], provenance: dict[str, Any]) -> SRKernel:
    """Average of centred kernels (on a common canvas), re-centred. Averaging independent runs
    cancels much of KernelGAN's run-to-run scatter (measured in docs/BENCHMARKS.md)."""
    if len(kernels) == 1:
        return kernels[0].with_provenance(**provenance)
    size = max(k.size for k in kernels)
    mean = sum(crop_or_pad(np.asarray(k.array), size) for k in kernels) / len(kernels)
    return SRKernel.from_array(mean, 2, order=1, provenance=provenance)


def agreement_db(kernels: list[SRKernel]) -> float | None:
    """Mean pairwise kernel PSNR between runs: how much the restarts agree (higher = surer)."""
    pairs = [kernel_psnr(a, b) for i, a in enumerate(kernels) for b in kernels[i + 1:]]
    return float(np.mean(pairs)) if pairs else None


@register_estimator("kernelgan")
class KernelGANEstimator:
    """``restarts`` independent runs (seeds seed, seed + 1000003, ...), run ``workers`` at a time
    on the CPU (each single-threaded: KernelGAN's tensors are too small for intra-op threads),
    combined into one kernel."""

    def __init__(self, preset: str = "default", device: str = "auto", workers: int = 0,
                 **overrides: Any) -> None:
        self.settings = settings_for(preset, overrides)
        self.preset = preset
        self.device = select_device(device)
        parallel = min(self.settings.restarts, os.cpu_count() or 1) if self.device.type == "cpu" else 1
        self.workers = workers or parallel

    def iterations(self, scale: int) -> int:
        return self.settings.iterations * self.settings.restarts

    def estimate(self, rgb: np.ndarray, scale: int, *, seed: int = 0,
                 progress: Progress | None = None) -> Estimate:
        if scale not in (2, 4):
            raise InputError(f"KernelGAN estimates x2 and x4 kernels, not x{scale}")
        start = time.perf_counter()
        warnings: list[str] = []
        seeds = [seed + r * RESTART_SEED_STRIDE for r in range(self.settings.restarts)]
        try:
            threads = 1 if self.device.type == "cpu" else torch.get_num_threads()
            with torch_threads(threads), ThreadPoolExecutor(self.workers) as pool:
                results = list(pool.map(lambda s: self._run_with_retry(rgb, s, progress, warnings), seeds))
        except ImageTooSmall as exc:
            raise InputError(str(exc)) from None
        done = [r for r in results if r is not None]
        if not done:
            k2 = bicubic_kernel(2).with_provenance(fallback="kernelgan numerical fault", warnings=warnings)
        else:
            runs = [to_handoff(r.kernel, self.settings, {}) for r in done]
            diagnostics = {"runs": [r.diagnostics for r in done], "restart_agreement_db": agreement_db(runs),
                           "run_seconds": [round(r.seconds, 3) for r in done]}
            k2 = combine(runs, {"estimator": "kernelgan", "preset": self.preset, "version": __version__,
                                "seed": seed, "iterations": self.settings.iterations,
                                "restarts": len(done), "device": str(self.device),
                                "seconds": round(time.perf_counter() - start, 3),
                                "diagnostics": diagnostics})
        kernels = {2: k2}
        if scale == 4:
            kernels[4] = k2.derive_x4()
        return Estimate(kernels, time.perf_counter() - start,
                        diagnostics=k2.provenance.get("diagnostics", {}), warnings=warnings)

    def _run_with_retry(self, rgb: np.ndarray, seed: int, progress: Progress | None,
                        warnings: list[str]) -> RunResult | None:
        for attempt, run_seed in enumerate((seed, seed + FAULT_RESEED)):
            try:
                result = train(rgb, self.settings, run_seed, self.device, progress)
                result.diagnostics["seed"] = run_seed
                return result
            except NumericalFault as exc:
                message = f"KernelGAN run with seed {run_seed} failed numerically ({exc})"
                warnings.append(message + ("; retrying with another seed" if attempt == 0
                                           else "; dropping this run"))
                log.warning(warnings[-1])
        return None
