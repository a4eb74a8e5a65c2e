"""The batch report: contents, and that a real headless browser renders it (when Chromium exists)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from blindsr.batch import plan_tasks, process
from blindsr.report import summary_rows, write_report, write_summary
from tests.conftest import batch_config, textured_image


@pytest.fixture
def report(tmp_path, rng) -> tuple[Path, list]:
    src = tmp_path / "in"
    src.mkdir()
    for name in ("b cat.jpg", "a dog.png"):
        Image.fromarray((textured_image(rng, 48, 64) * 255).astype(np.uint8)).save(src / name, quality=80)
    (src / "c broken.png").write_bytes(b"not a png")
    tasks, _ = plan_tasks(src, tmp_path / "out", batch_config("estimator=bicubic", "sr=bicubic"))
    outcomes = [process(t) for t in tasks]
    gt = tmp_path / "gt"
    gt.mkdir()
    Image.fromarray((textured_image(rng, 96, 128) * 255).astype(np.uint8)).save(gt / "a dog.png")
    rows = summary_rows(outcomes, src.resolve(), (tmp_path / "out").resolve(), 2, gt)
    write_summary(rows, tmp_path / "out", {"input": str(src)})
    return write_report(rows, outcomes, tmp_path / "out", 2, "test <batch>"), rows


def test_report_contents(report):
    path, rows = report
    html = path.read_text()
    assert [r["image"] for r in rows] == ["a dog.png", "b cat.jpg", "c broken.png"]
    assert rows[0]["jpeg_quality"] is None and rows[1]["jpeg_quality"] == 80  # read from the file's table
    assert "JPEG quality 80" in html and html.count("JPEG quality") == 1
    assert rows[0]["psnr"] > 0 and rows[1].get("psnr") is None  # ground truth only for "a dog"
    assert html.index("Failures") < html.index("a dog.png") < html.index("b cat.jpg")
    assert "c broken.png" in html and "not an image" in html
    assert "test &lt;batch&gt;" in html  # titles are escaped
    assert html.count("<section>") == 2
    assert len(re.findall(r"src='data:image/png;base64,", html)) == 6  # kernel + two crops each
    assert "http" not in html.replace("http-equiv", "")  # self-contained: no external resources


def test_report_renders_in_headless_chromium(report, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("Chromium is not installed (Debian package 'chromium')")
    path, _ = report
    shot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0 and dom.stdout.count("<section>") == 2
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1100,1400", path.as_uri()],
                   capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (1400, 1100)
    assert pixels.std() > 10  # text and pictures, not a blank page
