"""ZSSR's learning-rate policy and stopping rule (authors' ``learning_rate_policy``).

Iterations are 0-based. A reconstruction error is recorded at iterations 0, 50, 100, ...; at
iterations 59, 119, 179, ... (i + 1 divisible by 60), if more than 256 iterations passed since
the last change (the stage start counts as a change at 0), a line is fitted to the last 5
recorded (iteration, error) points; when -1.5 * slope < sqrt(3) * stderr(slope) - the error is no
longer falling clearly faster than its noise - the learning rate is divided by 10. Training stops
once the rate is below 9e-6, i.e. after the third drop (at the earliest after iteration 899).

With ``schedule="cosine"`` the rate after iteration i is
min + (start - min) * (1 + cos(pi * (i + 1) / max_iters)) / 2 and training runs max_iters
iterations; the reconstruction tests are then only recorded (diagnostics, numerical checks).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from zssr.settings import ZSSRSettings


def slope_and_stderr(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of y on x and its standard error sqrt(RSS / (n - 2) / Sxx)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    dx = x - x.mean()
    sxx = float(dx @ dx)
    slope = float(dx @ (y - y.mean())) / sxx
    residual = y - y.mean() - slope * dx
    return slope, math.sqrt(float(residual @ residual) / (len(x) - 2) / sxx)


@dataclass
class LearningRatePolicy:
    """State of one scale stage: recorded errors, the current rate and the drops so far."""

    settings: ZSSRSettings
    learning_rate: float = 0.0
    steps: list[int] = field(default_factory=list)
    errors: list[float] = field(default_factory=list)
    drops: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.learning_rate = self.settings.learning_rate

    def wants_test(self, iteration: int) -> bool:
        return iteration % self.settings.test_every == 0

    def record(self, iteration: int, error: float) -> None:
        self.steps.append(iteration)
        self.errors.append(float(error))

    def update(self, iteration: int) -> bool:
        """Apply the policy after ``iteration``; True when the learning rate was just changed."""
        s = self.settings
        if s.schedule == "cosine":
            progress = min(1.0, (iteration + 1) / s.max_iters)
            self.learning_rate = s.min_learning_rate + (s.learning_rate - s.min_learning_rate) * (
                1.0 + math.cos(math.pi * progress)) / 2.0
            return True
        last_change = self.drops[-1] if self.drops else 0
        if (iteration + 1) % s.policy_every or iteration - last_change <= s.min_iters_between_drops:
            return False
        if len(self.errors) < 3:
            return False
        slope, stderr = slope_and_stderr(self.steps[-s.slope_points:], self.errors[-s.slope_points:])
        if -s.slope_ratio * slope < s.std_error_factor * stderr:
            self.learning_rate /= s.lr_drop
            self.drops.append(iteration)
            return True
        return False

    @property
    def finished(self) -> bool:
        return self.learning_rate < self.settings.min_learning_rate
