"""Fathers and their loss weights."""
from __future__ import annotations

import numpy as np
import torch

from tests.conftest import textured_image
from zssr.fathers import FatherSampler, gradient_loss_map
from zssr.settings import preset


def test_gradient_loss_map(rng):
    image = textured_image(rng, 40, 30)
    weights = gradient_loss_map(image)
    assert weights.shape == (40, 30)
    assert np.isclose(weights.mean(), 1.0)
    assert np.all(weights[:3] == 0) and np.all(weights[:, -3:] == 0) and weights[3:-3, 3:-3].min() >= 0
    # Central differences of the grey image, 5x5 box sums, at one interior pixel.
    gray = image @ np.array([0.299, 0.587, 0.114])
    pad = np.pad(gray, 1, mode="edge")
    mag = np.hypot((pad[2:, 1:-1] - pad[:-2, 1:-1]) / 2, (pad[1:-1, 2:] - pad[1:-1, :-2]) / 2)
    raw = np.zeros_like(gray)
    raw[3:-3, 3:-3] = [[mag[i - 2:i + 3, j - 2:j + 3].sum() for j in range(3, 27)] for i in range(3, 37)]
    np.testing.assert_allclose(weights, raw / raw.mean(), atol=1e-12)
    assert np.all(gradient_loss_map(np.full((20, 20, 3), 0.5)) == 1.0)


def sampler(image: np.ndarray, augment: str, allowed: tuple[int, ...], crop: int = 16) -> FatherSampler:
    planes = np.concatenate([image, np.ones(image.shape[:2] + (1,))], axis=-1).transpose(2, 0, 1)[None]
    settings = preset("original", augment=augment, crop_size=crop)
    return FatherSampler(torch.as_tensor(planes), settings, allowed, np.random.default_rng(0))


def test_plain_fathers_are_integer_crops(rng):
    image = rng.random((30, 25, 3))
    fathers = sampler(image, "plain", (0,))
    planes = torch.as_tensor(image.transpose(2, 0, 1))
    for _ in range(20):
        father, weights = fathers.draw()
        assert father.shape == (1, 3, 16, 16) and weights.shape == (1, 1, 16, 16)
        windows = planes.unfold(1, 16, 1).unfold(2, 16, 1)  # (3, rows, cols, 16, 16)
        assert (windows == father[0][:, None, None]).flatten(3).all(-1).all(0).any()


def test_affine_fathers_hold_no_padding():
    """Every father of a constant image is that constant: no black border ever enters a crop."""
    fathers = sampler(np.full((40, 50, 3), 0.5), "full", tuple(range(8)))
    for _ in range(200):
        father, weights = fathers.draw()
        torch.testing.assert_close(father, torch.full_like(father, 0.5), atol=1e-6, rtol=0)
        torch.testing.assert_close(weights, torch.ones_like(weights), atol=1e-6, rtol=0)


def test_small_images_give_whole_side_fathers(rng):
    father, _ = sampler(rng.random((10, 40, 3)), "plain", (0,), crop=32).draw()
    assert father.shape == (1, 3, 10, 32)
