"""Whatever a user throws at blindsr: a correct result, or one line naming the file and the
problem, a non-zero exit, no traceback and no partial output. Each case runs the real CLI."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.conftest import textured_image
from tests.test_images import png_with_header

pytestmark = pytest.mark.slow  # the CLI in subprocesses, worker processes, training runs

FAST_PIPE = ["estimator=bicubic", "sr=bicubic"]


def cli(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "blindsr", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env={**os.environ, **(env or {})})


def one_line(result, code=1) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def photo(rng, rows=64, cols=80) -> np.ndarray:
    return (textured_image(rng, rows, cols) * 255).astype(np.uint8)


@pytest.fixture
def bad_inputs(tmp_path, rng):
    d = tmp_path
    (d / "folder.png").mkdir()
    (d / "empty.png").write_bytes(b"")
    (d / "text.jpg").write_text("a shopping list, not a photo")
    (d / "bomb.png").write_bytes(png_with_header(60000, 60000))
    for suffix, kw in ((".png", {}), (".jpg", {"quality": 90})):
        Image.fromarray(photo(rng)).save(d / f"whole{suffix}", **kw)
        data = (d / f"whole{suffix}").read_bytes()
        (d / f"cut{suffix}").write_bytes(data[: len(data) // 2])
    for size in (1, 8):
        Image.fromarray(photo(rng, 40, 40)[:size, :size]).save(d / f"tiny{size}.png")
    return d


@pytest.mark.parametrize("name,needle", [
    ("missing.png", "no such file"),
    ("folder.png", "is a folder"),
    ("empty.png", "empty"),
    ("text.jpg", "not an image"),
    ("bomb.png", "above the limit"),
    ("cut.png", "truncated"),
    ("cut.jpg", "truncated"),
    ("tiny1.png", "at least 32 px"),
    ("tiny8.png", "at least 32 px"),
])
def test_bad_inputs_one_line_and_no_output(bad_inputs, name, needle):
    result = cli("estimate", f"input={name}", "output=out", "estimator.iterations=5", cwd=bad_inputs)
    line = one_line(result)
    assert name in line and needle in line
    assert not list((bad_inputs / "out").glob("*")) if (bad_inputs / "out").exists() else True


def test_small_image_adapts_the_crop(tmp_path, rng):
    Image.fromarray(photo(rng, 40, 40)).save(tmp_path / "small.png")
    result = cli("estimate", "input=small.png", "output=out", "estimator.iterations=20", "estimator.restarts=1",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    meta = json.loads((tmp_path / "out" / "small_kernel_x2.json").read_text())
    assert meta["provenance"]["diagnostics"]["runs"][0]["g_crop"] == 40


def test_modes_are_kept(tmp_path, rng):
    rgb = photo(rng)
    rgb16 = (textured_image(rng, 64, 80) * 65535).astype(np.uint16)
    cv2.imencode(".png", rgb16[:, :, ::-1])[1].tofile(str(tmp_path / "deep.png"))
    Image.fromarray(rgb[:, :, 0], "L").save(tmp_path / "gray.png")
    Image.fromarray(np.dstack([rgb, rng.integers(0, 256, rgb.shape[:2], dtype=np.uint8)]), "RGBA").save(tmp_path / "alpha.png")
    Image.fromarray(np.dstack([rgb[:, :, 0], rgb[:, :, 1]]), "LA").save(tmp_path / "graya.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise
    Image.fromarray(rgb).save(tmp_path / "rotated.jpg", exif=exif)
    expected = {"deep": ("RGB", np.uint16, (128, 160)), "gray": ("L", np.uint8, (128, 160)),
                "alpha": ("RGBA", np.uint8, (128, 160)), "graya": ("LA", np.uint8, (128, 160)),
                "palette": ("RGB", np.uint8, (128, 160)),
                "cmyk": ("RGB", np.uint8, (128, 160)), "rotated": ("RGB", np.uint8, (160, 128))}
    for path in sorted(tmp_path.iterdir()):
        result = cli("pipeline", f"input={path.name}", "output=out", *FAST_PIPE, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        out = cv2.imread(str(tmp_path / "out" / f"{path.stem}_x2.png"), cv2.IMREAD_UNCHANGED)
        channels, dtype, shape = expected[path.stem]
        assert out.dtype == dtype and out.shape[:2] == shape, path.name
        assert (out.ndim == 2) == (channels == "L") and (out.ndim == 3 and out.shape[2] == 4) == (channels in ("RGBA", "LA"))
        with Image.open(tmp_path / "out" / f"{path.stem}_x2.png") as written:
            assert written.mode == channels, path.name


def test_unwritable_output_folder(tmp_path, rng):
    if os.geteuid() == 0:
        target = "/proc/blindsr-out"  # not writable even for root
    else:
        (tmp_path / "locked").mkdir(mode=0o500)
        target = str(tmp_path / "locked" / "out")
    Image.fromarray(photo(rng)).save(tmp_path / "a.png")
    line = one_line(cli("estimate", "input=a.png", f"output={target}", "estimator=bicubic", cwd=tmp_path))
    assert "cannot write" in line or "not a folder" in line


@pytest.mark.parametrize("array,needle", [
    (np.full((5, 5), np.nan), "NaN"),
    (np.ones((3, 4)), "square"),
    (np.zeros((5, 5)), "all zeros"),
    (-np.ones((5, 5)), "sum must be positive"),
])
def test_bad_kernel_files(tmp_path, rng, array, needle):
    Image.fromarray(photo(rng)).save(tmp_path / "a.png")
    np.save(tmp_path / "k.npy", array)
    line = one_line(cli("sr", "input=a.png", "kernel=k.npy", "sr=bicubic", "output=out", cwd=tmp_path))
    assert "k.npy" in line and needle in line
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_output_names_cannot_escape(tmp_path, rng):
    src = tmp_path / "in"
    src.mkdir()
    names = ("..png", "-rf.png", " lead.png", "a..b.png", "x\\y.png", "..\\up.png")
    for name in names:
        Image.fromarray(photo(rng)).save(src / name, format="PNG")
    result = cli("batch", "input=in", "output=out", *FAST_PIPE, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "4 done" in result.stdout  # hidden files ("..png", "..\\up.png") are not images of the batch
    assert (tmp_path / "out" / "a..b" / "a..b_kernel_x2.npy").is_file()
    written = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_relative_to(src)]
    assert written and all(p.is_relative_to(tmp_path / "out") for p in written)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interruption_leaves_nothing_that_looks_complete(tmp_path, rng, sig):
    Image.fromarray(photo(rng, 96, 96)).save(tmp_path / "a.png")
    proc = subprocess.Popen([sys.executable, "-m", "blindsr", "pipeline", "input=a.png", "output=out",
                             "estimator.iterations=3000", "sr=bicubic"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (tmp_path / "out").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    leftovers = [p.name for p in (tmp_path / "out").iterdir()]
    assert not any(n.endswith((".png", ".npy", ".json", ".mat")) and ".partial-" not in n for n in leftovers)


def test_same_input_and_seed_same_kernel(tmp_path, rng):
    Image.fromarray(photo(rng)).save(tmp_path / "a.png")
    hashes = []
    for out in ("one", "two"):
        result = cli("estimate", "input=a.png", f"output={out}", "estimator.iterations=60", "seed=4", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        hashes.append((tmp_path / out / "a_kernel_x2.npy").read_bytes())
    assert hashes[0] == hashes[1]


def test_untextured_image_is_announced_and_recorded(tmp_path):
    """A flat grey frame yields the bicubic kernel and one warning line naming the image, with
    the reason in the kernel's JSON, the pipeline record and its warnings (never silence)."""
    Image.fromarray(np.full((96, 128, 3), 128, np.uint8)).save(tmp_path / "grey wall.png")
    fast = ["estimator.iterations=20", "estimator.restarts=1"]
    result = cli("estimate", "input=grey wall.png", "output=out", *fast, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "not trusted" in line]
    assert len(lines) == 1 and "grey wall.png" in lines[0] and "no texture" in lines[0], result.stderr
    meta = json.loads((tmp_path / "out" / "grey wall_kernel_x2.json").read_text())
    assert meta["provenance"]["confidence"]["level"] == "low" and "no texture" in meta["provenance"]["fallback"]
    result = cli("pipeline", "input=grey wall.png", "output=pipe", "sr=bicubic", *fast, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sum("not trusted" in line for line in result.stderr.splitlines()) == 1
    record = json.loads((tmp_path / "pipe" / "grey wall_x2.json").read_text())
    assert record["kernel_confidence"]["level"] == "low"
    assert any("no texture" in w for w in record["warnings"])
