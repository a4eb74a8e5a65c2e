"""SRMD back-end: the handoff kernel turned into SRMD's degradation map, then SRMD itself.

The trap this module handles: the handoff kernel k_d degrades by blur then **direct** subsampling
on block centres (``blindsr.degradation.degrade``), while every official SRMD model was trained on
blur by a 15 x 15 anisotropic Gaussian k_b then **bicubic** downscaling (MATLAB ``imresize``;
covariance eigenvalues in [0.1, 10] px^2, noise sigma in [0, 75]). MATLAB's bicubic filter is a
sharp low-pass whose taps have ~zero second moment, yet it attenuates the upper LR band, so the k_b
that makes ``imresize(HR (x) k_b, 1/s)`` look like ``degrade(HR, k_d, s)`` is narrower than k_d
(x2: a sigma-1.0 Gaussian becomes ~0.8). Feeding k_d as-is tells SRMD the LR is blurrier than it
is, and it over-sharpens.

Two adapters (option ``adapter``):

* ``fit`` (default): least squares in the frequency domain, closed form, within SRMD's training
  family. Both degradations are linear filters followed by sampling on block centres, so for
  stationary images with power spectrum S the expected squared LR difference is
  sum_w S(w) |B(w) G(w) - K_d(w)|^2 (aliases add independently), B the bicubic filter's response, G
  the Gaussian's, K_d the sampling kernel's, all relative to the block centre. With
  G = exp(-w^T C w / 2), taking logs makes the problem linear in the three entries of C:
  minimise sum_w W(w) (log B(w) - w^T C w / 2 - log|K_d(w)|)^2 with W = S |K_d|^2 (the first-order
  equivalent of the linear-domain error), S = 1/|w|^2 (natural images), over the bicubic passband.
  C's eigenvalues are then clamped to SRMD's training range and k_b is the sampled Gaussian.
  A free-form 225-tap fit is *not* used: it is closer in the least-squares sense but has negative
  lobes whose PCA codes lie outside what SRMD was trained on (SR then collapses by >10 dB).
* ``naive``: k_d itself cropped or zero-padded to 15 x 15 (it is centred by the handoff convention).

Both record the relative residual of the criterion above and the energy the 15 x 15 kernel loses.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from blindsr.backends import KernelNeeds, Progress, SRResult, register_backend
from blindsr.degradation import contributions, gaussian_kernel, sampling_kernel
from blindsr.errors import UsageError
from blindsr.kernel import SRKernel

log = logging.getLogger(__name__)

SRMD_SUPPORT = 15
TRAINING_EIGENVALUES = (0.1, 10.0)
TRAINING_NOISE = (0.0, 75.0)
AUTO_NOISE = "auto"  # sr.noise=auto: the estimated sigma
VARIANTS = ("srmd", "srmdnf")
ADAPTERS = ("fit", "naive")
# Frequency samples per axis on [-pi, pi): the responses are evaluated exactly (DTFT), so this is
# only the integration grid of the criterion.
FREQUENCY_SAMPLES = 64
# log B is only meaningful where the bicubic filter passes a usable fraction of the signal.
PASSBAND = 0.05
# Canvas on which a Gaussian's mass outside the 15 x 15 support is measured.
ENERGY_CANVAS = 61
# LR tile side when ``tile=0`` (automatic): the halo costs (1 + 24/512)^2 - 1 = 10 % extra compute,
# and one tile's activations stay near 150 MB in float32.
AUTO_TILE = 512


@dataclass(frozen=True)
class SRMDKernel:
    """The kernel SRMD is told about: what its PCA encoder takes.

    Attributes:
        array: (15, 15) float64, centred (the centre pixel is the block centre), sums to 1.
        diagnostics: adapter, residual (relative, see the module docstring), lost_energy, the
            covariance and its eigenvalues before/after clamping.
    """

    array: np.ndarray
    diagnostics: dict[str, Any] = field(default_factory=dict)


def bicubic_filter(scale: int) -> tuple[float, np.ndarray]:
    """MATLAB's 1-D bicubic x1/s downscaling filter around an LR pixel's block centre.

    Returns (first offset, taps): tap j sits at HR offset ``first + j`` from the centre of HR block
    [s i, s i + s) (half-integers for even s, integers for odd s), read from ``contributions``.
    """
    out_len = 16
    weights, idx = contributions(out_len * scale, out_len, 1.0 / scale)
    row = out_len // 2  # an interior pixel: no border mirroring
    centre = scale * row + (scale - 1) / 2
    offsets = idx[row] - centre
    first = float(offsets.min())
    taps = np.zeros(int(round(offsets.max() - first)) + 1)
    np.add.at(taps, np.round(offsets - first).astype(int), weights[row])
    return first, taps


def _frequencies() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1-D frequencies and the (rows, cols) grids, radians per HR pixel."""
    w = 2 * np.pi * np.fft.fftfreq(FREQUENCY_SAMPLES)
    wy, wx = np.meshgrid(w, w, indexing="ij")
    return w, wy, wx


def _response(taps: np.ndarray, first: float, w: np.ndarray) -> np.ndarray:
    """DTFT of a square 2-D filter whose tap [a, b] sits at offsets (first + a, first + b):
    sum_ab taps[a, b] exp(-i (wy (first + a) + wx (first + b)))."""
    e = np.exp(-1j * np.outer(w, first + np.arange(taps.shape[0])))
    return e @ taps @ e.T


def _direct_response(kernel: SRKernel, w: np.ndarray) -> np.ndarray:
    """Response of ``degrade``'s sampling kernel relative to the block centre: tap a of the
    (s-1)/2-shifted kernel of radius r reads HR offset a - r from s i, i.e. a - r - (s-1)/2 from
    the block centre."""
    k = sampling_kernel(kernel, kernel.scale)
    return _response(k, -(k.shape[0] // 2) - (kernel.scale - 1) / 2, w)


def _bicubic_response(scale: int, w: np.ndarray) -> np.ndarray:
    first, taps = bicubic_filter(scale)
    return _response(np.outer(taps, taps), first, w)


def _spectrum(wy: np.ndarray, wx: np.ndarray) -> np.ndarray:
    """Natural-image power spectrum 1/|w|^2, held at its value one grid step from DC."""
    floor = (2 * np.pi / FREQUENCY_SAMPLES) ** 2
    return 1.0 / np.maximum(wy**2 + wx**2, floor)


def downsampler_residual(k_b: np.ndarray, kernel: SRKernel) -> float:
    """sqrt(sum S |B K_b - K_d|^2 / sum S |K_d|^2): how far bicubic-down(HR (x) k_b) is from
    degrade(HR, k_d), relative, for images with a 1/|w|^2 spectrum (k_b centred, odd size)."""
    w, wy, wx = _frequencies()
    target = _direct_response(kernel, w)
    model = _bicubic_response(kernel.scale, w) * _response(np.asarray(k_b), -(k_b.shape[0] // 2), w)
    s = _spectrum(wy, wx)
    return float(math.sqrt(np.sum(s * np.abs(model - target) ** 2) / np.sum(s * np.abs(target) ** 2)))


def upper_eigenvalue(scale: int) -> float:
    """Largest covariance eigenvalue passed to SRMD. x2/x3: SRMD's training maximum (10 px^2).
    x4: no limit - DIV2KRK-protocol x4 kernels reach 25 px^2, and on BSD100RK x4 (images 1-20,
    true kernels) clamping them to 10 gave 25.80 dB mean Y-PSNR against 26.23 dB unclamped
    (measured when the limit was removed; docs/BENCHMARKS.md 'srmd' 2b shows the current adapter)."""
    return TRAINING_EIGENVALUES[1] if scale < 4 else math.inf


def fit_bicubic_equivalent(kernel: SRKernel) -> SRMDKernel:
    """The Gaussian k_b (15 x 15) with bicubic-down(HR (x) k_b) ~ degrade(HR, k_d): closed-form
    log-spectral least squares (module docstring), eigenvalues clamped to [0.1, upper_eigenvalue]."""
    w, wy, wx = _frequencies()
    bicubic = _bicubic_response(kernel.scale, w).real  # symmetric about the block centre: real
    target = np.abs(_direct_response(kernel, w))
    use = (bicubic > PASSBAND) & (target > 1e-12)
    weight = np.sqrt(_spectrum(wy, wx)[use] * target[use] ** 2)
    # log G = -(wy^2 C_rr + 2 wy wx C_rc + wx^2 C_cc) / 2 must equal log|K_d| - log B.
    design = -np.stack([wy[use] ** 2 / 2, wy[use] * wx[use], wx[use] ** 2 / 2], axis=1)
    rhs = np.log(target[use]) - np.log(bicubic[use])
    c_rr, c_rc, c_cc = np.linalg.lstsq(design * weight[:, None], rhs * weight, rcond=None)[0]
    fitted = np.array([[c_rr, c_rc], [c_rc, c_cc]])
    values, vectors = np.linalg.eigh(fitted)
    used = np.clip(values, TRAINING_EIGENVALUES[0], upper_eigenvalue(kernel.scale))
    covariance = vectors @ np.diag(used) @ vectors.T
    k_b = gaussian_kernel(SRMD_SUPPORT, covariance)
    wide = gaussian_kernel(ENERGY_CANVAS, covariance)
    lost = max(0.0, float(1.0 - _centre_crop(wide, SRMD_SUPPORT).sum()))
    return SRMDKernel(k_b, {
        "adapter": "fit", "residual": downsampler_residual(k_b, kernel), "lost_energy": lost,
        "covariance_fitted": fitted.tolist(), "eigenvalues_fitted": values.tolist(),
        "eigenvalues_used": used.tolist(), "clamped": bool(np.any(used != values))})


def naive_srmd_kernel(kernel: SRKernel) -> SRMDKernel:
    """k_d as-is, cropped or zero-padded to 15 x 15 and renormalised (the lost mass is recorded)."""
    fitted = kernel.fit_support(SRMD_SUPPORT)
    k_b = np.array(fitted.array)
    return SRMDKernel(k_b, {"adapter": "naive", "residual": downsampler_residual(k_b, kernel),
                            "lost_energy": float(fitted.provenance["lost_energy"])})


def srmd_kernel(kernel: SRKernel, adapter: str = "fit") -> SRMDKernel:
    """The 15 x 15 kernel for SRMD's encoder from a handoff kernel, by ``adapter`` (fit | naive)."""
    if adapter == "fit":
        return fit_bicubic_equivalent(kernel)
    if adapter == "naive":
        return naive_srmd_kernel(kernel)
    raise UsageError(f"adapter={adapter}: choose from {', '.join(ADAPTERS)}")


def _centre_crop(array: np.ndarray, size: int) -> np.ndarray:
    cut = (array.shape[0] - size) // 2
    return array[cut:cut + size, cut:cut + size]


@dataclass(frozen=True)
class SRMDOptions:
    """The SRMD back-end's options (``sr.<name>=...``; the Hydra schema is derived from these).

    Attributes:
        variant: "srmd" (noise-aware, 19 input channels) or "srmdnf" (noise-free, 18).
        noise: noise sigma of the LR image in 0-255 units (clamped to SRMD's [0, 75]); 0 for srmdnf;
            "auto" (default): the sigma the kernel estimate recorded (``blindsr.estimators.noise``),
            or, for a kernel without one, the sigma fitted here to the LR image with that kernel;
            on a JPEG-compressed image combined with its quantisation error
            (``blindsr.estimators.compression.sr_sigma``).
        adapter: "fit" (bicubic-equivalent Gaussian) or "naive" (k_d cropped to 15 x 15).
        tile: LR tile side for inference (a 12-pixel halo is added); 0 = automatic (512).
        weights: a ``.pth`` state dict or official ncnn ``.bin`` for the model of the scale used;
            None resolves it (``blindsr.weights``).
        pca: the official ``srmd_pca_matlab.mat``; None resolves it.
    """

    variant: str = "srmd"
    # "auto" by default: on the tuning images (one-camera set 'tune', BSD100RK 1-10, docs/BENCHMARKS.md,
    # 'camera') the estimated sigma (~0.5 on clean 8-bit images) beat 0 on every image (+0.62 dB mean).
    noise: float | str = AUTO_NOISE
    adapter: str = "fit"
    tile: int = 0
    weights: str | None = None
    pca: str | None = None

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise UsageError(f"variant={self.variant}: choose from {', '.join(VARIANTS)}")
        if self.adapter not in ADAPTERS:
            raise UsageError(f"adapter={self.adapter}: choose from {', '.join(ADAPTERS)}")
        if self.noise != AUTO_NOISE and not (isinstance(self.noise, (int, float)) and self.noise >= 0):
            raise UsageError(f"noise={self.noise}: must be a sigma >= 0 (0-255 units) or {AUTO_NOISE}")
        if self.variant == "srmdnf" and self.noise not in (0, AUTO_NOISE):
            raise UsageError("noise: the noise-free variant srmdnf takes no noise level; use variant=srmd")
        if self.tile < 0:
            raise UsageError(f"tile={self.tile}: must be 0 (automatic) or a number of LR pixels")


@register_backend("srmd")
class SRMDBackend:
    """SRMD (official weights) driven by the handoff kernel of the requested scale; options
    ``SRMDOptions``, and ``device`` ("auto": CUDA when usable, or a torch device name)."""

    Options = SRMDOptions
    needs = KernelNeeds(scales=(2, 3, 4), kernels="target")

    def __init__(self, *, device: str = "auto", **options: Any) -> None:
        from blindsr.runtime import select_device

        try:
            settings = SRMDOptions(**options)
        except TypeError as exc:  # an option SRMD does not have
            raise UsageError(f"SRMD: {exc}") from None
        self.options = settings
        self.variant = settings.variant
        self.requested_noise = settings.noise
        self.adapter = settings.adapter
        self.tile = settings.tile or AUTO_TILE
        self.device = select_device(device)
        self.weights = settings.weights
        self.pca = settings.pca
        self._networks: dict[int, Any] = {}
        self._pca_matrix: np.ndarray | None = None

    def model_name(self, scale: int) -> str:
        return f"{self.variant}_x{scale}"

    def network(self, scale: int):
        """The SRMD network for ``scale`` (weights resolved and verified at first use)."""
        if scale not in self._networks:
            import srmd

            from blindsr.weights import load_srmd_state_dict

            state = load_srmd_state_dict(self.model_name(scale), self.weights)
            self._networks[scale] = srmd.build_srmd(scale=scale, noise_free=self.variant == "srmdnf",
                                                    state_dict=state).to(self.device)
        return self._networks[scale]

    def check_ready(self, scale: int) -> None:
        """Load the PCA matrix and the network ``scale`` needs now (kept for the run; their files
        resolved and verified), raising ``WeightsUnavailable``/``WeightsError`` before any work:
        without this a folder paid every image's kernel estimate before each failed at SR."""
        self.pca_matrix()
        self.network(scale)

    def pca_matrix(self) -> np.ndarray:
        if self._pca_matrix is None:
            from blindsr.weights import load_srmd_pca

            self._pca_matrix = load_srmd_pca(self.pca)
        return self._pca_matrix

    def work(self, shape: tuple[int, int], scale: int) -> int:
        import srmd

        return srmd.tile_count(shape[0], shape[1], self.tile)

    def noise_level(self, rgb: np.ndarray, kernel: SRKernel) -> tuple[float, str]:
        """The noise sigma fed to SRMD (clamped to its training range) and where it came from."""
        if self.variant == "srmdnf":
            return 0.0, "noise-free variant"
        if self.requested_noise != AUTO_NOISE:
            sigma, source = float(self.requested_noise), "given"
        else:
            from blindsr.estimators.noise import kernel_noise

            sigma, source = kernel_noise(rgb, kernel)
        if sigma > TRAINING_NOISE[1]:
            log.warning("noise sigma %s (%s) is above SRMD's training range; using %s", sigma, source,
                        TRAINING_NOISE[1])
        return float(min(sigma, TRAINING_NOISE[1])), source

    def super_resolve(self, rgb: np.ndarray, scale: int, kernels: dict[int, SRKernel], *,
                      seed: int = 0, progress: Progress | None = None) -> SRResult:
        """Super-resolve ``rgb`` (h, w, 3) in [0, 1] by ``scale`` with ``kernels[scale]`` (from
        ``blindsr.backends.adapt``). Deterministic: ``seed`` is not used."""
        import srmd

        if scale not in self.needs.scales:
            raise UsageError(f"srmd supports scale {', '.join(map(str, self.needs.scales))}, not {scale}")
        if scale not in kernels:
            raise UsageError(f"srmd needs the x{scale} kernel")
        start = time.perf_counter()
        k_b = srmd_kernel(kernels[scale], self.adapter)
        code = srmd.kernel_code(k_b.array, self.pca_matrix())
        noise, noise_source = self.noise_level(rgb, kernels[scale])
        vector = srmd.degradation_vector(code, noise, noise_free=self.variant == "srmdnf")
        image = srmd.upscale(self.network(scale), rgb, vector, tile=self.tile, device=self.device,
                             progress=progress)
        return SRResult(image.astype(np.float64), time.perf_counter() - start, diagnostics={
            "model": self.model_name(scale), "noise": noise, "noise_source": noise_source,
            "requested_noise": self.requested_noise,
            "kernel_adapter": k_b.diagnostics, "srmd_kernel": k_b.array.tolist(),
            "pca_code": code.tolist(), "tile": self.tile, "device": str(self.device)})
