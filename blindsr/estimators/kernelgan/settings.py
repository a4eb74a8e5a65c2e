"""KernelGAN hyper-parameters and presets.

``paper`` is the authors' configuration (KernelGAN code ``configs.py``, ``learner.py``,
``kernelGAN.py``) minus their noise-accumulation bug: every number below that carries no comment
of its own is theirs. ``default`` is the configuration blindsr ships; where it differs from
``paper`` the difference was measured on the development set (docs/BENCHMARKS.md).
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

from blindsr.estimators.likelihood import SHAPES

REFINEMENTS = ("none", "affine")
UNTRUSTED_REFINEMENT = ("bicubic", "unrefined")  # what to hand over when only the refinement is doubted
MIN_G_CROP = 32  # smallest G crop that still leaves D a 4x4 output map


@dataclass(frozen=True)
class KernelGANSettings:
    iterations: int = 3000
    # Crops and architecture.
    g_crop: int = 64
    g_structure: tuple[int, ...] = (7, 5, 3, 1, 1, 1)
    g_channels: int = 64
    g_init_gain: float = 0.1
    d_channels: int = 64
    d_layers: int = 7
    d_kernel: int = 7
    edge_shave: int = 10  # px per side, skipped when the image would get smaller than a G crop
    # Noise in [-1, 1] units: D's real crops get N(0, (2/255)^2), G's output N(0, (1/255)^2).
    real_noise: float = 2.0 / 255.0
    fake_noise: float = 1.0 / 255.0
    # Optimiser.
    lr: float = 2e-4
    beta1: float = 0.5
    lr_decay_every: int = 750
    lr_decay: float = 10.0
    # Loss weights and their schedule.
    bicubic_weight: float = 5.0
    bicubic_target: str = "channel_sum"  # the authors' 3x3-channel filter sums colours; or "per_channel"
    bicubic_threshold: float = 0.4
    bicubic_patience: int = 3
    bicubic_decay: float = 100.0
    bicubic_min: float = 5e-6
    schedule_every: int = 200
    sum_to_one_weight: float = 0.5
    boundaries_weight: float = 0.5
    boundaries_scale: float = 30.0
    centre_weight: float = 1.0  # switched on once the bicubic weight drops below 5e-3
    sparsity_weight: float = 5.0  # likewise
    sparsity_power: float = 0.2
    constraints_below: float = 5e-3
    # Output post-processing: soft threshold at factor x the (rank+1)-th largest tap.
    threshold_rank: int = 40
    threshold_factor: float = 0.75
    # Beyond the paper: more crops per iteration; several independent runs combined.
    crops_per_iteration: int = 1
    restarts: int = 1  # independent runs, averaged (see blindsr.estimators.kernelgan.combine)
    trim: int = 1  # runs dropped from the average: those agreeing least with the others
    # The combined kernel's covariance refitted by the LR image's marginal likelihood ("affine",
    # blindsr.estimators.likelihood), or left as KernelGAN made it ("none").
    refine: str = "none"
    # The refined kernel's shape: KernelGAN's ("kernel"), or KernelGAN's or the Gaussian of its
    # covariance, whichever the likelihood prefers ("select", ``likelihood.select_shape``), or
    # the Gaussian when the refined kernel is narrow ("gaussian_if_narrow").
    shape: str = "kernel"
    # Runs whose kernel is not physical (sum far from 1, negative or edge mass) dropped before the
    # vote, and a new set trained when none is left (blindsr.estimators.kernelgan.unphysical).
    drop_collapsed: bool = False
    # One image's refined kernel narrowed by the widening that noise alone causes in the refinement,
    # measured on the image with its own noise raised to sqrt(2) and sqrt(3) times against a refit
    # without it (``kernelgan.noise_corrected``); only on an image whose fitted noise sigma is at
    # least ``NOISE_CORRECTION_SIGMA``, that shows no JPEG quantisation, whose refits score the
    # pixels the refinement did, and along an axis whose widening grows in proportion to sigma.
    # The default preset's (docs/BENCHMARKS.md, 'kernel-noise', 'jpeg-noise-shot', 'noise-correction',
    # 'kernel-noise-report-61'); the authors' (``paper``) has none.
    noise_correction: bool = False
    # What an estimate whose confidence is low because of its refinement alone hands over (the
    # runs physical and agreeing, the image textured: ``confidence.refinement_alone``): the bicubic
    # kernel, as for any other doubt ("bicubic"), or KernelGAN's combined kernel before the
    # refinement ("unrefined"). Any other doubt hands over the bicubic kernel. The default keeps
    # "bicubic": on the tuning images the unrefined estimate was below the bicubic kernel's
    # LR-PSNR on 46 of 156, by up to 14 dB (docs/BENCHMARKS.md, 'refinement-fallback').
    untrusted_refinement: str = "bicubic"
    # A group's joint estimate (``batch kernel_scope=folder|camera``): its runs' iterations (the
    # loss-weight and learning-rate schedules compressed in proportion) and their number; None:
    # as for one image; likewise its G crop. See ``for_group``.
    group_iterations: int | None = None
    group_restarts: int | None = None
    group_shape: str | None = None
    group_g_crop: int | None = None

    def __post_init__(self) -> None:
        self._check_ranges()
        if self.refine not in REFINEMENTS:
            raise ValueError(f"refine must be one of {REFINEMENTS}, got {self.refine!r}")
        if self.untrusted_refinement not in UNTRUSTED_REFINEMENT:
            raise ValueError(f"untrusted_refinement must be one of {UNTRUSTED_REFINEMENT}, "
                             f"got {self.untrusted_refinement!r}")
        for name in ("shape", "group_shape"):
            value = getattr(self, name)
            if value is not None and value not in SHAPES:
                raise ValueError(f"{name} must be one of {SHAPES}, got {value!r}")
        for name, low in (("group_iterations", 1), ("group_restarts", 1), ("group_g_crop", MIN_G_CROP)):
            value = getattr(self, name)
            if value is not None and value < low:
                raise ValueError(f"{name} must be at least {low} or None, got {value!r}")

    def _check_ranges(self) -> None:
        """A setting out of its range fails here, in one sentence, not as a tensor-shape error
        deep in training."""
        at_least = {"iterations": 1, "restarts": 1, "crops_per_iteration": 1, "schedule_every": 1,
                    "lr_decay_every": 1, "bicubic_patience": 1, "g_crop": MIN_G_CROP, "g_channels": 1,
                    "d_channels": 1, "d_layers": 3, "d_kernel": 1, "edge_shave": 0, "trim": 0,
                    "threshold_rank": 0}
        for name, low in at_least.items():
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be at least {low}, got {getattr(self, name)!r}")
        if not self.g_structure or min(self.g_structure) < 1:
            raise ValueError(f"g_structure must be positive filter sizes, got {self.g_structure!r}")
        taps = (1 + sum(k - 1 for k in self.g_structure)) ** 2
        if self.threshold_rank >= taps:
            raise ValueError(f"threshold_rank must be below the kernel's {taps} taps, got {self.threshold_rank!r}")
        if not (self.lr > 0 and self.lr_decay > 0 and self.bicubic_decay > 0 and 0 <= self.beta1 < 1):
            raise ValueError("lr, lr_decay and bicubic_decay must be positive and beta1 in [0, 1)")
        non_negative = ("real_noise", "fake_noise", "bicubic_weight", "bicubic_threshold", "bicubic_min",
                        "sum_to_one_weight", "boundaries_weight", "boundaries_scale", "centre_weight",
                        "sparsity_weight", "sparsity_power", "constraints_below", "threshold_factor", "g_init_gain")
        negative = [name for name in non_negative if not getattr(self, name) >= 0]
        if negative:
            raise ValueError(f"{', '.join(negative)} must be at least 0")

    def for_group(self) -> "KernelGANSettings":
        """The settings a group's joint estimate trains with: ``group_iterations`` per run, with
        the schedules that count iterations (``schedule_every``, ``lr_decay_every``) scaled by
        the same factor, ``group_restarts`` runs, the refined shape ``group_shape`` and the G crop
        ``group_g_crop``."""
        iterations = self.group_iterations or self.iterations
        ratio = iterations / self.iterations
        return replace(self, iterations=iterations, restarts=self.group_restarts or self.restarts,
                       shape=self.group_shape or self.shape, g_crop=self.group_g_crop or self.g_crop,
                       schedule_every=max(1, round(self.schedule_every * ratio)),
                       lr_decay_every=max(1, round(self.lr_decay_every * ratio)))

    def updated(self, overrides: Mapping[str, Any]) -> "KernelGANSettings":
        """A copy with the non-None ``overrides`` applied (unknown names raise ``KeyError``)."""
        names = {f.name for f in fields(self)}
        unknown = set(overrides) - names
        if unknown:
            raise KeyError(f"unknown KernelGAN setting(s): {sorted(unknown)}")
        values = {k: (tuple(v) if k == "g_structure" else v)
                  for k, v in overrides.items() if v is not None}
        return replace(self, **values)


PRESETS: dict[str, KernelGANSettings] = {
    "paper": KernelGANSettings(),
    # Measured on BSD100RK x2 images 1-10, 4 seeds (docs/BENCHMARKS.md): the per-channel
    # bicubic target (+0.4 dB kernel PSNR), a gentler soft threshold (+0.5 dB), and four
    # 1000-iteration runs averaged with the least-agreeing one dropped (+1.1 dB over one run;
    # the kernel stops changing after ~1000 iterations); the covariance refitted by the marginal
    # likelihood (chosen on images 11-20: +5 dB kernel PSNR, docs/BENCHMARKS.md); collapsed runs
    # dropped (docs/BENCHMARKS.md, 'robust'). A group's kernel keeps KernelGAN's refined shape or
    # takes the Gaussian of its covariance, whichever the pooled likelihood prefers, and its four
    # runs train 750 iterations (the one-camera tuning sets, 3 seeds each, docs/BENCHMARKS.md,
    # 'camera': +0.9 dB kernel PSNR over KernelGAN's shape at one image's budget, the same with
    # 1000, 750 or 500 iterations; 750 keeps more of KernelGAN's own shape, which a camera whose
    # kernel is not Gaussian keeps: 500 lost 0.2 dB of it, 'KernelGAN: cost against accuracy';
    # and 0.12 dB of the selected kernel on the sigma-10 tuning set, 'camera-budgets-500'; 600 lost
    # 0.35 and 0.25 dB on two tuning sets, 'camera-budgets-600').
    # One image keeps KernelGAN's shape even when narrow: the Gaussian of a narrow kernel's
    # covariance (shape="gaussian_if_narrow") helped the sharp-kernel tuning images but lowered
    # held-out BSD100RK 21-100 (docs/BENCHMARKS.md, 'robust-tuning', 'robust-narrow-shape').
    # One image's runs train on 56-px G crops (D's map 16x16 instead of 20x20): 0.8x the time at
    # no loss of kernel PSNR on the tuning images (docs/BENCHMARKS.md, 'kernel-budget-crop'). A
    # group's joint estimate keeps the authors' 64 px: 56 px took 0.9x the time and scored the same
    # on the clean and sigma-5 one-camera tuning sets ('camera-budgets-crop'), but 0.63 dB lower
    # on the sigma-10 one ('camera-budgets-crop-sigma10', three seeds; held out, 'camera' had
    # shown 0.9 dB lower at sigma 10 before that set existed). One image's refined kernel is narrowed by
    # the widening its own noise causes, where the proportion check allows ('noise_correction':
    # kernel PSNR +0.3, +1.2 and +1.5 dB at sigma 1.5, 3 and 6 on the tuning images, 'kernel-noise';
    # +0.3, +0.6 and +1.1 dB on held-out BSD100RK 61-80, 'kernel-noise-report-61'; on BSD100RK 41-60,
    # where an earlier version had failed, one kernel still loses 8 dB at sigma 6, 'kernel-noise-report').
    "default": KernelGANSettings(iterations=1000, g_crop=56, bicubic_target="per_channel", threshold_rank=60,
                                 restarts=4, trim=1, refine="affine", drop_collapsed=True, noise_correction=True,
                                 group_iterations=750, group_shape="select", group_g_crop=64),
}


# The preset ``estimator=kernelgan`` runs unless ``estimator.preset`` names another.
DEFAULT_PRESET = "default"


def settings_for(preset: str, overrides: Mapping[str, Any] | None = None) -> KernelGANSettings:
    if preset not in PRESETS:
        raise KeyError(f"unknown KernelGAN preset {preset!r}; choose from {sorted(PRESETS)}")
    return PRESETS[preset].updated(overrides or {})
