"""JPEG compression: libjpeg's tables, the table read back from a decoded image's pixels, and the
noise sigma SRMD is given on a compressed photo."""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.fft
from PIL import Image

from blindsr.degradation import degrade, gaussian_kernel
from blindsr.estimators.compression import (
    BOOSTED_NOISE_LIMIT, COMPRESSED_NOISE_BOOST, COMPRESSION_EXPONENT, COMPRESSION_WEIGHT, compression_record,
    dct_matrix, estimate_luma_table, ijg_table, sr_sigma, table_quality, table_sigma)
from blindsr.images import LoadedImage, read_image
from tests.estimators.test_likelihood import power_law_field


def pillow_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64) / 255.0


def photo(seed: int, size: int = 256) -> np.ndarray:
    """A 1/f^2 scene blurred and subsampled like an LR photo, with noise of sigma 3 (8-bit)."""
    rng = np.random.default_rng(seed)
    lr = degrade(power_law_field(rng, 2 * size), gaussian_kernel(13, np.diag([1.5, 1.0])), 2)
    return np.clip(lr + rng.normal(0.0, 3.0 / 255.0, lr.shape), 0, 1)


@pytest.mark.parametrize("quality", [5, 10, 25, 50, 62, 75, 90, 95, 100])
def test_ijg_table_is_what_libjpeg_writes(quality):
    """Independent reference: the table libjpeg (through Pillow) writes into the file."""
    written = Image.open(io.BytesIO(pillow_jpeg(np.zeros((8, 8, 3)), quality))).quantization[0]
    assert ijg_table(quality).ravel().tolist() == list(written)


def test_quality_names_every_distinct_table():
    for quality in range(1, 101):
        assert np.array_equal(ijg_table(table_quality(ijg_table(quality))), ijg_table(quality))


def test_table_sigma_is_the_rms_uniform_error():
    assert table_sigma(np.full((8, 8), 12.0)) == pytest.approx(math.sqrt(12.0))  # 12^2 / 12
    steps = np.arange(1.0, 65.0).reshape(8, 8)
    assert table_sigma(steps) == pytest.approx(math.sqrt(sum(q * q for q in range(1, 65)) / 64 / 12))


def test_dct_matrix_is_the_orthonormal_dct():
    d = dct_matrix()
    assert np.allclose(d, scipy.fft.dct(np.eye(8), norm="ortho", axis=0))
    assert np.allclose(d @ d.T, np.eye(8))


@pytest.mark.parametrize("quality", [30, 50, 70, 85, 95])
def test_the_table_is_read_back_from_the_pixels(quality):
    record = estimate_luma_table(decoded(pillow_jpeg(photo(quality), quality)))
    assert record is not None and abs(record["quality"] - quality) <= 1
    assert record["matching_steps"] >= record["measured_steps"] - 3


@pytest.mark.parametrize("case", ["never compressed", "flat", "moved off the grid", "tiny"])
def test_no_table_where_the_pixels_show_none(case):
    if case == "never compressed":
        rgb = np.round(photo(1) * 255) / 255
    elif case == "flat":
        rgb = decoded(pillow_jpeg(np.full((64, 64, 3), 0.4), 50))
    elif case == "moved off the grid":
        rgb = decoded(pillow_jpeg(photo(2), 60))[3:, 5:]
    else:
        rgb = np.full((7, 40, 3), 0.5)
    assert estimate_luma_table(rgb) is None


def test_sr_sigma_adds_the_compression_error_to_the_white_noise():
    assert sr_sigma(1.7, None) == 1.7
    expected = math.hypot(COMPRESSED_NOISE_BOOST * 3.0, COMPRESSION_WEIGHT * 4.0**COMPRESSION_EXPONENT)
    assert sr_sigma(3.0, 4.0) == pytest.approx(expected)
    assert sr_sigma(0.0, 16.0) == pytest.approx(COMPRESSION_WEIGHT * 16.0**COMPRESSION_EXPONENT)
    heavy = BOOSTED_NOISE_LIMIT + 20.0  # beyond the measured range only the first part is boosted
    assert sr_sigma(heavy, 4.0) == pytest.approx(math.hypot(
        heavy + (COMPRESSED_NOISE_BOOST - 1.0) * BOOSTED_NOISE_LIMIT, COMPRESSION_WEIGHT * 2.0))


def test_a_jpeg_file_carries_its_table_and_a_png_of_it_shows_it(tmp_path):
    data = pillow_jpeg(photo(3), 70)
    (tmp_path / "p.jpg").write_bytes(data)
    image = read_image(tmp_path / "p.jpg")
    assert image.jpeg_luma_table.ravel().tolist() == list(Image.open(io.BytesIO(data)).quantization[0])
    from_file = compression_record(image.jpeg_luma_table, image.rgb)
    assert from_file["quality"] == 70 and from_file["source"] == "the file's quantisation table"
    assert from_file["sigma"] == pytest.approx(table_sigma(ijg_table(70)), abs=1e-3)
    Image.fromarray(np.round(image.rgb * 255).astype(np.uint8)).save(tmp_path / "p.png")
    png = read_image(tmp_path / "p.png")
    assert png.jpeg_luma_table is None
    from_pixels = compression_record(None, png.rgb)
    assert abs(from_pixels["quality"] - 70) <= 1 and "pixels" in from_pixels["source"]
    assert compression_record(None, None) is None


def test_srmd_auto_noise_on_a_jpeg_and_the_pipeline_record(tmp_path):
    from blindsr.backends import get_backend
    from blindsr.kernel import SRKernel
    from blindsr.stages import run_pipeline

    kernel = SRKernel(gaussian_kernel(13, np.diag([1.5, 1.0])), 2, provenance={"noise": {"sigma": 1.2}})
    compression = {"quality": 60, "sigma": 14.0, "source": "the file's quantisation table"}
    backend = get_backend("srmd", device="cpu", noise="auto")
    sigma, source = backend.noise_level(np.zeros((16, 16, 3)), kernel.with_provenance(compression=compression))
    assert sigma == pytest.approx(sr_sigma(1.2, 14.0), abs=1e-3) and "JPEG quality 60" in source
    zssr_noise = get_backend("zssr", device="cpu").noise_level(np.zeros((16, 16, 3)),
                                                              {2: kernel.with_provenance(compression=compression)})
    assert zssr_noise["sigma"] == pytest.approx(sigma) and "JPEG quality 60" in zssr_noise["source"]
    assert get_backend("srmd", device="cpu", noise=5).noise_level(
        np.zeros((16, 16, 3)), kernel.with_provenance(compression=compression)) == (5.0, "given")
    (tmp_path / "p.jpg").write_bytes(pillow_jpeg(photo(4, 64), 50))
    result = run_pipeline(read_image(tmp_path / "p.jpg"), None, get_backend("bicubic"), 2, kernels={2: kernel})
    assert result.record["compression"]["quality"] == 50
    clean = LoadedImage(rgb=np.round(photo(5, 64) * 255) / 255, alpha=None, bit_depth=8, grayscale=False,
                        path=Path("x.png"), sha256="0")
    assert run_pipeline(clean, None, get_backend("bicubic"), 2, kernels={2: kernel}).record["compression"] is None


def test_the_sigma_sr_was_told_for_the_summary():
    from blindsr.batch import sr_noise

    assert sr_noise({"noise": 7.5, "model": "srmd_x2"}) == 7.5
    assert sr_noise({"son_noise": {"sigma": 6.0, "noise_std": 6.0 / 255.0}}) == pytest.approx(6.0)
    assert sr_noise({"son_noise": {"sigma": 1.1, "noise_std": 0.0}}) == 0.0  # clean: sons without noise
    assert sr_noise({}) is None
