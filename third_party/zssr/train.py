"""Training one scale stage at test time (ZSSR paper, Sec. 3-4; the authors' ``train``).

Iteration i: draw a father, make its son (downscale with the stage's kernel, optional Gaussian
noise, clip to [0, 1]), let the network super-resolve the son to the father's size with the
stage's factor (``net.sr``: the paper's network upscales bicubically first, the sub-pixel one
last), one Adam step on the (weighted) L1 between that and the father. Every
``test_every`` iterations the reconstruction error is measured - the son of the whole input
through the net against the input, MSE - and the learning-rate policy may divide the rate.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from zssr.downscale import Downscaler
from zssr.fathers import FatherSampler
from zssr.network import SubPixelZSSRNet, ZSSRNet
from zssr.output import upscale
from zssr.policy import LearningRatePolicy
from zssr.settings import ZSSRSettings

Progress = Callable[[int], None]
log = logging.getLogger(__name__)


class NumericalFault(RuntimeError):
    """Training produced a non-finite loss or reconstruction error."""


@dataclass
class StageReport:
    """What one stage did; ``reconstruction`` holds (iteration, MSE) of every test."""

    scale: int
    iterations: int = 0
    lr_drops: list[int] = field(default_factory=list)
    reconstruction: list[tuple[int, float]] = field(default_factory=list)
    train_seconds: float = 0.0
    output_seconds: float = 0.0

    def summary(self) -> dict:
        return {"scale": self.scale, "iterations": self.iterations, "lr_drops": self.lr_drops,
                "final_reconstruction_mse": self.reconstruction[-1][1] if self.reconstruction else None,
                "reconstruction_mse": self.reconstruction, "train_seconds": round(self.train_seconds, 3),
                "output_seconds": round(self.output_seconds, 3)}


def reconstruction_error(net: ZSSRNet | SubPixelZSSRNet, image: torch.Tensor, down: Downscaler, tile: int) -> float:
    """MSE between ``image`` (1, C, H, W) and the net's SR of its noise-free son."""
    rebuilt = upscale(net, down(image), down.scale, image.shape[-2:], tile)
    return float(torch.mean((rebuilt - image) ** 2))


def train_stage(net: ZSSRNet | SubPixelZSSRNet, optimizer: torch.optim.Optimizer, image: torch.Tensor,
                fathers: FatherSampler, down: Downscaler, settings: ZSSRSettings,
                generator: torch.Generator, progress: Progress | None = None) -> StageReport:
    """Train ``net`` for one stage (learning rate and policy start afresh; weights and the
    optimiser's moments carry over from the caller). ``image`` is the input (1, C, H, W) in the
    network's dtype on its device; ``generator`` draws the sons' noise."""
    report = StageReport(scale=down.scale)
    policy = LearningRatePolicy(settings)
    _set_rate(optimizer, policy.learning_rate)
    start = time.perf_counter()
    net.train()
    early = settings.early_crop_iterations()
    fathers.use_crop_size(settings.early_crop_size if early else settings.crop_size)
    for iteration in range(settings.max_iters):
        if iteration == early and early:
            fathers.use_crop_size(settings.crop_size)
        father, weights = fathers.draw()
        son = down(father)
        if settings.noise_std:
            son = son + settings.noise_std * torch.randn(son.shape, generator=generator, device=son.device,
                                                         dtype=son.dtype)
        son = son.clamp(0.0, 1.0)
        with torch.autocast(father.device.type, dtype=torch.bfloat16, enabled=settings.precision == "bf16"):
            output = net.sr(son, down.scale, father.shape[-2:])
        error = (output.float() - father).abs()
        loss = (error * weights).mean() if settings.gradient_loss_map else error.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if policy.wants_test(iteration):
            mse = reconstruction_error(net, image, down, settings.tile)
            if not (math.isfinite(mse) and math.isfinite(float(loss.detach()))):
                raise NumericalFault(f"non-finite loss at iteration {iteration} of the x{down.scale} stage")
            policy.record(iteration, mse)
            report.reconstruction.append((iteration, mse))
        if policy.update(iteration):
            _set_rate(optimizer, policy.learning_rate)
        report.iterations = iteration + 1
        if progress is not None:
            progress(1)
        if policy.finished:
            break
    report.lr_drops = list(policy.drops)
    report.train_seconds = time.perf_counter() - start
    log.info("x%d stage: %d iterations in %.1f s, learning-rate drops at %s, reconstruction MSE %.3g",
             report.scale, report.iterations, report.train_seconds, report.lr_drops,
             report.reconstruction[-1][1])
    return report


def _set_rate(optimizer: torch.optim.Optimizer, rate: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = rate
