"""Image reading and writing: 8/16-bit, grayscale, alpha, EXIF orientation, any file name.

Reading gives a float64 RGB image in [0, 1] (grayscale replicated to three channels) plus the
facts needed to write a result back in the input's own form: bit depth, grayscale or colour, and
the alpha channel (which never enters kernel estimation or SR networks; it is resized on its own
with bicubic interpolation). Palette and CMYK inputs are decoded to RGB and written back as RGB.
Floating-point images (scientific TIFFs) are read as they are, so they must lie in [0, 1]; others
are refused, naming the range found. Of an animation or a multi-page file the first frame is read,
with a warning that the record keeps.
Headers are checked before any pixel is decoded, so a file claiming huge dimensions is refused
without allocating them.
"""
from __future__ import annotations

import hashlib
import logging
import re
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from blindsr.errors import InputError, OutputError
from blindsr.outputs import atomic_write_bytes

# 40 megapixels: well above any photo blindsr is meant for on a CPU, far below what would exhaust
# memory in float64 (a 40 MP RGB float64 image is ~1 GB).
DEFAULT_MAX_PIXELS = 40_000_000
QUANTISE_BLOCK_ELEMENTS = 1 << 20  # float samples converted to integers at a time when writing
# What a folder run takes: every format ``read_image`` reads (a GIF gives its first frame).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif")
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F", "La"}
_EXIF_ORIENTATION = 0x0112
_EXIF_MAKE, _EXIF_MODEL, _EXIF_IFD = 0x010F, 0x0110, 0x8769
_EXIF_FOCAL_LENGTH, _EXIF_LENS_MODEL = 0x920A, 0xA434

log = logging.getLogger(__name__)
# Floating-point pixels are read as they are, so they must already lie in [0, 1] (up to rounding).
FLOAT_RANGE_SLACK = 1e-3

Image.MAX_IMAGE_PIXELS = None  # our own limit below applies before decoding


@dataclass
class LoadedImage:
    """A decoded image and what is needed to write results back in the same form.

    Attributes:
        rgb: float64 (H, W, 3) in [0, 1], EXIF orientation applied.
        alpha: float64 (H, W) in [0, 1], or None.
        bit_depth: 8 or 16 (what outputs are written in).
        grayscale: the input had one colour channel (outputs are written as grayscale).
        path: where it was read from.
        sha256: hash of the file's bytes (recorded in provenance).
        warnings: what the reader could not take over (extra frames), for the record.
        jpeg_luma_table: a JPEG file's luma quantisation table (8x8, row-major), else None
            (``blindsr.estimators.compression``).
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    bit_depth: int
    grayscale: bool
    path: Path
    sha256: str
    warnings: list[str] = field(default_factory=list)
    jpeg_luma_table: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.rgb.shape[0], self.rgb.shape[1]


def probe(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int, str]:
    """Width, height and Pillow mode from the header only; raises ``InputError`` with one line
    for missing files, folders, empty files, non-images and images above ``max_pixels``."""
    return _header(path, max_pixels)[:3]


def _header(path: str | Path, max_pixels: int) -> tuple[int, int, str, int, int, np.ndarray | None]:
    """``probe``'s width, height and mode, then (once the size is accepted) the EXIF orientation,
    the frame count (``_orientation_and_frames``) and a JPEG's luma quantisation table, from one
    opening of the file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected an image file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty")
    try:
        with Image.open(path) as im:
            width, height, mode = im.width, im.height, im.mode
            if mode == "RGBA" and im.format == "PNG" and im.tile and str(im.tile[0][3]).startswith("LA"):
                mode = "LA"  # a 16-bit gray-and-alpha PNG, which Pillow widens to RGBA
            if width * height > max_pixels:
                raise InputError(f"{path}: image is {width}x{height} = {width * height / 1e6:.0f} MP, "
                                 f"above the limit of {max_pixels / 1e6:.0f} MP (max_pixels)")
            if width < 1 or height < 1:
                raise InputError(f"{path}: image has no pixels ({width}x{height})")
            orientation, frames = _orientation_and_frames(im)
            luma_table = file_luma_table(im)
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image (unknown or unsupported format)") from None
    except OSError as exc:
        raise InputError(f"{path}: unreadable image ({exc})") from None
    return width, height, mode, orientation, frames, luma_table


def read_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Decode ``path`` (any name, including non-ASCII) into a ``LoadedImage``."""
    path = Path(path)
    width, height, mode, orientation, frames, luma_table = _header(path, max_pixels)
    data = path.read_bytes()
    _check_complete(path, data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise InputError(f"{path}: cannot decode image (corrupt or truncated)")
    if decoded.shape[0] != height or decoded.shape[1] != width:
        raise InputError(f"{path}: decoded size {decoded.shape[1]}x{decoded.shape[0]} does not "
                         f"match the header's {width}x{height}")
    rgb, alpha, bit_depth = _to_float_rgb(decoded, path)
    rgb = orient(rgb, orientation)
    alpha = None if alpha is None else orient(alpha, orientation)
    notes = []
    if frames > 1:
        notes.append(f"the file holds {frames} frames (an animation or pages); only the first is used")
        log.warning("%s: %s", path, notes[-1])
    return LoadedImage(rgb=rgb, alpha=alpha, bit_depth=bit_depth,
                       grayscale=mode in _GRAY_MODES, path=path,
                       sha256=hashlib.sha256(data).hexdigest(), warnings=notes, jpeg_luma_table=luma_table)


def _check_complete(path: Path, data: bytes) -> None:
    """Decoders paper over missing tails (grey blocks in JPEGs), so check the end markers."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-64:]:
        raise InputError(f"{path}: truncated PNG (no IEND chunk)")
    if data[:2] == b"\xff\xd8" and data.rfind(b"\xff\xd9") < 2:
        raise InputError(f"{path}: truncated JPEG (no end-of-image marker)")


def _to_float_rgb(decoded: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray | None, int]:
    if decoded.dtype == np.uint8:
        scale, depth = 255.0, 8
    elif decoded.dtype == np.uint16:
        scale, depth = 65535.0, 16
    elif decoded.dtype in (np.float32, np.float64):
        scale, depth = 1.0, 16
        _check_float_range(decoded, path)
    else:
        raise InputError(f"{path}: unsupported pixel type {decoded.dtype} (blindsr reads 8- and 16-bit "
                         f"integer and [0, 1] floating-point images)")
    image = np.clip(decoded.astype(np.float64) / scale, 0.0, 1.0)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2), None, depth
    alpha = image[:, :, 3] if image.shape[2] == 4 else None
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2), None, depth
    return image[:, :, 2::-1].copy(), alpha, depth


def _check_float_range(decoded: np.ndarray, path: Path) -> None:
    """Floating-point files (scientific TIFFs) carry no scale: values outside [0, 1] would be
    clipped into a white or black image, so they are refused with the range found."""
    if not np.isfinite(decoded).all():
        raise InputError(f"{path}: the image has non-finite pixel values (NaN or infinity)")
    low, high = float(decoded.min()), float(decoded.max())
    if low < -FLOAT_RANGE_SLACK or high > 1.0 + FLOAT_RANGE_SLACK:
        raise InputError(f"{path}: floating-point pixels span [{low:.4g}, {high:.4g}]; blindsr reads float "
                         f"images in [0, 1] (rescale it, or save it as 8- or 16-bit)")


def _orientation_and_frames(im: Image.Image) -> tuple[int, int]:
    """An open image's EXIF orientation (1: none, also for a broken EXIF block) and its number of
    frames: an animation's or a multi-page file's (1 for a still image)."""
    try:
        frames = int(getattr(im, "n_frames", 1))
    except Exception:  # noqa: BLE001 - the frame count is only a note
        frames = 1
    try:
        orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block means "no orientation"
        orientation = 1
    return orientation, frames


def file_luma_table(im: Image.Image) -> np.ndarray | None:
    """The luma quantisation table of an open JPEG (8x8, row-major; Pillow lists it so), else None."""
    tables = getattr(im, "quantization", None) if im.format == "JPEG" else None
    if not tables:
        return None
    return np.asarray(list(tables[min(tables)]), dtype=np.float64).reshape(8, 8)


def camera_identity(path: str | Path) -> dict[str, str] | None:
    """The optics an image was taken with, from its EXIF: camera (make and model), lens model and
    focal length; None when the file has no camera make or model (scans, renders, stripped files).
    Only the header is read."""
    try:
        with Image.open(path) as im:
            exif = im.getexif()
            lens_ifd = exif.get_ifd(_EXIF_IFD)
    except Exception:  # noqa: BLE001 - an unreadable header has no identity; reading fails later
        return None

    def text(value) -> str:
        return " ".join(str(value or "").replace("\x00", " ").split())

    make, model = text(exif.get(_EXIF_MAKE)), text(exif.get(_EXIF_MODEL))
    if not (make or model):
        return None
    camera = model if make and model.lower().startswith(make.lower()) else f"{make} {model}".strip()
    focal = lens_ifd.get(_EXIF_FOCAL_LENGTH)
    try:
        focal_text = f"{float(focal):g} mm" if focal is not None else ""
    except (TypeError, ValueError, ZeroDivisionError):
        focal_text = ""
    return {"camera": camera, "lens": text(lens_ifd.get(_EXIF_LENS_MODEL)), "focal_length": focal_text}


def orient(image: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation 1-8 (the transform that makes the image display upright)."""
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.swapaxes(a, 0, 1)[::-1],
    }
    return np.ascontiguousarray(ops.get(orientation, ops[1])(image))


def encode_png(rgb: np.ndarray, alpha: np.ndarray | None = None, bit_depth: int = 8,
               grayscale: bool = False) -> bytes:
    """PNG bytes of a float [0, 1] image in the given bit depth and channel layout."""
    peak = 65535 if bit_depth == 16 else 255
    dtype = np.uint16 if bit_depth == 16 else np.uint8
    height, width = rgb.shape[:2]
    colours = 1 if grayscale else 3
    pixels = np.empty((height, width, colours + (alpha is not None)), dtype)
    floats = rgb.dtype if alpha is None else np.result_type(rgb.dtype, alpha.dtype)
    # Row block by row block, so that a photo of many megapixels needs no full-size float copies
    # (each pixel's numbers are the same whatever the blocks).
    step = max(1, QUANTISE_BLOCK_ELEMENTS // (width * pixels.shape[2]))
    for top in range(0, height, step):
        rows = slice(top, top + step)
        colour = rgb[rows].mean(axis=2, keepdims=True) if grayscale else rgb[rows, :, ::-1]
        pixels[rows, :, :colours] = _quantise(colour, peak, floats)
        if alpha is not None:
            pixels[rows, :, colours] = _quantise(alpha[rows], peak, floats)
    if pixels.shape[2] == 2:
        return _png_gray_alpha(pixels)
    if pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    ok, data = cv2.imencode(".png", pixels)
    if not ok:
        raise OutputError("PNG encoding failed")
    return data.tobytes()


def _quantise(values: np.ndarray, peak: int, floats: np.dtype) -> np.ndarray:
    """Float [0, 1] values -> integers in [0, peak], still as ``floats``."""
    scaled = np.multiply(values, peak, dtype=floats)
    np.round(scaled, out=scaled)
    return np.clip(scaled, 0, peak, out=scaled)


def _png_gray_alpha(pixels: np.ndarray) -> bytes:
    """A PNG of colour type 4 (gray and alpha, 8 or 16 bits), which OpenCV does not write: rows
    of big-endian samples, each behind filter byte 0, in one zlib stream."""
    height, width, _ = pixels.shape
    depth = 16 if pixels.dtype == np.uint16 else 8
    rows = np.ascontiguousarray(pixels.astype(">u2" if depth == 16 else np.uint8)).view(np.uint8).reshape(height, -1)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, depth, 4, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def write_image(path: str | Path, rgb: np.ndarray, alpha: np.ndarray | None = None,
                bit_depth: int = 8, grayscale: bool = False) -> Path:
    """Atomically write a float [0, 1] RGB image (plus optional alpha) as PNG."""
    path = Path(path)
    try:
        return atomic_write_bytes(path, encode_png(rgb, alpha, bit_depth, grayscale))
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None


def list_images(folder: str | Path, recursive: bool = False) -> tuple[list[Path], list[Path]]:
    """Image files (by suffix) and other files in ``folder``, each sorted naturally."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    pattern = "**/*" if recursive else "*"
    files = [p for p in folder.glob(pattern) if p.is_file() and not p.name.startswith(".")]
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    others = [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
    return sorted(images, key=natural_key), sorted(others, key=natural_key)


def natural_key(path: Path) -> list:
    """Sort key that puts im_2 before im_10."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(path))]
