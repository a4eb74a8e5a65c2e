from __future__ import annotations

import re
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from blindsr.errors import InputError
from blindsr.images import encode_png, list_images, probe, read_image, write_image


def save_rgb(path, rgb8):
    Image.fromarray(rgb8).save(path)
    return path


def test_rgb8_roundtrip_non_ascii_path(tmp_path, rng):
    rgb = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    path = save_rgb(tmp_path / "ünïcødé photo, v=2 'x'.png", rgb)
    img = read_image(path)
    assert img.bit_depth == 8 and not img.grayscale and img.alpha is None
    assert np.array_equal(np.round(img.rgb * 255).astype(np.uint8), rgb)
    out = write_image(tmp_path / "außen.png", img.rgb)
    assert np.array_equal(np.asarray(Image.open(out)), rgb)


def test_16bit_and_gray_and_alpha(tmp_path, rng):
    rgb16 = rng.integers(0, 65536, (9, 11, 3), dtype=np.uint16)
    cv2.imencode(".png", rgb16[:, :, ::-1])[1].tofile(str(tmp_path / "deep.png"))
    img = read_image(tmp_path / "deep.png")
    assert img.bit_depth == 16
    assert np.array_equal(np.round(img.rgb * 65535).astype(np.uint16), rgb16)
    back = read_image(write_image(tmp_path / "deep_out.png", img.rgb, bit_depth=16))
    assert back.bit_depth == 16 and np.allclose(back.rgb, img.rgb, atol=1e-9)

    gray = rng.integers(0, 256, (10, 12), dtype=np.uint8)
    Image.fromarray(gray, "L").save(tmp_path / "gray.png")
    g = read_image(tmp_path / "gray.png")
    assert g.grayscale and np.array_equal(g.rgb[..., 0], g.rgb[..., 2])
    out = write_image(tmp_path / "gray_out.png", g.rgb, grayscale=True)
    assert Image.open(out).mode == "L"

    rgba = rng.integers(0, 256, (8, 8, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    a = read_image(tmp_path / "alpha.png")
    assert np.array_equal(np.round(a.alpha * 255).astype(np.uint8), rgba[..., 3])
    assert np.array_equal(np.round(a.rgb * 255).astype(np.uint8), rgba[..., :3])
    out = write_image(tmp_path / "alpha_out.png", a.rgb, a.alpha)
    assert np.array_equal(np.asarray(Image.open(out)), rgba)


def test_palette_and_cmyk_decode_to_rgb(tmp_path, rng):
    rgb = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(rgb).convert("P").save(tmp_path / "pal.png")
    p = read_image(tmp_path / "pal.png")
    assert p.rgb.shape == (16, 16, 3) and not p.grayscale
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    c = read_image(tmp_path / "cmyk.jpg")
    ref = np.asarray(Image.open(tmp_path / "cmyk.jpg").convert("RGB")) / 255.0
    assert c.rgb.shape == (16, 16, 3) and np.abs(c.rgb - ref).mean() < 0.05


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, rng, orientation):
    rgb = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"
    Image.fromarray(rgb).save(path, exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    got = np.round(read_image(path).rgb * 255).astype(np.uint8)
    assert got.shape == expected.shape and np.array_equal(got, expected)


def png_with_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


def test_bad_inputs_give_one_line_errors(tmp_path, rng):
    with pytest.raises(InputError, match="no such file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(InputError, match="folder"):
        read_image(tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "text.jpg").write_text("hello, I am not a picture")
    with pytest.raises(InputError, match="not an image"):
        read_image(tmp_path / "text.jpg")
    (tmp_path / "bomb.png").write_bytes(png_with_header(60000, 60000))
    with pytest.raises(InputError, match="above the limit"):
        read_image(tmp_path / "bomb.png")
    rgb = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for suffix, kw in ((".png", {}), (".jpg", {"quality": 90})):
        Image.fromarray(rgb).save(tmp_path / f"full{suffix}", **kw)
        data = (tmp_path / f"full{suffix}").read_bytes()
        (tmp_path / f"cut{suffix}").write_bytes(data[: len(data) // 2])
        with pytest.raises(InputError, match="truncated|cannot decode|unreadable"):
            read_image(tmp_path / f"cut{suffix}")


def test_probe_reads_header_only(tmp_path):
    (tmp_path / "big.png").write_bytes(png_with_header(5000, 3000))
    assert probe(tmp_path / "big.png") == (5000, 3000, "RGB")


def test_list_images_sorts_naturally(tmp_path):
    for name in ("im_10.png", "im_2.png", "im_1.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    images, others = list_images(tmp_path)
    assert [p.name for p in images] == ["im_1.png", "im_2.png", "im_10.png"]
    assert [p.name for p in others] == ["notes.txt"]


def test_list_images_takes_every_format_read_image_reads(tmp_path, rng):
    """A folder run takes what ``pipeline`` takes: each file Pillow writes in these formats is
    listed as an image and read back with its pixels."""
    pixels = (rng.random((8, 8, 3)) * 255).astype(np.uint8)
    for name in ("a.png", "b.bmp", "c.tif", "d.ppm", "e.gif", "f.webp"):
        Image.fromarray(pixels).save(tmp_path / name, **({"lossless": True} if name.endswith("webp") else {}))
    images, others = list_images(tmp_path)
    assert [p.name for p in images] == ["a.png", "b.bmp", "c.tif", "d.ppm", "e.gif", "f.webp"] and not others
    for path in images:
        assert read_image(path).rgb.shape == (8, 8, 3)


@pytest.mark.parametrize("bits", [8, 16])
def test_encode_png_gray_alpha(tmp_path, rng, bits):
    """Gray with alpha is written as a gray-and-alpha PNG (colour type 4) in the input's depth;
    libpng (through OpenCV) and Pillow decode the samples that were meant."""
    gray, alpha = rng.random((5, 6)), rng.random((5, 6))
    peak = 2**bits - 1
    data = encode_png(np.repeat(gray[:, :, None], 3, axis=2), alpha, bits, grayscale=True)
    assert data[25] == 4 and data[24] == bits  # IHDR: colour type, bit depth
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.dtype == (np.uint16 if bits == 16 else np.uint8)
    assert np.array_equal(decoded[:, :, 0], np.round(gray * peak)) and np.array_equal(decoded[:, :, 3], np.round(alpha * peak))
    (tmp_path / "la.png").write_bytes(data)
    if bits == 8:
        with Image.open(tmp_path / "la.png") as im:
            assert im.mode == "LA" and np.array_equal(np.asarray(im)[:, :, 1], np.round(alpha * peak))
    img = read_image(tmp_path / "la.png")
    assert img.grayscale and img.bit_depth == bits
    assert np.allclose(img.alpha, np.round(alpha * peak) / peak) and np.allclose(img.rgb[:, :, 1], np.round(gray * peak) / peak)


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("layout", ["rgb", "rgb+alpha", "gray", "gray+alpha"])
def test_encode_png_in_row_blocks_writes_the_same_samples(monkeypatch, rng, bits, layout):
    """Large images are quantised a few rows at a time: any block size gives the samples of the
    whole-image computation (rounded half to even, clipped to the range; out-of-range values,
    exact halves, and a float32 image with a float64 alpha included)."""
    peak = 2**bits - 1
    rgb = rng.uniform(-0.1, 1.1, (7, 5, 3)).astype(np.float32)
    rgb[0, 0] = [0.5 / peak, 1.5 / peak, 2.5 / peak]
    alpha = rng.random((7, 5)) if "alpha" in layout else None
    gray = layout.startswith("gray")
    # Independent reference: the whole image at once, in the common float type.
    colour = rgb.mean(axis=2, keepdims=True) if gray else rgb[:, :, ::-1]
    planes = colour if alpha is None else np.concatenate([colour, alpha[:, :, None]], axis=2)
    expected = np.clip(np.round(planes * peak), 0, peak).astype(np.uint16 if bits == 16 else np.uint8)
    for elements in (1, 16, 1 << 20):  # one row, a few rows, the whole image per block
        monkeypatch.setattr("blindsr.images.QUANTISE_BLOCK_ELEMENTS", elements)
        decoded = cv2.imdecode(np.frombuffer(encode_png(rgb, alpha, bits, gray), np.uint8), cv2.IMREAD_UNCHANGED)
        if decoded.ndim == 2:
            decoded = decoded[:, :, None]
        if layout == "gray+alpha":  # OpenCV reads gray-and-alpha as BGRA
            decoded = decoded[:, :, [0, 3]]
        assert np.array_equal(decoded, expected), elements


def test_float_images_in_unit_range_are_read_others_refused(tmp_path, rng):
    gray = rng.random((9, 11)).astype(np.float32)
    Image.fromarray(gray, mode="F").save(tmp_path / "unit.tif")
    img = read_image(tmp_path / "unit.tif")
    assert img.grayscale and img.bit_depth == 16
    assert np.array_equal(img.rgb, np.repeat(gray.astype(np.float64)[:, :, None], 3, axis=2))
    # A scientific TIFF in counts (0-255 here) would be clipped to a white frame: refused, naming the range.
    counts = gray * 255
    Image.fromarray(counts, mode="F").save(tmp_path / "counts.tif")
    span = re.escape(f"counts.tif: floating-point pixels span [{counts.min():.4g}, {counts.max():.4g}]")
    with pytest.raises(InputError, match=span):
        read_image(tmp_path / "counts.tif")
    gray[2, 3] = np.nan
    Image.fromarray(gray, mode="F").save(tmp_path / "nan.tif")
    with pytest.raises(InputError, match="non-finite"):
        read_image(tmp_path / "nan.tif")


def test_unsupported_pixel_type_names_the_file(tmp_path, rng):
    Image.fromarray(rng.integers(-5, 70000, (8, 8), dtype=np.int32), mode="I").save(tmp_path / "int32.tif")
    with pytest.raises(InputError, match=r"int32\.tif: unsupported pixel type"):
        read_image(tmp_path / "int32.tif")


def test_multi_frame_file_reads_the_first_frame_with_a_warning(tmp_path, rng, caplog):
    frames = [rng.integers(0, 256, (10, 12, 3), dtype=np.uint8) for _ in range(3)]
    Image.fromarray(frames[0]).save(tmp_path / "pages.tif", save_all=True,
                                    append_images=[Image.fromarray(f) for f in frames[1:]])
    with caplog.at_level("WARNING"):
        img = read_image(tmp_path / "pages.tif")
    assert np.array_equal(np.round(img.rgb * 255).astype(np.uint8), frames[0])
    assert img.warnings == ["the file holds 3 frames (an animation or pages); only the first is used"]
    assert "pages.tif" in caplog.text and "only the first is used" in caplog.text
    save_rgb(tmp_path / "still.png", frames[0])
    assert read_image(tmp_path / "still.png").warnings == []
