"""Result-table helpers (blindsr/tables.py) against hand-derived values."""
from __future__ import annotations

from blindsr.tables import differences, mean_p10_worst, mean_worst


def test_mean_p10_worst_by_hand():
    # 1..10: mean 5.5; the 10th percentile (linear between order statistics) sits 0.9 of the way
    # from 1 to 2; the worst is the minimum.
    assert mean_p10_worst(range(1, 11)) == "5.50 / 1.90 / 1.00"
    # Differences keep their sign: mean -0.25, p10 -1 + 0.1 * 1.5 = -0.85, worst -1.
    assert mean_p10_worst([-1.0, 0.5], signed=True) == "-0.25 / -0.85 / -1.00"
    assert mean_p10_worst([0.25], signed=True) == "+0.25 / +0.25 / +0.25"


def test_mean_worst_by_hand():
    # 1..10: mean 5.5, worst (minimum) 1; differences keep their sign: mean -0.25, worst -1.
    assert mean_worst(range(1, 11)) == "5.50 / 1.00"
    assert mean_worst([-1.0, 0.5], signed=True) == "-0.25 / -1.00"
    assert mean_worst([0.25], signed=True) == "+0.25 / +0.25"


def test_differences_count_the_losses_over_a_tenth():
    # -0.2 and -0.15 are below -0.1; -0.1 itself and the gains are not. Mean (-0.2 - 0.15 - 0.1 + 1.05) / 4 = 0.15.
    assert differences([-0.2, -0.15, -0.1, 1.05]).endswith("(2 below -0.1)")
    assert differences([-0.2, -0.15, -0.1, 1.05]).startswith("+0.15 / ")
