"""Linear light (``blindsr.light``): the sRGB curves against their published constants, and the
stages working on the light the kernel acted on."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from blindsr.backends import get_backend
from blindsr.batch import NEUTRAL_KEYS, fingerprint
from blindsr.config import BatchConfig, plain
from blindsr.degradation import bicubic_kernel, bicubic_upscale, degrade, gaussian_kernel, quantize
from blindsr.estimators import Estimate, get_estimator
from blindsr.images import LoadedImage
from blindsr.kernel import SRKernel
from blindsr.light import check_light, decode, encode, linear_to_srgb, srgb_to_linear
from blindsr.metrics import lr_psnr
from blindsr.stages import run_pipeline
from blindsr.verbs.superresolve import light_warning


def srgb_decoded(v: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 written out again, element by element in Python floats."""
    return np.array([x / 12.92 if x <= 0.04045 else ((x + 0.055) / 1.055) ** 2.4 for x in v.ravel()]).reshape(v.shape)


def srgb_encoded(v: np.ndarray) -> np.ndarray:
    v = np.clip(v, 0, 1)
    return np.array([x * 12.92 if x <= 0.0031308 else 1.055 * x ** (1 / 2.4) - 0.055 for x in v.ravel()]).reshape(v.shape)


def test_srgb_curve_matches_published_values():
    # 8-bit code 128 is 0.2158605 of full linear intensity (the sRGB standard's table); 0.5 is 0.2140411.
    assert srgb_to_linear(np.array(128 / 255))[()] == pytest.approx(0.2158605001, abs=1e-10)
    assert srgb_to_linear(np.array(0.5))[()] == pytest.approx(0.2140411405, abs=1e-10)
    assert srgb_to_linear(np.array([0.0, 1.0])).tolist() == [0.0, 1.0]
    # The two pieces meet at the knee (to the standard's rounding of its constants).
    knee = 0.04045
    assert knee / 12.92 == pytest.approx(((knee + 0.055) / 1.055) ** 2.4, abs=1e-8)
    codes = np.arange(256) / 255
    assert np.allclose(srgb_to_linear(codes), srgb_decoded(codes), rtol=0, atol=1e-15)
    assert np.all(np.diff(srgb_to_linear(codes)) > 0)


def test_encoding_inverts_decoding_and_clips_what_has_no_code():
    v = np.linspace(0, 1, 1001)
    assert np.allclose(linear_to_srgb(srgb_to_linear(v)), v, rtol=0, atol=1e-12)
    assert linear_to_srgb(np.array([-0.2, 1.3])).tolist() == pytest.approx([0.0, 1.0], abs=1e-15)


def test_encoded_light_leaves_the_values_alone_and_bad_names_are_refused():
    rgb = np.random.default_rng(0).random((4, 5, 3))
    assert decode(rgb, "encoded") is rgb and encode(rgb, "encoded") is rgb
    assert check_light("linear") is None and "choose from" in check_light("log")
    with pytest.raises(ValueError):
        decode(rgb, "log")


def test_lr_psnr_reproduces_an_image_blurred_in_linear_light(rng):
    hr = quantize(rng.random((48, 40, 3)))
    k = SRKernel(gaussian_kernel(13, np.array([[2.0, 0.3], [0.3, 1.2]])), 2)
    lr = quantize(srgb_encoded(degrade(srgb_decoded(hr), k.array, 2)))
    assert lr_psnr(hr, k, lr, 2, light="linear") == np.inf  # the same numbers, the same rounding
    assert lr_psnr(hr, k, lr, 2) < 40  # blurring the encoded values is another image


class RecordingEstimator:
    """Returns the bicubic kernel and keeps the pixels it was given."""

    name = "recording"
    learned = False

    def __init__(self):
        self.seen = None

    def iterations(self, scale: int) -> int:
        return 1

    def check(self, shape) -> None:
        pass

    def estimate(self, rgb, scale, *, seed=0, progress=None) -> Estimate:
        self.seen = rgb
        return Estimate({2: bicubic_kernel(2)}, 0.0)


def test_pipeline_in_linear_light_estimates_and_super_resolves_the_decoded_image(rng):
    rgb = quantize(rng.random((20, 24, 3)))
    image = LoadedImage(rgb=rgb, alpha=None, bit_depth=8, grayscale=False, path=Path("x.png"), sha256="0")
    estimator = RecordingEstimator()
    result = run_pipeline(image, estimator, get_backend("bicubic"), 2, light="linear")
    assert np.allclose(estimator.seen, srgb_decoded(rgb), rtol=0, atol=1e-15)
    expected = srgb_encoded(bicubic_upscale(srgb_decoded(rgb), 2))
    assert np.allclose(result.rgb, expected, rtol=0, atol=1e-12)
    assert result.record["light"] == "linear" and result.record["stages"]["sr"]["light"] == "linear"
    assert result.kernels[2].provenance["light"] == "linear"
    plain = run_pipeline(image, get_estimator("bicubic"), get_backend("bicubic"), 2)
    assert np.array_equal(plain.rgb, bicubic_upscale(rgb, 2)) and plain.record["light"] == "encoded"


def test_batch_fingerprint_keeps_folders_made_before_the_option():
    """``light`` at its default leaves a batch's fingerprint as it was before the option existed
    (written folders resume); another light is another result."""
    config = BatchConfig(input="in", output="out", estimator={"name": "bicubic"}, sr={"name": "bicubic"},
                         executor={"name": "serial"})
    linear = BatchConfig(input="in", output="out", estimator={"name": "bicubic"}, sr={"name": "bicubic"},
                         executor={"name": "serial"}, light="linear")
    assert fingerprint(config) != fingerprint(linear)
    before = {k: v for k, v in plain(config).items() if k not in NEUTRAL_KEYS and k != "light"}
    assert fingerprint(config) == hashlib.sha256(json.dumps(before, sort_keys=True, default=str).encode()).hexdigest()[:16]


def test_sr_warns_when_the_kernel_was_estimated_in_another_light():
    k = bicubic_kernel(2)
    linear = {2: k.with_provenance(light="linear")}
    assert "light=linear" in light_warning(linear, "encoded")
    assert light_warning(linear, "linear") is None
    assert light_warning({2: k}, "linear") is None  # a kernel without a record (a file from elsewhere)
