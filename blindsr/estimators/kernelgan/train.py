"""KernelGAN training on one image: crops, losses, the authors' schedule - for R runs at once.

Losses (KernelGAN paper Sec. 3, Eq. 3-4, and the authors' code, which uses means throughout), per
run: L_G = mean(1 - D(G(x))) + 5 * bicubic + 0.5 * |1 - sum k| + 0.5 * mean|k . m|
            + [1 * centre-of-mass + 5 * mean|k|^0.2 once switched on];
     L_D = (mean(D(G(x) + n)) + mean(1 - D(y + n))) / 2.
One G step then one D step per iteration. The R runs (independent seeds: own initialisation,
own crops, own noise, own schedule) are summed into one loss; their parameters are disjoint, so
each run's gradients, Adam moments and schedule are exactly its own.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from blindsr.degradation import bicubic_taps
from blindsr.estimators.kernelgan.crops import crop_maps, plan_crops, plan_group_crops
from blindsr.estimators.kernelgan.networks import DeepLinearGenerator, PatchDiscriminator
from blindsr.estimators.kernelgan.settings import MIN_G_CROP, KernelGANSettings
from blindsr.runtime import can_fork, forked_map

CHECK_EVERY = 50  # iterations between finiteness checks and progress reports
# Input pixels per colour that one band of the bicubic target's convolution reads (a photo's
# whole-image convolution took several times the image's size in working memory).
BICUBIC_BAND_ELEMENTS = 1 << 21


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
    total = k.sum()
    if not np.isfinite(total) or total <= 0:
        raise NumericalFault("no positive kernel mass left after thresholding")
    return k / total


@dataclass
class Schedule:
    """The authors' ``Learner``, per run: once its bicubic loss stayed below the threshold for
    ``patience`` consecutive iterations, every ``schedule_every`` iterations divide its weight by
    ``decay`` (floor ``bicubic_min``); when it first drops below ``constraints_below`` switch on
    the centre-of-mass and sparsity terms. Learning rates drop ``lr_decay``-fold every
    ``lr_decay_every`` iterations (all runs share the iteration count)."""

    settings: KernelGANSettings
    runs: int = 1
    bicubic_weight: np.ndarray = field(init=False)
    centre_weight: np.ndarray = field(init=False)
    sparsity_weight: np.ndarray = field(init=False)
    low_count: np.ndarray = field(init=False)
    similar_to_bicubic: np.ndarray = field(init=False)
    constraints_on: np.ndarray = field(init=False)
    events: list[dict] = field(init=False)

    def __post_init__(self) -> None:
        self.bicubic_weight = np.full(self.runs, self.settings.bicubic_weight)
        self.centre_weight = np.zeros(self.runs)
        self.sparsity_weight = np.zeros(self.runs)
        self.low_count = np.zeros(self.runs, dtype=int)
        self.similar_to_bicubic = np.zeros(self.runs, dtype=bool)
        self.constraints_on = np.zeros(self.runs, dtype=bool)
        self.events = [{} for _ in range(self.runs)]

    def update(self, iteration: int, bicubic_losses: Sequence[float], optimisers) -> None:
        s = self.settings
        if iteration == 0:
            return
        if iteration % s.lr_decay_every == 0:
            for opt in optimisers:
                for group in opt.param_groups:
                    group["lr"] /= s.lr_decay
        for r, loss in enumerate(bicubic_losses):
            if not self.similar_to_bicubic[r]:
                if loss < s.bicubic_threshold:
                    if self.low_count[r] >= s.bicubic_patience - 1:
                        self.similar_to_bicubic[r] = True
                        self.events[r]["similar_to_bicubic"] = iteration
                    else:
                        self.low_count[r] += 1
                else:
                    self.low_count[r] = 0
            elif iteration % s.schedule_every == 0 and self.bicubic_weight[r] > s.bicubic_min:
                self.bicubic_weight[r] = max(self.bicubic_weight[r] / s.bicubic_decay, s.bicubic_min)
                if not self.constraints_on[r] and self.bicubic_weight[r] < s.constraints_below:
                    self.centre_weight[r] = s.centre_weight
                    self.sparsity_weight[r] = s.sparsity_weight
                    self.constraints_on[r] = True
                    self.events[r]["constraints_on"] = iteration


@dataclass
class RunResult:
    """Native G kernels (R, K, K; centre of mass near (K-1)/2 + 0.5), which runs stayed finite,
    and what happened."""

    kernels: np.ndarray
    finite: np.ndarray
    seconds: float
    diagnostics: list[dict]


def prepare_image(rgb: np.ndarray, settings: KernelGANSettings) -> np.ndarray:
    """Shave the synthetic-border margin (when the image is large enough) and crop to even size: a
    view of ``rgb`` (a photo's copy would take memory; everything reading it gives the same numbers)."""
    rows, cols = rgb.shape[:2]
    e = settings.edge_shave
    if min(rows, cols) - 2 * e >= settings.g_crop:
        rgb = rgb[e:rows - e, e:cols - e]
    rows, cols = rgb.shape[:2]
    rgb = rgb[:rows - rows % 2, :cols - cols % 2]
    if min(rgb.shape[:2]) < MIN_G_CROP:
        raise ImageTooSmall(f"image is {cols}x{rows}; kernel estimation needs at least "
                            f"{MIN_G_CROP} px on each side")
    return rgb


def g_crop_size(images: Sequence[np.ndarray], settings: KernelGANSettings) -> int:
    """G's crop: the preset's, or the largest even size every prepared image holds."""
    return min(settings.g_crop, min(min(x.shape[:2]) for x in images) // 2 * 2)


def signed_planes(rgb: np.ndarray, device: torch.device) -> torch.Tensor:
    """(3, H, W) float32: ``rgb * 2 - 1`` computed in float64 and rounded once, a colour plane at
    a time (the whole image's float64 temporaries took several times its size)."""
    planes = torch.empty((rgb.shape[2],) + rgb.shape[:2], dtype=torch.float32)
    for c in range(rgb.shape[2]):
        plane = rgb[:, :, c] * 2.0
        plane -= 1.0
        planes[c] = torch.from_numpy(plane)
    return planes.to(device)


class KernelGANRun:
    """Networks, optimisers and fixed tensors for R runs; ``step`` is one iteration of all.

    ``rgb`` is one image, or a list: a group of images of one camera, whose crops are drawn
    across the group, image by image with probability ``shares`` (default: equal)."""

    def __init__(self, rgb: np.ndarray | Sequence[np.ndarray], settings: KernelGANSettings, seeds: Sequence[int],
                 device: torch.device, layerwise: bool = False, shares: Sequence[float] | None = None):
        self.settings = settings
        self.device = device
        self.layerwise = layerwise
        self.runs = len(seeds)
        self.batch = settings.crops_per_iteration
        group = not isinstance(rgb, np.ndarray)
        images = [prepare_image(x, settings) for x in rgb] if group else [prepare_image(rgb, settings)]
        g_size = g_crop_size(images, settings)
        # Each run draws from generators of its own seed: its weights (G's, then D's), and the
        # noise on D's crops; so a run's numbers do not depend on the runs beside it.
        init = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.G = DeepLinearGenerator(self.runs, settings.g_structure, settings.g_channels, 2,
                                     settings.g_init_gain, init).to(device)
        self.D = PatchDiscriminator(self.runs, settings.d_channels, settings.d_layers, settings.d_kernel,
                                    generators=init).to(device)
        self.g_size = g_size
        self.d_size = (g_size - self.G.kernel_size) // 2 + 1
        maps = [crop_maps(x, g_size, self.d_size) for x in images]
        crops = settings.iterations * self.batch
        if group:
            weights = np.ones(len(images)) if shares is None else np.asarray(shares, dtype=np.float64)
            plans = [plan_group_crops(maps, weights / weights.sum(), crops, np.random.default_rng(int(s)))
                     for s in seeds]
        else:
            plans = [plan_crops(maps[0], crops, np.random.default_rng(int(s))) for s in seeds]
        self.g_corners = np.stack([p.g_corners for p in plans])  # (R, iterations * batch, 2)
        self.d_corners = np.stack([p.d_corners for p in plans])
        # Which image each crop comes from, (R, iterations * batch).
        self.g_images = np.stack([p.g_images if group else np.zeros(crops, int) for p in plans])
        self.d_images = np.stack([p.d_images if group else np.zeros(crops, int) for p in plans])
        self.images = [signed_planes(x, device) for x in images]
        del maps  # full-size float64 maps, freed before the bicubic targets are made (images are views)
        self.noise_gens = [torch.Generator(device=device).manual_seed(int(s) + 1) for s in seeds]
        kw = {"lr": settings.lr, "betas": (settings.beta1, 0.999)}
        fused = {"fused": True} if device.type in ("cpu", "cuda") else {}
        self.opt_g = torch.optim.Adam(self.G.parameters(), **kw, **fused)
        self.opt_d = torch.optim.Adam(self.D.parameters(), **kw, **fused)
        self.bicubic_full = [self._bicubic_downscale(x, settings.bicubic_target) for x in self.images]
        self.mask = torch.as_tensor(penalty_mask(self.G.kernel_size, settings.boundaries_scale),
                                    dtype=torch.float32, device=device)
        k = self.G.kernel_size
        self.indices = torch.arange(k, dtype=torch.float32, device=device)
        # Centre of mass the authors' G aims at: the centre plus (s-1)/2 for s = 2.
        self.com_target = torch.full((2,), (k // 2) + 0.5 * (2 - k % 2), device=device)
        self.schedule = Schedule(settings, self.runs)
        self.last_losses: dict[str, np.ndarray] = {}
        # The kernel the D step generated with, graph kept: the next G step's (``step``).
        self.next_kernel: torch.Tensor | None = None

    def _bicubic_downscale(self, image: torch.Tensor, target: str) -> torch.Tensor:
        """The bicubic-imitation target for every possible G crop at once, (3, h', w').

        The authors downscale each G crop with MATLAB's x1/2 bicubic filter (8 taps, stride 2,
        pad 3) and keep the part aligned with G's output: output i of a crop at even corner t
        reads image rows t + 2i + 3 ... t + 2i + 10. Filtering the whole image from row 1 once
        gives the same numbers; a crop's target is then a slice (``bicubic_target``).
        """
        taps = torch.as_tensor(bicubic_taps(2), dtype=torch.float32, device=self.device)
        kernel = torch.outer(taps, taps)[None, None]
        size = kernel.shape[-1]
        channels, rows, cols = image.shape
        out_rows, out_cols = (rows - 1 - size) // 2 + 1, (cols - 1 - size) // 2 + 1
        down = torch.empty(channels, out_rows, out_cols, dtype=image.dtype, device=image.device)
        # In bands of output rows (equal bit for bit to one convolution of the whole image):
        # output row i reads rows 2i + 1 ... 2i + size of the image.
        band = max(1, BICUBIC_BAND_ELEMENTS // (2 * cols))
        for top in range(0, out_rows, band):
            end = min(out_rows, top + band)
            down[:, top:end] = F.conv2d(image[:, 1 + 2 * top:2 * end + size - 1, 1:].unsqueeze(1), kernel,
                                        stride=2)[:, 0]
        if target == "channel_sum":
            # The authors expand their 8x8 filter to 3x3 channels, so every output channel is
            # the sum of all three colours' downscales.
            down = down.sum(0, keepdim=True).expand_as(down)
        elif target != "per_channel":
            raise ValueError(f"bicubic_target must be channel_sum or per_channel, not {target!r}")
        return down

    def _span(self, i: int) -> slice:
        return slice(i * self.batch, (i + 1) * self.batch)

    def bicubic_target(self, i: int, size: int) -> torch.Tensor:
        """(R, crops, 3, size, size): the bicubic targets of iteration ``i``'s G crops."""
        span = self._span(i)
        corners = self.g_corners[:, span].reshape(-1, 2) // 2 + 1
        slices = [self.bicubic_full[k][:, t:t + size, l:l + size]
                  for (t, l), k in zip(corners, self.g_images[:, span].reshape(-1))]
        return torch.stack(slices).view(self.runs, self.batch, 3, size, size)

    def crops(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """G's input (crops * 3, R, g, g: colours as a batch of grays, runs as channels) and D's
        noisy real crops (R, crops, 3, d, d) of iteration ``i``."""
        g, d = self.g_size, self.d_size
        span = self._span(i)
        g_in = torch.stack([self.images[k][:, t:t + g, l:l + g] for (t, l), k in
                            zip(self.g_corners[:, span].reshape(-1, 2), self.g_images[:, span].reshape(-1))])
        d_real = torch.stack([self.images[k][:, t:t + d, l:l + d] for (t, l), k in
                              zip(self.d_corners[:, span].reshape(-1, 2), self.d_images[:, span].reshape(-1))])
        d_real = d_real + self.noise((self.batch, *d_real.shape[1:])).view_as(d_real) * self.settings.real_noise
        g_in = g_in.view(self.runs, self.batch * 3, g, g).transpose(0, 1).contiguous()
        return g_in, d_real.view(self.runs, self.batch, 3, d, d)

    def noise(self, shape: Sequence[int]) -> torch.Tensor:
        """(R, *shape) standard normal noise, each run's from its own generator."""
        return torch.stack([torch.randn(tuple(shape), generator=g, device=self.device) for g in self.noise_gens])

    def generate(self, g_in: torch.Tensor, kernel: torch.Tensor | None) -> torch.Tensor:
        """G's output for the crops, (R, crops, 3, h, w)."""
        h = self.d_size
        out = self.G.layerwise_forward(g_in) if self.layerwise else self.G(g_in, kernel)
        return out.transpose(0, 1).reshape(self.runs, self.batch, 3, h, h)

    def current_kernel(self) -> torch.Tensor:
        return self.G.impulse_response() if self.layerwise else self.G.kernel()

    def regularisers(self, k: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-run kernel regularisers, each (R,)."""
        total = k.sum(dim=(1, 2))
        # Products and sums rather than matrix-vector products, whose numbers for a run depend
        # on how many runs share them (``networks``).
        com = torch.stack([(k.sum(2) * self.indices).sum(1), (k.sum(1) * self.indices).sum(1)], dim=1) / total[:, None]
        terms = {
            "sum_to_one": (1.0 - total).abs(),
            "boundaries": (k * self.mask).abs().mean(dim=(1, 2)),
            "centre": ((com - self.com_target) ** 2).mean(dim=1),
        }
        if self.schedule.constraints_on.any():
            # Run by run: a vectorised power's last elements take a scalar path, so on the
            # stacked runs a run's numbers would depend on where it sits (``networks``).
            terms["sparsity"] = torch.stack([kr.abs().pow(self.settings.sparsity_power).mean() for kr in k])
        return terms

    def step(self, i: int) -> np.ndarray:
        """One G step and one D step for every run; returns the runs' bicubic losses."""
        s, sched = self.settings, self.schedule
        weights = {name: torch.as_tensor(w, dtype=torch.float32, device=self.device) for name, w in
                   (("bicubic", sched.bicubic_weight), ("centre", sched.centre_weight),
                    ("sparsity", sched.sparsity_weight))}
        g_in, d_real = self.crops(i)
        # G step.
        self.opt_g.zero_grad(set_to_none=True)
        k = self.current_kernel() if self.next_kernel is None else self.next_kernel
        self.next_kernel = None
        fake = self.generate(g_in, k)
        loss_gan = (1.0 - self.D(fake, detach_params=True)).mean(dim=(1, 2, 3, 4))
        bicubic = ((fake - self.bicubic_target(i, fake.shape[-1])) ** 2).mean(dim=(1, 2, 3, 4))
        reg = self.regularisers(k)
        loss_g = (loss_gan + weights["bicubic"] * bicubic + s.sum_to_one_weight * reg["sum_to_one"]
                  + s.boundaries_weight * reg["boundaries"] + weights["centre"] * reg["centre"])
        if "sparsity" in reg:
            loss_g = loss_g + weights["sparsity"] * reg["sparsity"]
        loss_g.sum().backward()
        self.opt_g.step()
        # D step: real and fake crops in one batched forward (per-crop normalisation). G does not
        # change until the next G step, whose kernel this one is: computed once, with its graph,
        # and kept for it (the same numbers as computing it again there).
        self.opt_d.zero_grad(set_to_none=True)
        if i + 1 < s.iterations:
            self.next_kernel = self.current_kernel()
            k_next = self.next_kernel.detach()
        else:
            with torch.no_grad():
                k_next = self.current_kernel()
        with torch.no_grad():
            fake = self.generate(g_in, k_next)
            fake = fake + self.noise(fake.shape[1:]) * s.fake_noise
        pred = self.D(torch.cat([d_real, fake], dim=1))
        n = self.batch
        loss_d = 0.5 * (pred[:, n:].mean(dim=(1, 2, 3, 4)) + (1.0 - pred[:, :n]).mean(dim=(1, 2, 3, 4)))
        loss_d.sum().backward()
        self.opt_d.step()
        losses = torch.stack([bicubic.detach(), loss_g.detach(), loss_d.detach()]).cpu().numpy()
        sched.update(i, losses[0], (self.opt_g, self.opt_d))
        self.last_losses = {"bicubic": losses[0], "g": losses[1], "d": losses[2]}
        return losses[0]

    def kernels(self) -> np.ndarray:
        with torch.no_grad():
            return self.G.kernel().double().cpu().numpy()


def train(rgb: np.ndarray | Sequence[np.ndarray], settings: KernelGANSettings, seeds: Sequence[int],
          device: torch.device, progress: Callable[[int], None] | None = None, layerwise: bool = False,
          shares: Sequence[float] | None = None, processes: int = 1) -> RunResult:
    """Train ``len(seeds)`` KernelGAN runs side by side on an RGB image in [0, 1] (or a group of
    images of one camera, ``KernelGANRun``).

    On the CPU, ``processes`` > 1 splits the runs over forked processes (``split_runs``), each
    with its share of this process's threads: these small networks use two cores better as two
    processes than as two threads of one. The kernels are the same bit for bit either way (the
    runs' numbers do not depend on the runs beside them in the splits made here: tested). Only
    images that hold the preset's G crop are split: on smaller crops some operations' numbers
    depend on the batch. ``progress`` follows the first share."""
    images = [prepare_image(x, settings) for x in ([rgb] if isinstance(rgb, np.ndarray) else rgb)]
    full_crops = g_crop_size(images, settings) == settings.g_crop
    sizes = split_runs(len(seeds), processes) if device.type == "cpu" and full_crops and can_fork() else [len(seeds)]
    if len(sizes) == 1:
        return _train(rgb, settings, seeds, device, progress, layerwise, shares)
    start = time.perf_counter()
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # its first use imports a lot: once, not per child
    bounds = np.cumsum([0, *sizes])
    tasks = [functools.partial(_train, rgb, settings, list(seeds[a:b]), device, progress if a == 0 else None,
                               layerwise, shares) for a, b in zip(bounds[:-1], bounds[1:])]
    parts = forked_map(tasks, max(1, torch.get_num_threads() // len(tasks)))
    return RunResult(np.concatenate([p.kernels for p in parts]), np.concatenate([p.finite for p in parts]),
                     time.perf_counter() - start, [d for p in parts for d in p.diagnostics])


def split_runs(runs: int, processes: int) -> list[int]:
    """How many runs each of at most ``processes`` processes trains: whole pairs, as evenly as
    they go, for four or six runs. Other counts stay in one process: the batched operations give a
    run the same numbers in batches of two, four or six runs (measured on this code), but not in a
    batch of one or three (a grouped convolution's weight gradient, for one) nor always of eight."""
    if processes < 2 or runs not in (4, 6):
        return [runs]
    pairs = np.array_split(np.arange(runs // 2), min(processes, runs // 2))
    return [2 * len(p) for p in pairs]


def _train(rgb: np.ndarray | Sequence[np.ndarray], settings: KernelGANSettings, seeds: Sequence[int],
           device: torch.device, progress: Callable[[int], None] | None, layerwise: bool,
           shares: Sequence[float] | None) -> RunResult:
    start = time.perf_counter()
    run = KernelGANRun(rgb, settings, seeds, device, layerwise, shares)
    finite = np.ones(run.runs, dtype=bool)
    failed_at = [None] * run.runs
    for i in range(settings.iterations):
        run.step(i)
        done = i + 1
        if done % CHECK_EVERY == 0 or done == settings.iterations:
            for r in range(run.runs):
                ok = all(np.isfinite(v[r]) for v in run.last_losses.values())
                if finite[r] and not ok:
                    finite[r], failed_at[r] = False, done
            if progress is not None:
                progress(CHECK_EVERY if done % CHECK_EVERY == 0 else done % CHECK_EVERY)
    kernels = run.kernels()
    finite &= np.isfinite(kernels).all(axis=(1, 2))
    diagnostics = []
    for r, seed in enumerate(seeds):
        diagnostics.append({
            "seed": int(seed), "finite": bool(finite[r]), "failed_at_iteration": failed_at[r],
            "native_kernel_sum": float(kernels[r].sum()) if finite[r] else None,
            "final_losses": {k: float(v[r]) for k, v in run.last_losses.items()},
            "schedule_events": run.schedule.events[r]})
    return RunResult(kernels, finite, time.perf_counter() - start,
                     [dict(d, iterations=settings.iterations, g_crop=run.g_size) for d in diagnostics])
