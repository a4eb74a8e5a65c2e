"""KernelGAN's runs split over forked processes: the same kernels bit for bit as batched."""
from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from blindsr.estimators.kernelgan import RESTART_SEED_STRIDE
from blindsr.estimators.kernelgan.settings import settings_for
from blindsr.estimators.kernelgan.train import split_runs, train
from blindsr.runtime import can_fork, torch_threads
from tests.conftest import textured_image

train_module = importlib.import_module("blindsr.estimators.kernelgan.train")  # the package's ``train`` is the function
CPU = torch.device("cpu")
# The default preset with its schedule compressed, so that every loss term (centre of mass and
# sparsity included) and the learning-rate drop act within the test's iterations.
QUICK = {"iterations": 90, "schedule_every": 10, "lr_decay_every": 70}


def seeds(count: int) -> list[int]:
    return [r * RESTART_SEED_STRIDE for r in range(count)]


def test_split_runs_makes_pairs_for_four_or_six_runs():
    assert split_runs(4, 2) == [2, 2] and split_runs(4, 8) == [2, 2] and split_runs(6, 2) == [4, 2]
    assert split_runs(6, 3) == [2, 2, 2]
    for runs, processes in ((4, 1), (1, 2), (2, 2), (3, 2), (5, 4), (8, 2)):
        assert split_runs(runs, processes) == [runs]


@pytest.mark.slow
@pytest.mark.skipif(not can_fork(), reason="runs are split over forked processes on Linux only")
def test_split_runs_give_the_batched_kernels_bit_for_bit(monkeypatch):
    """The default preset's four runs: trained batched with one thread or two, as two forked pairs,
    or each pair alone, every run's kernel and diagnostics are the same; the schedule's events
    happened (so every loss term was in play)."""
    shares: list[int] = []
    real_map = train_module.forked_map
    monkeypatch.setattr(train_module, "forked_map", lambda tasks, threads: shares.append(len(tasks))
                        or real_map(tasks, threads))
    lr = textured_image(np.random.default_rng(11), 100, 96)
    settings = settings_for("default", QUICK)
    results = {}
    for label, threads, processes in (("batched, 1 thread", 1, 1), ("batched, 2 threads", 2, 1),
                                      ("two processes", 2, 2)):
        with torch_threads(threads):
            results[label] = train(lr, settings, seeds(4), CPU, processes=processes)
    assert shares == [2]
    alone = [train(lr, settings, seeds(4)[a:a + 2], CPU) for a in (0, 2)]
    reference = results["batched, 1 thread"]
    assert reference.diagnostics[0]["schedule_events"].get("constraints_on") is not None
    for result in [*results.values(), alone]:
        kernels = np.concatenate([r.kernels for r in result]) if isinstance(result, list) else result.kernels
        assert np.array_equal(kernels, reference.kernels)
    strip = [{k: v for k, v in d.items() if k != "seconds"} for d in reference.diagnostics]
    assert [{k: v for k, v in d.items() if k != "seconds"} for d in results["two processes"].diagnostics] == strip


@pytest.mark.slow
@pytest.mark.skipif(not can_fork(), reason="runs are split over forked processes on Linux only")
def test_group_runs_split_the_same_way(rng):
    """A group's joint training (crops drawn across its images) splits as one image's does."""
    images = [textured_image(np.random.default_rng(s), 100, 96) for s in (3, 4)]
    # The group's own budget (750 iterations by default) compressed like one image's.
    settings = settings_for("default", {**QUICK, "group_iterations": QUICK["iterations"]}).for_group()
    assert settings.iterations == QUICK["iterations"] and settings.schedule_every == QUICK["schedule_every"]
    with torch_threads(2):
        batched = train(images, settings, seeds(4), CPU, shares=[0.7, 0.3], processes=1)
        split = train(images, settings, seeds(4), CPU, shares=[0.7, 0.3], processes=2)
    assert batched.diagnostics[0]["schedule_events"].get("constraints_on") is not None
    assert np.array_equal(batched.kernels, split.kernels)


def test_small_images_stay_in_one_process(monkeypatch):
    """Below the preset's G crop some operations' numbers depend on the batch: no split."""
    monkeypatch.setattr(train_module, "forked_map", lambda *a: pytest.fail("split a small image"))
    lr = textured_image(np.random.default_rng(2), 50, 58)
    result = train(lr, settings_for("default", {"iterations": 2}), seeds(4), CPU, processes=2)
    assert result.kernels.shape == (4, 13, 13)
