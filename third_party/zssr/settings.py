"""ZSSR hyper-parameters and presets.

Every number without a comment of its own is the authors' (ZSSR code ``configs.py``; KernelGAN's
variant ``ZSSR4KGAN/zssr_configs.py``). Presets:

* ``kernelgan``: the configuration behind KernelGAN's DIV2KRK table - plain random crops, the
  gradient-weighted L1 loss, 2 back-projection iterations per stage, no self-ensemble, no noise.
* ``original``: the ZSSR paper's defaults - full augmentation (without the original's black
  padding), 10 back-projection iterations, self-ensemble over the transforms the kernels allow.
* ``real``: KernelGAN's setting for real photos - ``kernelgan`` with noise 0.0125 added to the
  sons and no back-projection (it would re-inject the noise).
* ``fast``: ``kernelgan``'s training pairs, loss and output, with the network's body at the input
  resolution (a sub-pixel head, ``zssr.network``) and a fixed, shorter cosine schedule instead of
  the plateau policy. Chosen by time and PSNR side by side (docs/BENCHMARKS.md, 'ZSSR: the fast
  preset').
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

AUGMENTATIONS = ("plain", "full")
BODIES = ("hr", "lr")
SCHEDULES = ("plateau", "cosine")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class ZSSRSettings:
    # Network.
    depth: int = 8
    width: int = 64
    init_variance: float = 0.1  # init std = sqrt(init_variance / (3 * 3 * c_in))
    body: str = "hr"  # "hr": the paper's, on the bicubic upscale; "lr": at the input size, sub-pixel head
    # Training pairs.
    crop_size: int = 128
    # Smaller crops for the first ``early_crop_fraction`` of each stage's iterations (None: none);
    # a step's cost is about proportional to the crop's pixels. Measured against the fast preset on
    # the x2 tuning images, they cost 0.06-0.31 dB (docs/BENCHMARKS.md, 'speed-steps'): off by default.
    early_crop_size: int | None = None
    early_crop_fraction: float = 0.5
    augment: str = "plain"  # "plain": integer crops only; "full": + dihedral and affine fathers
    leave_as_is_probability: float = 0.05  # "full" only; the rest splits as below
    dihedral_probability: float = 0.45  # 90-degree rotations / mirrors (where the kernel allows)
    min_scale: float = 0.5  # "full": affine fathers are scaled by U(min_scale, 1) ...
    scale_diff_sigma: float = 0.25  # ... with an anisotropy N(0, sigma) split between the axes
    shear_sigma: float = 0.1
    # Gaussian noise on the sons (KernelGAN: 0.0125 x its --noise_scale), or "auto": the LR image's
    # own noise level, which the caller measures and substitutes before training (blindsr does).
    noise_std: float | str = 0.0
    gradient_loss_map: bool = True  # weight the L1 by the input's gradient magnitude (KernelGAN)
    # Optimiser and learning-rate policy.
    learning_rate: float = 1e-3
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    # "plateau": the authors' policy below (drops when the reconstruction error stalls, stops after
    # the third); "cosine": the rate falls from learning_rate to min_learning_rate along a half
    # cosine over exactly max_iters iterations (Loshchilov & Hutter, ICLR 2017, Eq. 5, one cycle).
    schedule: str = "plateau"
    test_every: int = 50
    policy_every: int = 60
    min_iters_between_drops: int = 256
    slope_points: int = 5  # the authors' 256 // 50 most recent reconstruction errors
    slope_ratio: float = 1.5
    # numpy < 1.16 (which the authors ran) scaled polyfit's covariance by residuals / (n - 4)
    # instead of / (n - 2): for 5 points its slope standard error was sqrt(3) times today's.
    std_error_factor: float = math.sqrt(3.0)
    lr_drop: float = 10.0
    min_learning_rate: float = 9e-6
    max_iters: int = 3000
    # Iterations of each stage before the last (the gradual x4's x2 stage, which only pre-trains
    # the network the x4 stage goes on with); None: ``max_iters``, as the authors ran it; 0 skips it.
    intermediate_iters: int | None = None
    # Output.
    back_projection_iters: int = 2  # per stage output, and again after the ensemble median
    self_ensemble: bool = False
    # A geometric transform is used (ensemble, dihedral fathers) only where it leaves every
    # stage's kernel unchanged: sum |T(k) - k| <= this (kernels sum to 1).
    symmetry_tolerance: float = 1e-3
    tile: int = 512  # full-image forward passes run in tiles of this many output pixels
    # Training arithmetic: "fp32"; "bf16" (autocast for the training steps only - reconstruction
    # tests, which steer the learning rate, and the output stay fp32); "auto": bf16 where the
    # hardware computes it natively (AVX512-BF16/AMX CPUs, bf16-capable GPUs), else fp32. Measured
    # on BSD100RK x2 with true kernels: 2.0-2.1x faster, -0.03 to -0.09 dB (docs/BENCHMARKS.md).
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {self.augment!r}")
        if self.depth < 2 or self.width < 1 or self.crop_size < 8:
            raise ValueError("depth must be >= 2, width >= 1 and crop_size >= 8")
        if self.max_iters < 1 or self.test_every < 1 or self.policy_every < 1:
            raise ValueError("max_iters, test_every and policy_every must be positive")
        if self.early_crop_size is not None and self.early_crop_size < 8:
            raise ValueError("early_crop_size must be >= 8 or None")
        if not 0.0 <= self.early_crop_fraction <= 1.0:
            raise ValueError("early_crop_fraction must be in [0, 1]")
        if self.intermediate_iters is not None and self.intermediate_iters < 0:
            raise ValueError("intermediate_iters must be non-negative or None")
        if self.slope_points < 3:
            raise ValueError("the slope fit needs at least 3 points")
        if self.body not in BODIES:
            raise ValueError(f"body must be one of {BODIES}, got {self.body!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.back_projection_iters < 0:
            raise ValueError("back_projection_iters must be non-negative")
        if self.noise_std != AUTO and not (isinstance(self.noise_std, (int, float)) and self.noise_std >= 0):
            raise ValueError(f"noise_std must be a non-negative number or {AUTO!r}, got {self.noise_std!r}")

    def updated(self, overrides: Mapping[str, Any]) -> "ZSSRSettings":
        """A copy with the non-None ``overrides`` applied (unknown names raise ``KeyError``)."""
        names = {f.name for f in fields(self)}
        unknown = set(overrides) - names
        if unknown:
            raise KeyError(f"unknown ZSSR setting(s): {sorted(unknown)}; choose from {sorted(names)}")
        values = {k: (tuple(v) if k == "adam_betas" else v) for k, v in overrides.items() if v is not None}
        return replace(self, **values)

    def stage_iterations(self, last: bool) -> int:
        """Iterations of one stage: ``intermediate_iters`` in every stage but the last (where set),
        else ``max_iters`` (also the cosine schedule's length)."""
        return self.max_iters if last or self.intermediate_iters is None else self.intermediate_iters

    def early_crop_iterations(self) -> int:
        """How many of a stage's ``max_iters`` iterations draw ``early_crop_size`` crops."""
        return math.ceil(self.early_crop_fraction * self.max_iters) if self.early_crop_size else 0


AUTO = "auto"  # noise_std measured from the image by the caller

PRESETS: dict[str, ZSSRSettings] = {
    "kernelgan": ZSSRSettings(),
    "original": ZSSRSettings(augment="full", gradient_loss_map=False, back_projection_iters=10,
                             self_ensemble=True),
    "real": ZSSRSettings(noise_std=0.0125, back_projection_iters=0),
    # The reconstruction tests steer nothing under the cosine schedule: fewer of them. 600
    # iterations: 1.33x faster than 800 at -0.04 dB on the tuning images (docs/BENCHMARKS.md).
    "fast": ZSSRSettings(body="lr", schedule="cosine", max_iters=600, test_every=100),
}


def preset(name: str = "kernelgan", **overrides: Any) -> ZSSRSettings:
    """The named preset with ``overrides`` applied (None values keep the preset's)."""
    if name not in PRESETS:
        raise KeyError(f"unknown ZSSR preset {name!r}; choose from {sorted(PRESETS)}")
    return PRESETS[name].updated(overrides)
