"""The ZSSR back-end: handoff kernels -> ``zssr.super_resolve`` (third_party/zssr).

ZSSR and the handoff share the kernel convention (``blindsr.kernel``: centred kernel, sampling on
block centres), so the arrays pass through unchanged: [k2] for x2, [k2, k4] for the gradual x4.
With no kernels at all it runs the ideal-case ZSSR with MATLAB's bicubic downscaling.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

import zssr
from blindsr.backends import KernelNeeds, Progress, SRResult, register_backend
from blindsr.degradation import bicubic_upscale
from blindsr.errors import UsageError
from blindsr.kernel import SRKernel
from blindsr.runtime import FAULT_RESEED, keep_freed_memory, select_device

log = logging.getLogger(__name__)
# noise_std=auto (the default preset's) treats an image as noisy from this sigma (8-bit units) up,
# and without son noise such an image gets a warning: between the clean tuning images' estimates
# (at most 0.85) and the noisy ones' (about 5) (docs/BENCHMARKS.md, 'camera', sets tune and
# tune_noise, where auto gained 6.6 dB on average at sigma 5).
NOISY_SIGMA = 2.0


@register_backend("zssr")
class ZSSRBackend:
    """Options: ``preset`` (fast, kernelgan, original, real), ``device`` (auto, cpu, cuda[:N]), and
    any ``zssr.ZSSRSettings`` field by its own name (``sr.max_iters=...``, ``sr.precision=fp32``);
    None keeps the preset's value. The default preset runs with ``noise_std=auto`` unless it is
    set (``NOISY_SIGMA``): on noisy photos the plain preset sharpens the noise (docs/BENCHMARKS.md,
    'camera'), and on clean ones auto changes nothing."""

    Options = zssr.ZSSRSettings
    # The paper's network at the input resolution with a short cosine schedule (docs/BENCHMARKS.md,
    # 'speed'); ``kernelgan`` and ``original`` reproduce the papers.
    default_preset = "fast"
    needs = KernelNeeds(scales=(2, 4), kernels="stages")

    def __init__(self, preset: str = default_preset, device: str = "auto", **overrides: Any) -> None:
        self.settings = self.resolve(preset, **overrides)
        self.preset = preset
        self.device = select_device(device)
        if self.device.type == "cpu":
            keep_freed_memory()

    @classmethod
    def resolve(cls, preset: str = default_preset, **overrides: Any) -> zssr.ZSSRSettings:
        """The settings a preset and overrides come to (what runs, and what cache keys hash)."""
        if preset == cls.default_preset and overrides.get("noise_std") is None:
            overrides = {**overrides, "noise_std": zssr.AUTO}
        return zssr.preset(preset, **overrides)

    def work(self, shape: tuple[int, int], scale: int) -> int:
        return zssr.work(shape, scale, self.settings)

    @staticmethod
    def noise_level(rgb: np.ndarray, kernels: dict[int, SRKernel]) -> dict[str, Any]:
        """``noise_std=auto``: the LR image's own noise (8-bit sigma), as the kernel estimate
        recorded it, or fitted here with the x2 kernel (the bicubic one without kernels), with a
        JPEG's quantisation error added as for SRMD (``kernel_noise``). From
        ``NOISY_SIGMA`` up the sons get that noise, so that the network learns to leave it out of
        its output, and back-projection is off; below, the image counts as clean."""
        from blindsr.degradation import bicubic_kernel
        from blindsr.estimators.noise import kernel_noise

        sigma, source = kernel_noise(rgb, kernels[min(kernels)] if kernels else bicubic_kernel(2))
        return {"sigma": sigma, "source": source}

    def super_resolve(self, rgb: np.ndarray, scale: int, kernels: dict[int, SRKernel], *,
                      seed: int = 0, progress: Progress | None = None) -> SRResult:
        start = time.perf_counter()
        stages = zssr.stages(scale)
        if kernels:
            missing = [s for s in stages if s not in kernels]
            if missing:
                raise UsageError(f"ZSSR x{scale} needs kernels for x{', x'.join(map(str, stages))}; "
                                 f"missing x{', x'.join(map(str, missing))}")
            arrays = [np.asarray(kernels[s].array) for s in stages]
        else:
            arrays = None
        warnings: list[str] = []
        settings, noise = self.settings, None
        recorded = next(iter(kernels.values())).provenance.get("noise") if kernels else None
        if settings.noise_std == 0 and recorded and recorded["sigma"] >= NOISY_SIGMA:
            warnings.append(f"the image is noisy (estimated sigma {recorded['sigma']:.1f}) and ZSSR trains "
                            "without noise on its sons, so it will sharpen the noise: use sr.noise_std=auto, "
                            "or sr=srmd")
            log.warning(warnings[-1])
        if settings.noise_std == zssr.AUTO:
            noise = self.noise_level(rgb, kernels)
            if noise["sigma"] < NOISY_SIGMA:  # a clean image: train as on noise-free input
                settings = settings.updated({"noise_std": 0.0})
            else:  # noisy: noisy sons, and no back-projection, which would put the noise back
                settings = settings.updated({"noise_std": noise["sigma"] / 255.0, "back_projection_iters": 0})
            noise.update(noise_std=settings.noise_std, back_projection_iters=settings.back_projection_iters)
        for run_seed in (seed, seed + FAULT_RESEED):
            try:
                result = zssr.super_resolve(rgb, scale, arrays, settings=settings, device=self.device,
                                            seed=run_seed, progress=progress)
            except zssr.NumericalFault as exc:
                warnings.append(f"ZSSR with seed {run_seed} failed numerically ({exc})")
                log.warning(warnings[-1])
                continue
            diagnostics = {"preset": self.preset, "downscaling": "kernels" if arrays else "bicubic",
                           **result.diagnostics}
            if noise is not None:
                diagnostics["son_noise"] = noise
            return SRResult(result.image, time.perf_counter() - start, diagnostics, warnings)
        # Never a silent garbage output: bicubic interpolation, and the record says so.
        warnings.append("ZSSR failed twice; the output is bicubic interpolation")
        log.warning(warnings[-1])
        image = bicubic_upscale(rgb, scale)
        return SRResult(image, time.perf_counter() - start, {"fallback": "bicubic interpolation"}, warnings)
