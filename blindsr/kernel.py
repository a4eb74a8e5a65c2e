"""The kernel handoff: the one value every stage of blindsr passes to the next.

Convention (fixed for the whole project; every other module refers here):

* ``SRKernel.array`` is the **centred** blur kernel: a physical point-spread function on an odd,
  square canvas whose centre of mass sits on the centre pixel. It does not depend on the sampling
  grid.
* Degrading an HR image by ``scale`` s with it means: shift the kernel by (s - 1)/2 px down and
  right (a sub-pixel cubic-spline shift for even s), **correlate** the HR image with the shifted
  kernel (half-sample symmetric borders) and keep every s-th pixel starting at 0. Equivalently,
  LR pixel (i, j) is the kernel-weighted average centred on the middle of HR block
  [s*i : s*i + s, s*j : s*j + s]. ``blindsr.degradation.degrade`` is the reference implementation.
* Bicubic interpolation of an LR image made this way is aligned with the HR image: there is no
  half-pixel shift anywhere in the project.
* KernelGAN's native kernel has its centre of mass at +0.5 px (its generator samples the top-left
  of each 2x2 block); producers re-centre before building an ``SRKernel``.
* x2 -> x4: k4 = k2 (*) (k2 dilated by 2), renormalised. Two x2 steps on block centres compose to
  exactly one x4 step on block centres, because the block centres of the second step sit on the
  block centres of the first.

Files (``save_kernel``/``load_kernel``): ``<stem>_kernel_x{s}.npy`` (the array), ``.mat`` (variable
``Kernel``, readable by KernelGAN/ZSSR code, which re-centres by centre of mass itself), ``.png``
(a visualisation) and ``.json`` (provenance).
"""
from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from scipy import ndimage

from blindsr.errors import InputError
from blindsr.outputs import atomic_write_bytes, jsonable

SUM_TOLERANCE = 1e-6
# A centred kernel may carry a little centre-of-mass noise (DIV2KRK's ground-truth kernels do, from
# their per-pixel multiplicative noise); half a pixel off means another convention.
CENTRE_TOLERANCE = 0.25
SUPPORTED_SCALES = (2, 3, 4)
CONVENTION = ("centred PSF; degrade = shift by (s-1)/2 px, correlate (symmetric borders), "
              "keep [0::s, 0::s]")


def centre_of_mass(array: np.ndarray) -> tuple[float, float]:
    """Centre of mass (row, col) in pixel indices. Raises ``ValueError`` for zero total mass."""
    total = float(array.sum())
    if total == 0.0:
        raise ValueError("kernel has zero total mass")
    rows = np.arange(array.shape[0], dtype=np.float64)
    cols = np.arange(array.shape[1], dtype=np.float64)
    return (float(array.sum(axis=1) @ rows) / total, float(array.sum(axis=0) @ cols) / total)


def recentre(array: np.ndarray, order: int = 3, size: int | None = None) -> np.ndarray:
    """Shift ``array`` so that its centre of mass lands on the centre of an odd square canvas.

    The canvas is padded first so nothing falls off (``size`` crops/pads the result afterwards).
    ``order`` is the spline order of the sub-pixel shift (3: cubic, which can ring slightly
    negative; 1: linear, non-negative but slightly blurring). The result sums to the input's sum.
    """
    k = np.asarray(array, dtype=np.float64)
    rows, cols = k.shape
    side = max(rows, cols) | 1
    k = np.pad(k, ((0, side - rows), (0, side - cols)))
    com = np.array(centre_of_mass(k))
    shift = side // 2 - com
    pad = int(math.ceil(np.abs(shift).max())) + 1
    k = ndimage.shift(np.pad(k, pad), shift, order=order, mode="constant")
    k *= array.sum() / k.sum()
    return k if size is None else crop_or_pad(k, size)


def warp(array: np.ndarray, log_scales: tuple[float, float] = (0.0, 0.0), angle: float = 0.0,
         size: int | None = None) -> np.ndarray:
    """The kernel under an affine map of its coordinates about its centre of mass c:
    k'(x) = k(c + A^-1 x), A = R(angle) diag(e^a, e^b) R(angle)^T with (a, b) = ``log_scales``,
    on an odd ``size`` canvas (default: the kernel's) whose centre pixel is x = 0, so the result's
    centre of mass lands on it. Sampled from the cubic-spline interpolant of the taps: cardinal
    cubic splines reproduce polynomials up to degree 3, so the second moments map exactly as
    C' = A C A^T up to sampling error. Not renormalised; the spline's ringing can dip below zero
    (callers clip it and record or renormalise). The one kernel warp of the package: the handoff's
    narrowing (``SRKernel.narrowed``) and the likelihood refinement both use it."""
    k = np.asarray(array, dtype=np.float64)
    size = k.shape[0] if size is None else size
    # A kernel is zero outside its canvas: two rings of zeros make that explicit to the spline, so
    # a sample a rounding error outside the taps interpolates instead of reading as outside (0).
    k = np.pad(k, max(0, (size - k.shape[0]) // 2) + 2)
    centre = np.array(centre_of_mass(k))
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    inverse = rotation @ np.diag([math.exp(-log_scales[0]), math.exp(-log_scales[1])]) @ rotation.T
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2
    grid = np.stack(np.meshgrid(offsets, offsets, indexing="ij"))
    source = np.einsum("ij,jab->iab", inverse, grid) + centre[:, None, None]
    return ndimage.map_coordinates(k, source, order=3, mode="constant")


def crop_or_pad(array: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop or zero-pad an odd square array to an odd ``size`` (mass is not renormalised)."""
    if size % 2 == 0:
        raise ValueError(f"kernel support must be odd, got {size}")
    n = array.shape[0]
    if size >= n:
        pad = (size - n) // 2
        return np.pad(array, pad)
    cut = (n - size) // 2
    return array[cut:cut + size, cut:cut + size].copy()


def support_size(array: np.ndarray, keep: float = 1.0 - 1e-6) -> int:
    """Smallest odd centred square that holds ``keep`` of the kernel's absolute mass."""
    n = array.shape[0]
    total = np.abs(array).sum()
    for size in range(1, n + 1, 2):
        if np.abs(crop_or_pad(array, size)).sum() >= keep * total:
            return size
    return n


def dilate(array: np.ndarray, factor: int) -> np.ndarray:
    """Insert ``factor - 1`` zeros between taps (the kernel of a stride-``factor`` grid)."""
    n = array.shape[0]
    out = np.zeros(((n - 1) * factor + 1,) * 2)
    out[::factor, ::factor] = array
    return out


@dataclass(frozen=True)
class SRKernel:
    """A validated SR kernel in the project convention (see the module docstring).

    Attributes:
        array: float64, odd square, finite, sums to 1 (within 1e-6), centre of mass within
            ``CENTRE_TOLERANCE`` px of the centre pixel; read-only.
        scale: the integer SR factor the kernel degrades by.
        allow_negative: the producer states that slightly negative taps are intended.
        provenance: who made it and how (estimator, version, seed, image hash, timings, ...).
    """

    array: np.ndarray
    scale: int
    allow_negative: bool = False
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        k = np.array(self.array, dtype=np.float64)
        if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] % 2 == 0:
            raise ValueError(f"kernel must be an odd square array, got shape {k.shape}")
        if not np.all(np.isfinite(k)):
            raise ValueError("kernel has non-finite values")
        if abs(k.sum() - 1.0) > SUM_TOLERANCE:
            raise ValueError(f"kernel must sum to 1 (+-{SUM_TOLERANCE}), sums to {k.sum():.8g}")
        if not self.allow_negative and k.min() < -SUM_TOLERANCE:
            raise ValueError(f"kernel has negative taps (min {k.min():.3g}); "
                             "set allow_negative if the producer intends them")
        if self.scale not in SUPPORTED_SCALES:
            raise ValueError(f"scale must be one of {SUPPORTED_SCALES}, got {self.scale}")
        offset = np.array(centre_of_mass(k)) - k.shape[0] // 2
        if np.abs(offset).max() > CENTRE_TOLERANCE:
            raise ValueError(f"kernel is not centred: centre of mass off by {offset.round(3)} px")
        k.flags.writeable = False
        object.__setattr__(self, "array", k)
        object.__setattr__(self, "provenance", dict(self.provenance))

    @property
    def size(self) -> int:
        return self.array.shape[0]

    @property
    def is_estimate(self) -> bool:
        """Whether the kernel is an estimate, whose width is uncertain: every kernel but an
        estimator's fallback to the bicubic kernel (a fallback to KernelGAN's unrefined estimate is
        one). Read from the provenance; a fallback recorded before ``fallback_kernel`` existed was
        always to the bicubic kernel."""
        if not self.provenance.get("fallback"):
            return True
        return self.provenance.get("fallback_kernel", "bicubic") != "bicubic"

    @classmethod
    def from_array(cls, array: np.ndarray, scale: int, *, order: int = 3,
                   provenance: Mapping[str, Any] | None = None) -> "SRKernel":
        """Build a kernel from any non-negative-ish array: re-centre it, clip the negative ringing
        of the sub-pixel shift, renormalise, and record what was changed in the provenance."""
        a = np.asarray(array, dtype=np.float64)
        if a.ndim != 2 or not np.all(np.isfinite(a)):
            raise ValueError("kernel must be a finite 2-D array")
        if a.sum() <= 0:
            raise ValueError(f"kernel must have a positive sum, got {a.sum():.4g}")
        a = a / a.sum()
        com = np.array(centre_of_mass(a)) - (np.array(a.shape) - 1) / 2
        centred = recentre(a, order=order)
        negative = float(-centred[centred < 0].sum())
        centred = np.clip(centred, 0, None)
        centred = recentre(centred / centred.sum(), order=1)
        centred = crop_or_pad(centred, support_size(centred, keep=1 - 1e-9))
        info = dict(provenance or {})
        info.update(centre_offset_px=[round(float(c), 4) for c in com],
                    negative_mass_clipped=negative)
        return cls(centred / centred.sum(), scale, provenance=info)

    def with_provenance(self, **items: Any) -> "SRKernel":
        return replace(self, provenance={**self.provenance, **items})

    def derive_x4(self) -> "SRKernel":
        """The x4 kernel of two x2 steps: k4 = k2 (*) (k2 dilated by 2), renormalised and cropped
        to the support holding all but 1e-6 of its mass (lost energy recorded)."""
        if self.scale != 2:
            raise ValueError("x4 derivation starts from an x2 kernel")
        from scipy.signal import convolve2d  # imported here: scipy.signal costs ~0.4 s at start-up

        k4 = convolve2d(self.array, dilate(self.array, 2))
        k4 /= k4.sum()
        size = support_size(k4)
        cropped = crop_or_pad(k4, size)
        lost = float(1.0 - cropped.sum())
        return SRKernel(cropped / cropped.sum(), 4, allow_negative=self.allow_negative,
                        provenance={**self.provenance, "derived_from": "x2 analytic (k2 * k2 dilated)",
                                    "lost_energy": lost})

    def fit_support(self, size: int) -> "SRKernel":
        """Crop or zero-pad to an odd ``size``; the mass cropped away is recorded as
        ``lost_energy`` in the provenance before renormalising."""
        out = crop_or_pad(self.array, size)
        lost = float(1.0 - out.sum())
        if out.sum() <= 0:
            raise ValueError(f"no kernel mass inside a {size}x{size} support")
        return replace(self, array=out / out.sum(),
                       provenance={**self.provenance, "support": size, "lost_energy": lost})

    def narrowed(self, width: float) -> "SRKernel":
        """The kernel shrunk about its centre of mass to ``width`` times its extent:
        ``warp`` with both log-scales log(width), so the covariance scales by ``width**2`` up to
        sampling error (about 1% for the widths of real kernels; sharper ones are limited by the
        pixel grid). Ringing of the spline is clipped and recorded like any re-centring.
        ``width == 1`` returns the kernel unchanged."""
        if not 0.0 < width <= 1.0:
            raise ValueError(f"width must be in (0, 1], got {width}")
        if width == 1.0:
            return self
        sampled = warp(self.array, (math.log(width), math.log(width)))
        out = SRKernel.from_array(sampled, self.scale, order=1)
        return replace(out, allow_negative=self.allow_negative,
                       provenance={**self.provenance, "narrowed_to_width": width,
                                   "narrowing_clipped_mass": out.provenance["negative_mass_clipped"]})

    def covariance(self) -> np.ndarray:
        """The kernel's second moments about the canvas centre (its centre of mass), (2, 2)."""
        k = self.array
        c = k.shape[0] // 2
        rows, cols = np.mgrid[-c:c + 1, -c:c + 1]
        return np.array([[np.sum(k * rows * rows), np.sum(k * rows * cols)],
                         [np.sum(k * rows * cols), np.sum(k * cols * cols)]])

    def describe(self) -> dict[str, Any]:
        """Scalar diagnostics: size, centre-of-mass offset, principal standard deviations and
        orientation of the kernel's second moments."""
        k = self.array
        evals, evecs = np.linalg.eigh(self.covariance())
        major = evecs[:, 1]
        return {
            "scale": self.scale,
            "size": self.size,
            "sigma_major": float(math.sqrt(max(evals[1], 0.0))),
            "sigma_minor": float(math.sqrt(max(evals[0], 0.0))),
            "angle_deg": float(np.degrees(np.arctan2(major[0], major[1])) % 180.0),
            "min_tap": float(k.min()),
        }


def kernel_paths(directory: Path, stem: str, scale: int) -> dict[str, Path]:
    """Where ``save_kernel`` writes: ``<stem>_kernel_x{s}.{npy,mat,png,json}``."""
    base = f"{stem}_kernel_x{scale}"  # not Path.with_suffix: stems may contain dots ("a..b")
    return {ext: Path(directory) / f"{base}.{ext}" for ext in ("npy", "mat", "png", "json")}


def save_kernel(kernel: SRKernel, directory: Path, stem: str) -> dict[str, Path]:
    """Write the kernel's four files atomically and return their paths."""
    paths = kernel_paths(directory, stem, kernel.scale)
    write_kernel_array(paths["npy"], kernel.array)
    write_kernel_array(paths["mat"], kernel.array)
    atomic_write_bytes(paths["png"], kernel_picture(kernel.array))
    sidecar = {"scale": kernel.scale, "size": kernel.size, "convention": CONVENTION,
               "allow_negative": kernel.allow_negative, "diagnostics": kernel.describe(),
               "provenance": kernel.provenance}
    atomic_write_bytes(paths["json"], json.dumps(sidecar, indent=2, default=jsonable).encode())
    return paths


def write_kernel_array(path: Path, array: np.ndarray) -> Path:
    """Atomically write a bare kernel array as ``.npy`` or ``.mat`` (variable ``Kernel``)."""
    buf = io.BytesIO()
    if Path(path).suffix == ".mat":
        from scipy import io as sio  # imported here: only .mat files need it

        sio.savemat(buf, {"Kernel": np.asarray(array)})
    else:
        np.save(buf, np.asarray(array))
    return atomic_write_bytes(path, buf.getvalue())


def kernel_picture(array: np.ndarray, pixels: int = 256) -> bytes:
    """PNG bytes: the kernel scaled to its maximum, nearest-neighbour enlarged to ~``pixels``."""
    import cv2

    k = np.clip(np.asarray(array) / max(float(np.max(array)), 1e-12), 0, 1)
    zoom = max(1, pixels // k.shape[0])
    big = np.kron(np.round(k * 255).astype(np.uint8), np.ones((zoom, zoom), np.uint8))
    ok, data = cv2.imencode(".png", cv2.applyColorMap(big, cv2.COLORMAP_INFERNO))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return data.tobytes()


def load_kernel(path: str | Path, scale: int | None = None) -> SRKernel:
    """Read a kernel from ``.npy`` or ``.mat`` (variable ``Kernel``, as DIV2KRK and KernelGAN write).

    A JSON sidecar next to it supplies scale and provenance. Kernels in another centring convention
    (e.g. KernelGAN's +0.5 px) are re-centred, and kernels that do not sum to 1 are renormalised;
    both are recorded. NaN, wrong shapes, all-zero or non-positive-sum kernels raise ``InputError``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: kernel file not found")
    try:
        if path.suffix.lower() == ".mat":
            from scipy import io as sio  # imported here: only .mat files need it

            data = sio.loadmat(str(path))
            if "Kernel" not in data:
                raise InputError(f"{path}: .mat file has no variable 'Kernel'")
            array = np.asarray(data["Kernel"], dtype=np.float64)
        elif path.suffix.lower() == ".npy":
            array = np.load(path, allow_pickle=False).astype(np.float64)
        else:
            raise InputError(f"{path}: kernel must be a .npy or .mat file")
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoding failure is a bad file
        raise InputError(f"{path}: unreadable kernel file ({exc.__class__.__name__})") from None
    sidecar_path = path.with_suffix(".json")
    sidecar = json.loads(sidecar_path.read_text()) if sidecar_path.is_file() else {}
    scale = int(scale or sidecar.get("scale") or _scale_from_name(path.name) or 2)
    problem = _kernel_problem(array)
    if problem:
        raise InputError(f"{path}: {problem}")
    provenance = dict(sidecar.get("provenance", {}), source=str(path))
    total = float(array.sum())
    if abs(total - 1.0) > SUM_TOLERANCE:
        provenance["renormalised_from_sum"] = total
    array = array / total
    offset = np.array(centre_of_mass(array)) - (np.array(array.shape) - 1) / 2
    odd = array.shape[0] % 2 == 1 and array.shape[0] == array.shape[1]
    if odd and np.abs(offset).max() <= CENTRE_TOLERANCE:
        allow_negative = bool(sidecar.get("allow_negative", array.min() < -SUM_TOLERANCE))
        return SRKernel(array, scale, allow_negative=allow_negative, provenance=provenance)
    try:
        return SRKernel.from_array(array, scale, provenance=provenance)
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from None


def _kernel_problem(array: np.ndarray) -> str | None:
    if array.ndim != 2 or min(array.shape) < 1:
        return f"kernel must be a 2-D array, got shape {array.shape}"
    if array.shape[0] != array.shape[1]:
        return f"kernel must be square, got shape {array.shape}"
    if not np.all(np.isfinite(array)):
        return "kernel contains NaN or infinite values"
    if not np.any(array):
        return "kernel is all zeros"
    if array.sum() <= 0:
        return f"kernel sum must be positive, got {array.sum():.4g}"
    return None


def _scale_from_name(name: str) -> int | None:
    for s in SUPPORTED_SCALES:
        if f"_x{s}" in name:
            return s
    return None
