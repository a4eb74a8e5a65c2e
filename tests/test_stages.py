"""The handoff into SR: estimated kernels narrowed by ``handoff_width``, fixed ones left alone."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from blindsr.backends import get_backend
from blindsr.degradation import bicubic_kernel, gaussian_kernel
from blindsr.estimators import get_estimator
from blindsr.images import LoadedImage
from blindsr.kernel import SRKernel
from blindsr.stages import handoff_kernels, run_pipeline


def sigmas(kernel: SRKernel) -> np.ndarray:
    d = kernel.describe()
    return np.array([d["sigma_major"], d["sigma_minor"]])


def test_handoff_narrows_estimates_but_not_a_fallback():
    k2 = SRKernel(gaussian_kernel(17, np.array([[2.5, 0.6], [0.6, 1.4]])), 2)
    narrowed = handoff_kernels({2: k2, 4: k2.derive_x4()}, 0.8)
    assert np.allclose(sigmas(narrowed[2]), 0.8 * sigmas(k2), rtol=0.01)
    assert np.allclose(sigmas(narrowed[4]), 0.8 * sigmas(k2.derive_x4()), rtol=0.01)
    fallback = bicubic_kernel(2).with_provenance(fallback="kernelgan numerical fault")
    assert handoff_kernels({2: fallback}, 0.8)[2] is fallback
    unrefined = k2.with_provenance(fallback="kernelgan unrefined: ...", fallback_kernel="unrefined")
    assert np.allclose(sigmas(handoff_kernels({2: unrefined}, 0.8)[2]), 0.8 * sigmas(k2), rtol=0.01)
    assert handoff_kernels({2: k2}, 1.0)[2] is k2


def test_fixed_kernel_estimator_is_not_narrowed(rng):
    """The bicubic-kernel baseline is not an estimate: run_pipeline records width 1 for it."""
    rgb = rng.random((24, 24, 3))
    image = LoadedImage(rgb=rgb, alpha=None, bit_depth=8, grayscale=False, path=Path("x.png"), sha256="0")
    result = run_pipeline(image, get_estimator("bicubic"), get_backend("bicubic"), 2, handoff_width=0.8)
    assert result.record["stages"]["sr"]["handoff_width"] == 1.0
    assert result.kernels[2].provenance.get("narrowed_to_width") is None


def test_progress_updates_raise_a_swallowed_stop_request():
    """A signal whose exception Python swallowed (raised inside a __del__) still stops the run at
    the next progress update."""
    from blindsr.errors import STOP_REQUESTED
    from blindsr.progress import progress_bar

    with progress_bar(10, "t") as bar:
        bar.update(1)
        STOP_REQUESTED.set()
        try:
            with pytest.raises(KeyboardInterrupt):
                bar.update(1)
        finally:
            STOP_REQUESTED.clear()


def test_the_record_holds_what_each_preset_ran_with(rng, tmp_path):
    """The record's config spells a preset out into its values (a later release may change what
    the name stands for); options a stage sets stay as set, and stages without presets as they are."""
    import json

    import zssr
    from blindsr.estimators.kernelgan.settings import DEFAULT_PRESET, PRESETS
    from blindsr.stages import write_outputs

    rgb = rng.random((24, 24, 3))
    image = LoadedImage(rgb=rgb, alpha=None, bit_depth=8, grayscale=False, path=Path("x.png"), sha256="0")
    result = run_pipeline(image, get_estimator("bicubic"), get_backend("bicubic"), 2)
    config = {"scale": 2, "estimator": {"name": "kernelgan", "preset": DEFAULT_PRESET},
              "sr": {"name": "zssr", "preset": "fast", "max_iters": 5}}
    paths = write_outputs(tmp_path, "x", 2, image, result, config)
    written = json.loads(paths["record"].read_text())["config"]
    assert written["scale"] == 2
    assert written["estimator"]["g_crop"] == PRESETS[DEFAULT_PRESET].g_crop
    assert written["estimator"]["iterations"] == PRESETS[DEFAULT_PRESET].iterations
    assert written["estimator"]["results_version"] == 2 and "results_version" not in written["sr"]
    assert written["sr"]["max_iters"] == 5 and written["sr"]["body"] == zssr.PRESETS["fast"].body
    (tmp_path / "plain").mkdir()
    plain = write_outputs(tmp_path / "plain", "x", 2, image, result, {"sr": {"name": "bicubic"}})
    assert json.loads(plain["record"].read_text())["config"] == {"sr": {"name": "bicubic"}}
