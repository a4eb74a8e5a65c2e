"""The learning-rate policy on scripted reconstruction-error sequences (drop iterations derived by
hand from the rule in zssr.policy's docstring)."""
from __future__ import annotations

import math

import numpy as np

from zssr.policy import LearningRatePolicy, slope_and_stderr
from zssr.settings import preset

# A residual pattern orthogonal to a constant and to the 5 centred steps [-100, -50, 0, 50, 100]:
# added to a line it leaves the fitted slope alone. RSS = 10 c^2, Sxx = 25000, so
# stderr(slope) = sqrt(10 c^2 / 3 / 25000) = c / sqrt(7500).
PATTERN = np.array([1.0, -2.0, 0.0, 2.0, -1.0])


def drive(policy: LearningRatePolicy, error_at, until: int = 3000) -> int:
    """Run the policy the way train_stage does; returns the number of iterations run."""
    for iteration in range(until):
        if policy.wants_test(iteration):
            policy.record(iteration, error_at(iteration))
        policy.update(iteration)
        if policy.finished:
            return iteration + 1
    return until


def test_stderr_matches_numpy_polyfit(rng):
    x = np.arange(5) * 50.0 + 100
    y = rng.random(5)
    slope, stderr = slope_and_stderr(x, y)
    (ref_slope, _), cov = np.polyfit(x, y, 1, cov=True)
    assert math.isclose(slope, ref_slope, rel_tol=1e-9)
    assert math.isclose(stderr, math.sqrt(cov[0, 0]), rel_tol=1e-9)


def test_noise_only_drops_at_earliest_checks():
    # Alternating errors: slope 0 < stderr. Checks run at i with (i + 1) % 60 == 0 and more than
    # 256 iterations after the last drop (the stage start counts as 0): 299; then > 555 -> 599;
    # then > 855 -> 899, where the third drop takes the rate to 1e-6 < 9e-6 and training stops.
    policy = LearningRatePolicy(preset("kernelgan"))
    iterations = drive(policy, lambda i: 1.0 + (i // 50) % 2)
    assert policy.drops == [299, 599, 899]
    assert iterations == 900
    assert math.isclose(policy.learning_rate, 1e-6)


def test_clean_descent_never_drops():
    policy = LearningRatePolicy(preset("kernelgan"))
    iterations = drive(policy, lambda i: 1.0 - 1e-4 * i)
    assert policy.drops == [] and iterations == 3000 and not policy.finished


def test_sqrt3_factor_decides_a_borderline_fit():
    # Tests at 50..250 (the window of the check at 299): slope -a plus PATTERN * c, with
    # stderr = c / sqrt(7500) = 1e-4 and 1.5 a = 1.3e-4: 1.3e-4 < sqrt(3) * 1e-4 drops the rate,
    # 1.3e-4 < 1e-4 (today's polyfit without the factor) does not.
    c = 1e-4 * math.sqrt(7500)
    a = 1.3e-4 / 1.5
    errors = {0: 2.0}
    errors.update({50 * k: 1.0 - a * 50 * (k - 3) + c * PATTERN[k - 1] for k in range(1, 6)})
    slope, stderr = slope_and_stderr(list(errors)[1:], list(errors.values())[1:])
    assert math.isclose(slope, -a, rel_tol=1e-6) and math.isclose(stderr, 1e-4, rel_tol=1e-6)

    with_factor = LearningRatePolicy(preset("kernelgan"))
    drive(with_factor, errors.__getitem__, until=300)
    assert with_factor.drops == [299] and math.isclose(with_factor.learning_rate, 1e-4)

    without = LearningRatePolicy(preset("kernelgan", std_error_factor=1.0))
    drive(without, errors.__getitem__, until=300)
    assert without.drops == [] and without.learning_rate == 1e-3


def test_checks_wait_for_policy_period_after_a_drop():
    # Noise until 299 (drop), then a clean descent: no further drops, training runs to 3000.
    policy = LearningRatePolicy(preset("kernelgan"))
    iterations = drive(policy, lambda i: 1.0 + (i // 50) % 2 if i < 300 else 1.0 - 1e-4 * i)
    assert policy.drops == [299] and iterations == 3000


def test_cosine_schedule_follows_the_half_cosine_and_ignores_the_errors():
    settings = preset("fast", max_iters=8, learning_rate=1e-3, min_learning_rate=1e-5)
    policy = LearningRatePolicy(settings)
    rates = []
    for iteration in range(8):
        if policy.wants_test(iteration):
            policy.record(iteration, 1.0)  # a flat error would trigger drops under the plateau policy
        assert policy.update(iteration)
        rates.append(policy.learning_rate)
    # After iteration i the rate is 1e-5 + 0.99e-3 * (1 + cos(pi * (i + 1) / 8)) / 2.
    assert rates[3] == 1e-5 + 0.99e-3 / 2  # i = 3: cos(pi / 2) = 0, the midpoint
    assert rates[1] == 1e-5 + 0.99e-3 * (1 + math.sqrt(0.5)) / 2  # cos(pi / 4)
    assert rates[-1] == 1e-5 and policy.drops == [] and not policy.finished
    assert all(a > b for a, b in zip(rates, rates[1:]))
