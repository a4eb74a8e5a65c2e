"""Shared fixtures. Development data lives in ../shared beside the checkout (or $BLINDSR_SHARED);
tests that need it skip cleanly when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BLINDSR_SHARED", REPO.parent / "shared"))
BSD100RK = SHARED / "data" / "BSD100RK"
REAL = SHARED / "data" / "real"
PCA_FILE = SHARED / "srmd" / "srmd_pca_matlab.mat"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"development data not available ({path.name})")
    return path


@pytest.fixture
def bsd100rk() -> Path:
    return need(BSD100RK)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def chelsea_hr() -> np.ndarray:
    """The demo's CC0 photo (from the scikit-image wheel), cropped to 296x448."""
    pytest.importorskip("skimage")
    from blindsr.demo import sample_image
    from blindsr.images import read_image

    return read_image(sample_image()).rgb[:296, :448]


def textured_image(rng: np.random.Generator, rows: int = 96, cols: int = 80) -> np.ndarray:
    """A smooth-but-textured RGB image in [0, 1]: random blobs plus oriented edges."""
    from scipy import ndimage

    base = ndimage.gaussian_filter(rng.random((rows, cols, 3)), sigma=(2, 2, 0))
    yy, xx = np.mgrid[0:rows, 0:cols]
    edges = ((np.sin(xx / 3.0 + yy / 7.0) > 0) * 0.4 + (np.cos(yy / 5.0 - xx / 11.0) > 0.3) * 0.3)
    img = 0.5 * (base - base.min()) / (np.ptp(base) + 1e-12) + 0.5 * edges[:, :, None] * np.array([1.0, 0.8, 0.6])
    return np.clip(img, 0, 1)


def batch_config(*overrides: str):
    """A typed ``batch`` config as the command line composes it (what image tasks carry)."""
    from omegaconf import OmegaConf

    from blindsr.cli import compose

    return OmegaConf.to_object(compose("batch", ["input=unused", "output=unused", "device=cpu", *overrides]))
