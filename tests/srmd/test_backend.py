"""The "srmd" back-end: registry, options, and an end-to-end run with random weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import srmd
from blindsr.backends import adapt, backend_names, get_backend
from blindsr.degradation import gaussian_kernel
from blindsr.errors import UsageError
from blindsr.kernel import SRKernel
from tests.conftest import PCA_FILE, need, textured_image


@pytest.fixture
def random_weights(tmp_path):
    def write(scale: int, noise_free: bool = False):
        torch.manual_seed(scale)
        path = tmp_path / f"random_x{scale}_{noise_free}.pth"
        torch.save(srmd.SRMD(scale=scale, noise_free=noise_free).state_dict(), path)
        return str(path)
    return write


def test_registered_with_needs():
    assert "srmd" in backend_names()
    backend = get_backend("srmd", device="cpu")
    assert backend.name == "srmd"
    assert backend.needs.scales == (2, 3, 4) and backend.needs.kernels == "target"


@pytest.mark.parametrize("options,needle", [
    ({"variant": "srmdx"}, "variant"), ({"adapter": "crop"}, "adapter"), ({"noise": -1}, "noise"),
    ({"variant": "srmdnf", "noise": 5}, "noise-free"), ({"tile": -3}, "tile"),
])
def test_bad_options(options, needle):
    with pytest.raises(UsageError, match=needle):
        get_backend("srmd", device="cpu", **options)


def test_noise_clamped_to_training_range():
    k = SRKernel(gaussian_kernel(11, np.eye(2)), 2)
    assert get_backend("srmd", device="cpu", noise=120).noise_level(np.zeros((8, 8, 3)), k) == (75.0, "given")


def test_auto_noise_reads_the_estimate_or_fits_one():
    from tests.estimators.test_noise import KERNEL, noisy_lr

    backend = get_backend("srmd", device="cpu", noise="auto")
    lr, noise = noisy_lr(7, 6.0)
    recorded = SRKernel(KERNEL, 2, provenance={"noise": {"sigma": 4.25}})
    assert backend.noise_level(lr, recorded) == (4.25, "kernel estimate")
    sigma, source = backend.noise_level(lr, SRKernel(KERNEL, 2))
    assert source == "fitted with the kernel" and sigma == pytest.approx(255.0 * noise.std(), rel=0.08)
    with pytest.raises(UsageError, match="auto"):
        get_backend("srmd", device="cpu", noise="loud")


@pytest.mark.parametrize("scale", [2, 4])
def test_end_to_end_with_random_weights(random_weights, scale):
    pca = str(need(PCA_FILE))
    rng = np.random.default_rng(0)
    lr = textured_image(rng, 30, 26)
    k2 = SRKernel(gaussian_kernel(11, np.diag([2.0, 1.0])), 2)
    backend = get_backend("srmd", device="cpu", weights=random_weights(scale), pca=pca, tile=16)
    kernels = adapt({2: k2}, backend.needs, scale)  # x4 derived from x2
    calls = []
    result = backend.super_resolve(lr, scale, kernels, progress=calls.append)
    assert result.image.shape == (30 * scale, 26 * scale, 3)
    assert result.image.dtype == np.float64
    assert len(calls) == backend.work((30, 26), scale) == 4
    info = result.diagnostics
    assert info["model"] == f"srmd_x{scale}" and len(info["pca_code"]) == 15
    assert info["kernel_adapter"]["adapter"] == "fit"
    assert np.array(info["srmd_kernel"]).shape == (15, 15)


def test_weights_of_another_model_are_refused(random_weights):
    from blindsr.weights import WeightsError

    backend = get_backend("srmd", device="cpu", weights=random_weights(2), pca=str(need(PCA_FILE)))
    k = SRKernel(gaussian_kernel(11, np.eye(2)), 4)
    with pytest.raises(WeightsError, match="srmd_x4"):
        backend.super_resolve(np.zeros((8, 8, 3)), 4, {4: k})
