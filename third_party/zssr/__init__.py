"""ZSSR - "Zero-Shot" Super-Resolution using Deep Internal Learning (Shocher, Cohen, Irani, CVPR
2018), reimplemented in PyTorch; standalone (numpy/torch arrays and kernels in, arrays out).

A small CNN is trained on the LR image alone to undo "image -> image downscaled by the kernel",
then applied to the image. Kernels are **centred** (odd square, sum 1, centre of mass on the
centre pixel) and downscaling samples block centres (see ``zssr.downscale``), so the output is
aligned with the HR image. x4 runs gradually, KernelGAN's way: a x2 stage with the x2 kernel,
then a x4 stage with the x4 kernel on the same network and optimiser.

    result = super_resolve(lr, 2, kernels=[k2], settings=preset("kernelgan"))
    result.image          # float64 (H * 2, W * 2, 3) in [0, 1]
    result.diagnostics    # per stage: iterations, learning-rate drops, reconstruction MSE, seconds

Modules: ``settings`` (presets), ``resize`` (MATLAB bicubic), ``downscale`` (kernel sons),
``network`` (the paper's and the sub-pixel network), ``fathers`` (training crops and loss
weights), ``policy`` (learning rate and stopping), ``train`` (one stage), ``geometry``
(rotations/mirrors), ``output`` (back-projection and self-ensemble).
"""
from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from zssr.downscale import Downscaler
from zssr.fathers import FatherSampler, gradient_loss_map
from zssr.geometry import allowed_transforms
from zssr.network import build_network
from zssr.output import all_finite, final_output
from zssr.settings import AUTO, PRESETS, ZSSRSettings, preset
from zssr.train import NumericalFault, StageReport, train_stage

__all__ = ["PRESETS", "NumericalFault", "ZSSRResult", "ZSSRSettings", "preset", "stages", "super_resolve", "work"]

Progress = Callable[[int], None]
MIN_SIDE = 8  # smaller inputs cannot hold a meaningful father/son pair


@dataclass
class ZSSRResult:
    """``image``: float64 (H * s, W * s, C) in [0, 1]; ``diagnostics``: JSON-ready record."""

    image: np.ndarray
    diagnostics: dict[str, Any] = field(default_factory=dict)


def stages(scale: int) -> tuple[int, ...]:
    """Scale factor of each stage: (2, 4) for x4 (gradual), else (scale,)."""
    return (2, 4) if scale == 4 else (int(scale),)


def work(shape: Sequence[int], scale: int, settings: ZSSRSettings | None = None) -> int:
    """Upper bound of the progress units ``super_resolve`` reports (one per training iteration;
    ``shape`` does not matter, a stage stops by its learning-rate policy or at ``max_iters``)."""
    settings = settings or preset()
    factors = stages(scale)
    return sum(settings.stage_iterations(i == len(factors) - 1) for i in range(len(factors)))


def super_resolve(lr: np.ndarray, scale: int, kernels: Sequence[np.ndarray] | None = None,
                  settings: ZSSRSettings | None = None, device: torch.device | str = "cpu",
                  seed: int = 0, progress: Progress | None = None) -> ZSSRResult:
    """Super-resolve ``lr`` by ``scale`` with a network trained on ``lr`` alone.

    Args:
        lr: float array (H, W, C) in [0, 1] (RGB; grey as replicated RGB, or C = 1).
        scale: integer SR factor; 4 runs the stages (2, 4).
        kernels: one centred kernel per stage ([k2] for x2, [k2, k4] for x4), or None for
            MATLAB's bicubic downscaling (the ideal, non-blind case).
        settings: hyper-parameters (default: the ``kernelgan`` preset).
        device: CUDA when a CUDA device is given, the CPU otherwise.
        seed: seeds the initial weights, crops, augmentations and noise; a run on the CPU is
            deterministic for a given seed (and thread count).
        progress: called with 1 after every training iteration.

    Returns:
        ``ZSSRResult`` with the float64 (H * s, W * s, C) image and the diagnostics.
    """
    settings = settings or preset()
    if settings.noise_std == AUTO:
        raise ValueError("noise_std='auto' is the caller's to resolve: pass the image's noise level")
    image = _check_image(lr)
    device = torch.device(device)
    device = device if device.type == "cuda" else torch.device("cpu")
    settings = settings.updated({"precision": resolve_precision(settings.precision, device)})
    factors = stages(scale)
    if kernels is not None and len(kernels) != len(factors):
        raise ValueError(f"x{scale} needs {len(factors)} kernel(s) (stages {factors}), got {len(kernels)}")
    stage_kernels = list(kernels) if kernels is not None else [None] * len(factors)
    start = time.perf_counter()

    downs = [Downscaler(k, s, device) for k, s in zip(stage_kernels, factors)]
    allowed = allowed_transforms([d.kernel for d in downs], settings.symmetry_tolerance)
    generator = torch.Generator(device=device).manual_seed(seed)
    init_generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)

    channels = image.shape[-1]
    net = build_network(settings.body, channels, settings.depth, settings.width, settings.init_variance,
                        init_generator, factors)
    # Channels-last weights make the convolutions run channels-last (oneDNN/cuDNN's native
    # layout): ~10% faster per iteration on the CPU.
    net = net.to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=settings.learning_rate, betas=settings.adam_betas,
                                 eps=settings.adam_eps)
    reports = _train(net, optimizer, image, downs, allowed, settings, generator, rng, device, progress)
    net.eval()

    output_start = time.perf_counter()
    transforms = allowed if settings.self_ensemble else (0,)
    lr64 = torch.as_tensor(image.transpose(2, 0, 1)[None], dtype=torch.float64, device=device)
    sr = final_output(net, lr64, downs[-1], transforms, settings.back_projection_iters, settings.tile)
    if not all_finite(sr):
        raise NumericalFault("non-finite values in the output")
    reports[-1].output_seconds = time.perf_counter() - output_start

    diagnostics = {
        "stages": [r.summary() for r in reports],
        "ensemble_transforms": list(transforms),
        "kernel_symmetries": list(allowed),
        "device": str(device),
        "precision": settings.precision,
        "seed": seed,
        "seconds": round(time.perf_counter() - start, 3),
    }
    return ZSSRResult(sr[0].permute(1, 2, 0).cpu().numpy().astype(np.float64, copy=False), diagnostics)


def _train(net: torch.nn.Module, optimizer: torch.optim.Optimizer, image: np.ndarray, downs: list[Downscaler],
           allowed: Sequence[int], settings: ZSSRSettings, generator: torch.Generator, rng: np.random.Generator,
           device: torch.device, progress: Progress | None) -> list[StageReport]:
    """Every stage's training on ``image``. The training copies of the image (with its loss
    weights) live only in here, so that the output stage does not hold them - several hundred
    MB for a photo of many megapixels."""
    weights = gradient_loss_map(image) if settings.gradient_loss_map else np.ones(image.shape[:2])
    planes = np.concatenate([image, weights[..., None]], axis=-1).transpose(2, 0, 1)[None]
    source = torch.as_tensor(planes, dtype=torch.float32, device=device)
    fathers = FatherSampler(source, settings, allowed, rng)
    train_image = source[:, :-1]
    reports: list[StageReport] = []
    for i, down in enumerate(downs):
        iterations = settings.stage_iterations(i == len(downs) - 1)
        if iterations == 0:
            reports.append(StageReport(scale=down.scale))
            continue
        stage_settings = settings.updated({"max_iters": iterations})
        reports.append(train_stage(net, optimizer, train_image, fathers, down, stage_settings, generator, progress))
    return reports


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> bf16 where the device computes it natively, else fp32."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if native_bf16() else "fp32"


# x86 CPUs whose instructions compute bf16: AVX512-BF16 or AMX (torch.cpu's probes).
X86_BF16_PROBES = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")


def native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware and oneDNN may use it. oneDNN reports bf16 as
    supported on every AVX-512 CPU, with or without bf16 instructions; without them it converts
    to fp32 and back, and the fast preset's training took 2.8x as long in bf16 as in fp32 on such a
    CPU (docs/BENCHMARKS.md, 'speed-bf16'). On x86 the CPU's own flags decide (a torch without
    the probes: fp32); elsewhere oneDNN reports bf16 only where the CPU computes it."""
    if not onednn_bf16():
        return False
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return True
    return any(x86_bf16_flags().values())


def onednn_bf16() -> bool:
    """Whether oneDNN reports bf16 support (on x86: any AVX-512 CPU, emulated or not)."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def x86_bf16_flags() -> dict[str, bool]:
    """Each of ``X86_BF16_PROBES``: whether the CPU has those bf16 instructions (False where this
    torch lacks the probe)."""
    return {name: bool(getattr(torch.cpu, name, lambda: False)()) for name in X86_BF16_PROBES}


def _check_image(lr: np.ndarray) -> np.ndarray:
    image = np.asarray(lr, dtype=np.float64)
    if image.ndim != 3 or image.shape[-1] < 1:
        raise ValueError(f"expected an (H, W, C) image, got shape {image.shape}")
    if min(image.shape[:2]) < MIN_SIDE:
        raise ValueError(f"image too small for ZSSR: {image.shape[:2]} (each side >= {MIN_SIDE})")
    if not np.all(np.isfinite(image)) or image.min() < 0.0 or image.max() > 1.0:
        raise ValueError("image values must be finite and in [0, 1]")
    return image
