"""One KernelGAN run on one image: crops, losses, the authors' schedule, the output kernel.

Losses (KernelGAN paper Sec. 3, Eq. 3-4, and the authors' code, which uses means throughout):
L_G = mean(1 - D(G(x))) + 5 * bicubic + 0.5 * |1 - sum k| + 0.5 * mean|k . m|
      + [1 * centre-of-mass + 5 * mean|k|^0.2 once switched on];
L_D = (mean(D(G(x) + n)) + mean(1 - D(y + n))) / 2. One G step then one D step per iteration.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from blindsr.degradation import bicubic_taps
from blindsr.estimators.kernelgan.crops import plan_crops
from blindsr.estimators.kernelgan.networks import DeepLinearGenerator, PatchDiscriminator
from blindsr.estimators.kernelgan.settings import KernelGANSettings

MIN_G_CROP = 32  # smallest G crop that still leaves D a 4x4 output map


class NumericalFault(RuntimeError):
    """Training produced a non-finite loss or kernel."""


class ImageTooSmall(ValueError):
    """The image cannot hold one G crop."""


def penalty_mask(size: int, scale: float) -> np.ndarray:
    """Boundary penalty (authors' ``create_penalty_mask``): scale * (1 - g / max g) for a Gaussian
    g with sigma = size, the central (size//2 + size%2 + 2)-wide square set to 0 (9x9 for 13)."""
    z = np.arange(size) - (size - 1) // 2
    g = np.exp(-(z**2) / (2.0 * size**2))
    mask = 1.0 - np.outer(g, g) / np.outer(g, g).max()
    centre = size // 2 + size % 2
    margin = (size - centre) // 2 - 1
    mask[margin:size - margin, margin:size - margin] = 0.0
    return scale * mask


def soft_threshold(kernel: np.ndarray, rank: int, factor: float) -> np.ndarray:
    """Authors' post-processing: subtract factor x the (rank+1)-th largest tap, clip at 0, sum 1."""
    cut = factor * np.sort(kernel.ravel())[-rank - 1]
    k = np.clip(kernel - cut, 0.0, None)
    return k / k.sum()


@dataclass
class Schedule:
    """The authors' ``Learner``: once the bicubic loss stayed below the threshold for
    ``patience`` consecutive iterations, every ``schedule_every`` iterations divide its weight by
    ``decay`` (floor ``bicubic_min``); when it first drops below ``constraints_below`` switch on
    the centre-of-mass and sparsity terms. Learning rates drop ``lr_decay``-fold every
    ``lr_decay_every`` iterations."""

    settings: KernelGANSettings
    bicubic_weight: float = 0.0
    centre_weight: float = 0.0
    sparsity_weight: float = 0.0
    low_count: int = 0
    similar_to_bicubic: bool = False
    constraints_on: bool = False
    events: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.bicubic_weight = self.settings.bicubic_weight

    def update(self, iteration: int, bicubic_loss: float, optimisers) -> None:
        s = self.settings
        if iteration == 0:
            return
        if iteration % s.lr_decay_every == 0:
            for opt in optimisers:
                for group in opt.param_groups:
                    group["lr"] /= s.lr_decay
        if not self.similar_to_bicubic:
            if bicubic_loss < s.bicubic_threshold:
                if self.low_count >= s.bicubic_patience - 1:
                    self.similar_to_bicubic = True
                    self.events["similar_to_bicubic"] = iteration
                else:
                    self.low_count += 1
            else:
                self.low_count = 0
        elif iteration % s.schedule_every == 0 and self.bicubic_weight > s.bicubic_min:
            self.bicubic_weight = max(self.bicubic_weight / s.bicubic_decay, s.bicubic_min)
            if not self.constraints_on and self.bicubic_weight < s.constraints_below:
                self.centre_weight = s.centre_weight
                self.sparsity_weight = s.sparsity_weight
                self.constraints_on = True
                self.events["constraints_on"] = iteration


@dataclass
class RunResult:
    """Native G kernel (K x K, centre of mass near (K-1)/2 + 0.5), and what happened."""

    kernel: np.ndarray
    seconds: float
    diagnostics: dict


class KernelGANRun:
    """Networks, optimisers and fixed tensors for one run; ``step`` is one iteration."""

    def __init__(self, rgb: np.ndarray, settings: KernelGANSettings, seed: int,
                 device: torch.device, layerwise: bool = False):
        self.settings = settings
        self.device = device
        self.layerwise = layerwise
        image = prepare_image(rgb, settings)
        g_size = min(settings.g_crop, min(image.shape[:2]) // 2 * 2)
        torch_gen = torch.Generator().manual_seed(seed)
        self.G = DeepLinearGenerator(settings.g_structure, settings.g_channels, 2,
                                     settings.g_init_gain, torch_gen).to(device)
        self.D = PatchDiscriminator(settings.d_channels, settings.d_layers, settings.d_kernel,
                                    generator=torch_gen).to(device)
        self.g_size = g_size
        self.d_size = (g_size - self.G.kernel_size) // 2 + 1
        rng = np.random.default_rng(seed)
        self.batch = settings.crops_per_iteration
        self.plan = plan_crops(image, g_size, self.d_size, settings.iterations * self.batch, rng)
        self.image = torch.as_tensor(image.transpose(2, 0, 1) * 2.0 - 1.0, dtype=torch.float32,
                                     device=device).contiguous()
        self.noise_gen = torch.Generator(device=device).manual_seed(seed + 1)
        kw = {"lr": settings.lr, "betas": (settings.beta1, 0.999)}
        fused = {"fused": True} if device.type in ("cpu", "cuda") else {}
        self.opt_g = torch.optim.Adam(self.G.parameters(), **kw, **fused)
        self.opt_d = torch.optim.Adam(self.D.parameters(), **kw, **fused)
        self.bicubic_full = self._bicubic_downscale(settings.bicubic_target)
        self.mask = torch.as_tensor(penalty_mask(self.G.kernel_size, settings.boundaries_scale),
                                    dtype=torch.float32, device=device)
        k = self.G.kernel_size
        self.indices = torch.arange(k, dtype=torch.float32, device=device)
        # Centre of mass the authors' G aims at: the centre plus (s-1)/2 for s = 2.
        self.com_target = torch.full((2,), (k // 2) + 0.5 * (2 - k % 2), device=device)
        self.schedule = Schedule(settings)
        self.last_losses: dict[str, float] = {}

    def _bicubic_downscale(self, target: str) -> torch.Tensor:
        """The bicubic-imitation target for every possible G crop at once.

        The authors downscale each G crop with MATLAB's x1/2 bicubic filter (8 taps, stride 2,
        pad 3) and keep the part aligned with G's output: output i of a crop at even corner t
        reads image rows t + 2i + 3 ... t + 2i + 10. Filtering the whole image from row 1 once
        gives the same numbers; a crop's target is then a slice (``bicubic_target``).
        """
        taps = torch.as_tensor(bicubic_taps(2), dtype=torch.float32, device=self.device)
        down = F.conv2d(self.image[:, 1:, 1:].unsqueeze(1), torch.outer(taps, taps)[None, None],
                        stride=2)[:, 0]
        if target == "channel_sum":
            # The authors expand their 8x8 filter to 3x3 channels, so every output channel is
            # the sum of all three colours' downscales.
            down = down.sum(0, keepdim=True).expand_as(down)
        elif target != "per_channel":
            raise ValueError(f"bicubic_target must be channel_sum or per_channel, not {target!r}")
        return down.unsqueeze(0)

    def bicubic_target(self, i: int, size: int) -> torch.Tensor:
        """(crops, 3, size, size): the bicubic target of iteration ``i``'s G crops."""
        slices = []
        for top, left in self.plan.g_corners[i * self.batch:(i + 1) * self.batch] // 2 + 1:
            slices.append(self.bicubic_full[0, :, top:top + size, left:left + size])
        return torch.stack(slices)

    def crops(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """G's input (crops * 3, 1, g, g: colours as a batch of grays) and D's noisy real crops
        (crops, 3, d, d) of iteration ``i``."""
        g, d = self.g_size, self.d_size
        span = slice(i * self.batch, (i + 1) * self.batch)
        g_in = torch.cat([self.image[:, t:t + g, l:l + g] for t, l in self.plan.g_corners[span]]).unsqueeze(1)
        d_real = torch.stack([self.image[:, t:t + d, l:l + d] for t, l in self.plan.d_corners[span]])
        noise = torch.randn(d_real.shape, generator=self.noise_gen, device=self.device)
        return g_in, d_real + noise * self.settings.real_noise

    def patches(self, g_in: torch.Tensor) -> torch.Tensor:
        """G's input patches as a matrix (crops * 3 * h * w, K * K): G(x) = patches @ vec(k).
        Built once per iteration and shared by the G and D steps (faster than two strided
        convolutions)."""
        k = self.G.kernel_size
        windows = g_in[:, 0].unfold(1, k, 2).unfold(2, k, 2)  # (3, h, w, K, K), a view
        return windows.reshape(-1, k * k)

    def generate(self, g_in: torch.Tensor, patches: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        """G's output for the crops, (crops, 3, h, w)."""
        h = self.d_size
        if self.layerwise:
            return self.G.layerwise_forward(g_in).view(self.batch, 3, h, h)
        return (patches @ kernel.reshape(-1)).view(self.batch, 3, h, h)

    def current_kernel(self) -> torch.Tensor:
        return self.G.impulse_response() if self.layerwise else self.G.kernel()

    def regularisers(self, k: torch.Tensor) -> dict[str, torch.Tensor]:
        total = k.sum()
        com = torch.stack([k.sum(1) @ self.indices, k.sum(0) @ self.indices]) / total
        return {
            "sum_to_one": (1.0 - total).abs(),
            "boundaries": (k * self.mask).abs().mean(),
            "centre": F.mse_loss(com, self.com_target),
            "sparsity": k.abs().pow(self.settings.sparsity_power).mean(),
        }

    def step(self, i: int) -> float:
        s, sched = self.settings, self.schedule
        g_in, d_real = self.crops(i)
        patches = None if self.layerwise else self.patches(g_in)
        # G step.
        self.opt_g.zero_grad(set_to_none=True)
        k = self.current_kernel()
        fake = self.generate(g_in, patches, k)
        loss_gan = (1.0 - self.D(fake, detach_params=True)).mean()
        bicubic = F.mse_loss(fake, self.bicubic_target(i, fake.shape[-1]))
        reg = self.regularisers(k)
        loss_g = (loss_gan + sched.bicubic_weight * bicubic
                  + s.sum_to_one_weight * reg["sum_to_one"]
                  + s.boundaries_weight * reg["boundaries"])
        if sched.constraints_on:
            loss_g = loss_g + sched.centre_weight * reg["centre"] + sched.sparsity_weight * reg["sparsity"]
        loss_g.backward()
        self.opt_g.step()
        # D step: real and fake crops in one batched forward (per-sample normalisation).
        self.opt_d.zero_grad(set_to_none=True)
        with torch.no_grad():
            fake = self.generate(g_in, patches, self.current_kernel())
            fake = fake + torch.randn(fake.shape, generator=self.noise_gen,
                                      device=self.device) * s.fake_noise
        pred = self.D(torch.cat([d_real, fake]))
        loss_d = 0.5 * (pred[self.batch:].mean() + (1.0 - pred[:self.batch]).mean())
        loss_d.backward()
        self.opt_d.step()
        bic = float(bicubic.detach())
        sched.update(i, bic, (self.opt_g, self.opt_d))
        self.last_losses = {"bicubic": bic, "g": float(loss_g.detach()), "d": float(loss_d.detach())}
        return bic

    def kernel(self) -> np.ndarray:
        with torch.no_grad():
            return self.G.kernel().double().cpu().numpy()


def prepare_image(rgb: np.ndarray, settings: KernelGANSettings) -> np.ndarray:
    """Shave the synthetic-border margin (when the image is large enough) and crop to even size."""
    rows, cols = rgb.shape[:2]
    e = settings.edge_shave
    if min(rows, cols) - 2 * e >= settings.g_crop:
        rgb = rgb[e:rows - e, e:cols - e]
    rows, cols = rgb.shape[:2]
    rgb = rgb[:rows - rows % 2, :cols - cols % 2]
    if min(rgb.shape[:2]) < MIN_G_CROP:
        raise ImageTooSmall(f"image is {cols}x{rows}; kernel estimation needs at least "
                            f"{MIN_G_CROP} px on each side")
    return np.ascontiguousarray(rgb)


def train(rgb: np.ndarray, settings: KernelGANSettings, seed: int, device: torch.device,
          progress: Callable[[int], None] | None = None, layerwise: bool = False) -> RunResult:
    """Run KernelGAN for ``settings.iterations`` on an RGB image in [0, 1]; the native kernel."""
    start = time.perf_counter()
    run = KernelGANRun(rgb, settings, seed, device, layerwise)
    check_every = 50
    for i in range(settings.iterations):
        bic = run.step(i)
        if (i + 1) % check_every == 0 or i + 1 == settings.iterations:
            if not math.isfinite(bic) or not all(map(math.isfinite, run.last_losses.values())):
                raise NumericalFault(f"non-finite loss at iteration {i + 1}")
            if progress is not None:
                progress(check_every if (i + 1) % check_every == 0 else (i + 1) % check_every)
    native = run.kernel()
    if not np.all(np.isfinite(native)):
        raise NumericalFault("non-finite kernel")
    diagnostics = {
        "iterations": settings.iterations,
        "g_crop": run.g_size,
        "native_kernel_sum": float(native.sum()),
        "final_losses": run.last_losses,
        "schedule_events": run.schedule.events,
    }
    return RunResult(native, time.perf_counter() - start, diagnostics)
