"""HR fathers: the training targets, crops of the LR input itself (ZSSR paper, Sec. 3-4).

Each father carries its loss weights: the input's gradient-magnitude map (KernelGAN's variant) or
ones, cropped and warped together with the image as a fourth channel.

* ``plain`` (KernelGAN's configuration): a uniformly placed integer crop, nothing else.
* ``full`` (the original default): with probability 0.05 a plain crop; 0.45 a crop under one of
  the dihedral transforms the kernels allow; otherwise an affine warp - scale U(0.5, 1) with
  N(0, 0.25) anisotropy, plus (only when the kernels allow all eight dihedral transforms) a
  random rotation, N(0, 0.1) shear and a random mirror - resampled bicubically. Unlike the
  original, whose crop offset assumed an origin-anchored image while its warp was centred
  (about half its affine fathers held black padding), an affine father must lie inside the
  image: a draw whose footprint does not fit is redrawn, and after ``AFFINE_TRIES`` misses a
  dihedral crop is used instead.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from zssr.geometry import TRANSFORMS, transform
from zssr.settings import ZSSRSettings

AFFINE_TRIES = 10
GRADIENT_WINDOW = 5
GRADIENT_BORDER = 3  # (window + window % 2) / 2, as the authors compute it
GRADIENT_CLIP = 255.0
LUMA = np.array([0.299, 0.587, 0.114])


def gradient_loss_map(image: np.ndarray) -> np.ndarray:
    """KernelGAN's per-pixel L1 weights for an (H, W, C) image in [0, 1]: gradient magnitude of
    the grey image (central differences), 5x5 box sums, a 3-px border set to 0, clipped to
    [0, 255], normalised to mean 1. (H, W) float64; all ones where the image has no gradient."""
    gray = image[..., :3] @ LUMA if image.shape[-1] >= 3 else image.mean(axis=-1)
    d_rows, d_cols = np.gradient(gray)
    from scipy.signal import convolve2d  # imported here: scipy.signal costs ~0.4 s at start-up

    boxed = convolve2d(np.hypot(d_rows, d_cols), np.ones((GRADIENT_WINDOW,) * 2), mode="same")
    weights = np.zeros_like(boxed)
    b = GRADIENT_BORDER
    weights[b:-b, b:-b] = np.clip(boxed[b:-b, b:-b], 0.0, GRADIENT_CLIP)
    mean = weights.mean() if weights.size else 0.0
    return weights / mean if mean > 0 else np.ones_like(gray)


class FatherSampler:
    """Draws fathers from ``source`` (1, C + 1, H, W): the image channels plus one weight channel.

    Args:
        source: the LR input with its loss-weight channel appended, on the training device.
        settings: crop size, augmentation mode and its probabilities.
        allowed: dihedral transforms the kernels allow (see ``zssr.geometry``).
        rng: the random generator of crop positions and augmentation draws.
    """

    def __init__(self, source: torch.Tensor, settings: ZSSRSettings, allowed: tuple[int, ...],
                 rng: np.random.Generator) -> None:
        self.source = source
        self.settings = settings
        self.allowed = allowed
        self.rng = rng
        self.height, self.width = source.shape[-2:]
        self.use_crop_size(settings.crop_size)

    def use_crop_size(self, size: int) -> None:
        """Draw ``size`` x ``size`` fathers from now on (an image smaller than that gives its whole side)."""
        self.crop = (min(size, self.height), min(size, self.width))

    def draw(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One father (1, C, h, w) and its loss weights (1, 1, h, w)."""
        s = self.settings
        if s.augment == "plain":
            return self._split(self._plain())
        u = self.rng.random()
        if u < s.leave_as_is_probability:
            sample = self._plain()
        elif u < s.leave_as_is_probability + s.dihedral_probability:
            sample = transform(self._plain(), int(self.rng.choice(self.allowed)))
        else:
            sample = self._affine()
        return self._split(sample)

    @staticmethod
    def _split(sample: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return sample[:, :-1], sample[:, -1:]

    def _plain(self) -> torch.Tensor:
        top = int(self.rng.integers(0, self.height - self.crop[0] + 1))
        left = int(self.rng.integers(0, self.width - self.crop[1] + 1))
        return self.source[..., top:top + self.crop[0], left:left + self.crop[1]]

    def _affine(self) -> torch.Tensor:
        s = self.settings
        free = len(self.allowed) == len(TRANSFORMS)
        for _ in range(AFFINE_TRIES):
            zoom = self.rng.uniform(s.min_scale, 1.0)
            diff = self.rng.normal(0.0, s.scale_diff_sigma) if s.scale_diff_sigma else 0.0
            theta = self.rng.uniform(0.0, 2 * math.pi) if free else 0.0
            shear = self.rng.normal(0.0, s.shear_sigma, size=2) if free and s.shear_sigma else np.zeros(2)
            mirror = self.rng.choice((-1.0, 1.0)) if free else 1.0
            scale = np.diag([zoom - diff / 2, mirror * (zoom + diff / 2)])
            if min(abs(scale[0, 0]), abs(scale[1, 1])) < 0.05:
                continue
            rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
            shearing = np.array([[1.0, shear[0]], [shear[1], 1.0]])
            # Father (row, col) offsets from the crop centre -> source offsets.
            to_source = np.linalg.inv(shearing @ rotation @ scale)
            half = (np.array(self.crop, dtype=np.float64) - 1) / 2
            reach = np.abs(to_source) @ half  # half extents of the footprint's bounding box
            room = np.array([self.height - 1, self.width - 1]) - 2 * reach
            if np.any(room < 0):
                continue
            centre = reach + self.rng.random(2) * room
            return self._warp(to_source, centre)
        return transform(self._plain(), int(self.rng.choice(self.allowed)))

    def _warp(self, to_source: np.ndarray, centre: np.ndarray) -> torch.Tensor:
        rows = np.arange(self.crop[0]) - (self.crop[0] - 1) / 2
        cols = np.arange(self.crop[1]) - (self.crop[1] - 1) / 2
        offsets = np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1)
        points = centre + offsets @ to_source.T  # (h, w, 2) source (row, col)
        # grid_sample wants (x, y) in [-1, 1], -1 and 1 at the centres of the edge pixels.
        grid = np.stack([points[..., 1] / (self.width - 1), points[..., 0] / (self.height - 1)], axis=-1) * 2 - 1
        grid = torch.as_tensor(grid[None], dtype=self.source.dtype, device=self.source.device)
        out = F.grid_sample(self.source, grid, mode="bicubic", padding_mode="border", align_corners=True)
        return torch.cat([out[:, :-1].clamp(0.0, 1.0), out[:, -1:]], dim=1)
