"""The blindsr back-end adapter around zssr."""
from __future__ import annotations

import numpy as np
import pytest

from blindsr.backends import adapt, backend_names, get_backend
from blindsr.degradation import random_kernels
from blindsr.errors import UsageError
from tests.conftest import textured_image


def test_registered_with_stage_needs():
    assert "zssr" in backend_names()
    backend = get_backend("zssr", device="cpu")
    assert backend.name == "zssr"
    assert backend.needs.scales == (2, 4) and backend.needs.kernels == "stages"
    # The default is the fast preset: the cosine schedule runs exactly max_iters per stage.
    assert backend.preset == "fast" and backend.settings.body == "lr" and backend.settings.schedule == "cosine"
    assert backend.settings.max_iters == 600 and backend.settings.back_projection_iters == 2
    assert backend.work((10, 10), 4) == 1200
    paper = get_backend("zssr", preset="kernelgan", device="cpu")
    assert (paper.settings.body, paper.settings.schedule, paper.settings.max_iters) == ("hr", "plateau", 3000)
    assert paper.work((10, 10), 4) == 6000


def test_overrides_and_presets():
    backend = get_backend("zssr", preset="real", device="cpu", max_iters=7, noise_std=None)
    assert backend.settings.max_iters == 7 and backend.settings.noise_std == 0.0125
    backend = get_backend("zssr", preset="kernelgan", device="cpu", back_projection_iters=5, self_ensemble=True,
                          crop_size=64)
    assert (backend.settings.back_projection_iters, backend.settings.self_ensemble) == (5, True)
    assert backend.settings.crop_size == 64
    with pytest.raises(KeyError):
        get_backend("zssr", device="cpu", bogus=1)


def test_runs_with_adapted_kernels_and_without(rng):
    backend = get_backend("zssr", device="cpu", max_iters=3, crop_size=16)
    lr = textured_image(rng, 20, 24)
    kernels = adapt({2: random_kernels(rng)[2]}, backend.needs, 4)  # x4 derived from x2
    result = backend.super_resolve(lr, 4, kernels, seed=1)
    assert result.image.shape == (80, 96, 3) and result.seconds > 0
    assert result.diagnostics["downscaling"] == "kernels"
    assert [s["scale"] for s in result.diagnostics["stages"]] == [2, 4]
    plain = backend.super_resolve(lr, 2, {}, seed=1)
    assert plain.image.shape == (40, 48, 3) and plain.diagnostics["downscaling"] == "bicubic"
    with pytest.raises(UsageError, match="x4"):
        backend.super_resolve(lr, 4, {2: kernels[2]})
    assert np.all(np.isfinite(result.image))


def test_numerical_fault_retries_then_falls_back_to_bicubic(monkeypatch):
    import zssr

    from blindsr.degradation import imresize
    from blindsr.runtime import FAULT_RESEED

    rgb = np.random.default_rng(0).random((24, 20, 3))
    calls = []

    def failing(lr, scale, kernels=None, settings=None, device="cpu", seed=0, progress=None):
        calls.append(seed)
        raise zssr.NumericalFault("non-finite loss at iteration 50 of the x2 stage")

    monkeypatch.setattr(zssr, "super_resolve", failing)
    backend = get_backend("zssr", device="cpu")
    result = backend.super_resolve(rgb, 2, {}, seed=3)
    assert calls == [3, 3 + FAULT_RESEED]
    assert np.allclose(result.image, np.clip(imresize(rgb, 2.0), 0, 1))
    assert result.diagnostics["fallback"] == "bicubic interpolation" and len(result.warnings) == 3


def test_son_noise_auto_is_the_images_own(monkeypatch):
    """noise_std=auto: the sons get the LR's noise level (the kernel estimate's record, else fitted
    with the kernel) in [0, 1] units; zssr itself refuses an unresolved auto."""
    import zssr

    from blindsr.kernel import SRKernel
    from tests.estimators.test_noise import KERNEL, noisy_lr

    seen = []
    real = zssr.super_resolve

    def spy(lr, scale, kernels=None, settings=None, **kw):
        seen.append(settings.noise_std)
        return real(lr, scale, kernels, settings=settings.updated({"max_iters": 2, "crop_size": 16}), **kw)

    monkeypatch.setattr(zssr, "super_resolve", spy)
    backend = get_backend("zssr", preset="real", device="cpu", noise_std="auto")
    lr, noise = noisy_lr(8, 6.0)
    recorded = backend.super_resolve(lr, 2, {2: SRKernel(KERNEL, 2, provenance={"noise": {"sigma": 4.5}})})
    fitted = backend.super_resolve(lr, 2, {2: SRKernel(KERNEL, 2)})
    clean = backend.super_resolve(lr, 2, {2: SRKernel(KERNEL, 2, provenance={"noise": {"sigma": 0.5}})})
    assert seen[0] == pytest.approx(4.5 / 255.0)
    assert seen[1] == pytest.approx(noise.std(), rel=0.08)
    assert seen[2] == 0.0  # below NOISY_SIGMA the image counts as clean
    assert recorded.diagnostics["son_noise"]["source"] == "kernel estimate"
    assert recorded.diagnostics["son_noise"]["back_projection_iters"] == 0
    assert fitted.diagnostics["son_noise"]["source"] == "fitted with the kernel"
    assert clean.diagnostics["son_noise"]["noise_std"] == 0.0 and not clean.warnings
    plain = get_backend("zssr", device="cpu", noise_std=0.0).super_resolve(
        lr, 2, {2: SRKernel(KERNEL, 2, provenance={"noise": {"sigma": 4.5}})})
    assert seen[3] == 0.0 and "noisy" in plain.warnings[0] and "sr.noise_std=auto" in plain.warnings[0]
    default = get_backend("zssr", device="cpu")  # the default preset: auto unless set
    assert default.settings.noise_std == zssr.AUTO
    assert get_backend("zssr", preset="kernelgan", device="cpu").settings.noise_std == 0.0
    with pytest.raises(ValueError, match="auto"):
        real(lr, 2, None, settings=zssr.preset("real", noise_std="auto"))
    with pytest.raises(ValueError, match="noise_std"):
        zssr.preset("real", noise_std="loud")
