"""The command line, through real subprocesses: exit codes, one-line errors, odd file names."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from blindsr.cli import split_overrides
from blindsr.errors import UsageError
from tests.conftest import textured_image

pytestmark = pytest.mark.slow  # the CLI in subprocesses, worker processes, training runs


def blindsr(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "blindsr", *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, **(env or {})}, timeout=300)


def one_line_error(result: subprocess.CompletedProcess, code: int) -> str:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_help_lists_verbs():
    result = blindsr("--help")
    assert result.returncode == 0
    for verb in ("estimate", "eval", "degrade"):
        assert f"  {verb}" in result.stdout
    keys = blindsr("estimate", "--help")
    assert keys.returncode == 0 and "scale: 2" in keys.stdout and "input: ???" in keys.stdout


@pytest.mark.parametrize("args,needle", [
    (("frobnicate",), "unknown verb"),
    (("estimate",), "missing required key(s): input"),
    (("estimate", "input=x.png", "scal=4"), "unknown key 'scal'"),
    (("estimate", "input=x.png", "scale=3"), "scale=3"),
    (("estimate", "input=x.png", "scale=abc"), "could not be converted"),
    (("estimate", "input=x.png", "estimator=nope"), "choose from"),
    (("estimate", "input=x.png", "estimator.bogus=1"), "bogus"),
    (("estimate", "input=x.png", "estimator.refine=gaussian"), "refine must be one of"),
    (("estimate", "input=x.png", "estimator.d_layers=1"), "d_layers must be at least 3, got 1"),
    (("pipeline", "input=x.png", "estimator.restarts=0"), "restarts must be at least 1, got 0"),
    (("batch", "input=x", "estimator.g_crop=8"), "g_crop must be at least 32, got 8"),
    (("estimate", "input"), "expected key=value"),
    (("pipeline", "input=x.png", "handoff_width=1.5"), "handoff_width=1.5"),
    (("eval", "dataset=x", "handoff_width=0"), "handoff_width=0"),
    (("pipeline", "input=x.png", "light=log"), "light=log: choose from encoded, linear"),
])
def test_usage_errors_exit_2_before_any_output(tmp_path, args, needle):
    result = blindsr(*args, "output=out", cwd=tmp_path) if args != ("frobnicate",) else blindsr(*args, cwd=tmp_path)
    line = one_line_error(result, 2)
    assert needle in line
    assert not (tmp_path / "out").exists()


def test_missing_input_exit_1_one_line(tmp_path):
    line = one_line_error(blindsr("estimate", "input=nothing here.png", "output=out", cwd=tmp_path), 1)
    assert "nothing here.png" in line and "no such file" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("verb", ["pipeline", "batch"])
def test_missing_srmd_weights_fail_before_any_estimate(tmp_path, rng, verb):
    """sr=srmd without its weights: one line and exit 1 before KernelGAN trains (a folder paid
    every image's estimate before each failed at SR), nothing written."""
    Image.fromarray((textured_image(rng, 64, 64) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    where = "input=a.png" if verb == "pipeline" else f"input={tmp_path}"
    result = blindsr(verb, where, "output=out", "sr=srmd", f"sr.pca={tmp_path / 'missing.mat'}", cwd=tmp_path)
    line = one_line_error(result, 1)
    assert "missing.mat: no such file" in line
    assert not (tmp_path / "out").exists()


def test_odd_file_names_work(tmp_path, rng):
    name = "my photo, v=2 'quoted' \"q\" é中.png"
    Image.fromarray((textured_image(rng, 64, 64) * 255).astype(np.uint8)).save(tmp_path / name)
    result = blindsr("estimate", f"input={name}", "output=out dir, =x", "estimator=bicubic", "scale=4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    stem = Path(name).stem
    for s in (2, 4):
        for ext in ("npy", "mat", "png", "json"):
            assert (tmp_path / "out dir, =x" / f"{stem}_kernel_x{s}.{ext}").is_file()
    meta = json.loads((tmp_path / "out dir, =x" / f"{stem}_kernel_x2.json").read_text())
    assert meta["provenance"]["image_sha256"]


def test_multi_page_input_is_announced_and_recorded(tmp_path, rng):
    pages = [Image.fromarray((textured_image(rng, 64, 64) * 255).astype(np.uint8)) for _ in range(2)]
    pages[0].save(tmp_path / "scan.tif", save_all=True, append_images=pages[1:])
    result = blindsr("pipeline", "input=scan.tif", "output=o", "estimator=bicubic", "sr=bicubic", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    note = "the file holds 2 frames (an animation or pages); only the first is used"
    assert [line for line in result.stderr.splitlines() if note in line and "scan.tif" in line]
    assert note in json.loads((tmp_path / "o" / "scan_x2.json").read_text())["warnings"]


def test_refuses_to_overwrite_without_permission(tmp_path, rng):
    Image.fromarray((textured_image(rng, 64, 64) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    assert blindsr("estimate", "input=a.png", "output=o", "estimator=bicubic", cwd=tmp_path).returncode == 0
    before = (tmp_path / "o" / "a_kernel_x2.npy").read_bytes()
    line = one_line_error(blindsr("estimate", "input=a.png", "output=o", "estimator=bicubic", cwd=tmp_path), 1)
    assert "already exists" in line and "overwrite=true" in line
    assert (tmp_path / "o" / "a_kernel_x2.npy").read_bytes() == before
    ok = blindsr("estimate", "input=a.png", "output=o", "estimator=bicubic", "overwrite=true", cwd=tmp_path)
    assert ok.returncode == 0


def test_path_values_bypass_override_grammar():
    overrides, paths = split_overrides("estimate", ["input=a,b=c d'e.png", "scale=4", "estimator.iterations=5"])
    assert paths == {"input": "a,b=c d'e.png"}
    assert overrides == ["scale=4", "estimator.iterations=5"]
    with pytest.raises(UsageError):
        split_overrides("estimate", ["bogus=1"])


def test_degrade_then_eval_with_ground_truth_and_bicubic(tmp_path, rng):
    hr_dir = tmp_path / "hr"
    hr_dir.mkdir()
    for i in range(2):
        Image.fromarray((textured_image(rng, 70 + 8 * i, 90) * 255).astype(np.uint8)).save(hr_dir / f"shot {i}.png")
    made = blindsr("degrade", "input=hr", "output=bench", "seed=5", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    bench = tmp_path / "bench"
    assert sorted(p.name for p in (bench / "gt").iterdir()) == ["im_1.png", "im_2.png"]
    assert (bench / "lr_x4" / "im_2.png").is_file() and (bench / "gt_k_x4" / "kernel_2.mat").is_file()
    gt_eval = blindsr("eval", "dataset=bench", "estimator=gt", "output=ev", cwd=tmp_path)
    assert gt_eval.returncode == 0, gt_eval.stderr
    rows = json.loads((tmp_path / "ev" / "eval_x2_gt.json").read_text())["rows"]
    assert all(r["lr_psnr"] > 60 for r in rows)  # the set was made by the reference degradation
    bic = blindsr("eval", "dataset=bench", "estimator=bicubic", "output=ev", "limit=1", "scale=4", cwd=tmp_path)
    assert bic.returncode == 0, bic.stderr
    assert "| im_1 |" in bic.stdout and "**mean**" in bic.stdout
    assert (tmp_path / "ev" / "eval_x4_bicubic.csv").read_text().count("\n") == 2


def test_degrade_one_camera_set_with_noise(tmp_path, rng):
    """shared_kernel: one kernel pair for every image; noise: the LR images differ from the
    noise-free ones (same seed, so the same kernels) by Gaussian noise of that sigma."""
    hr_dir = tmp_path / "hr"
    hr_dir.mkdir()
    for i in range(3):
        Image.fromarray((textured_image(rng, 120, 128) * 255).astype(np.uint8)).save(hr_dir / f"{i}.png")
    for name, extra in (("clean", []), ("noisy", ["noise=8"]), ("own", ["shared_kernel=false"])):
        shared = [] if name == "own" else ["shared_kernel=true"]
        made = blindsr("degrade", "input=hr", f"output={name}", "seed=9", "scales=[2]", *shared, *extra,
                       cwd=tmp_path)
        assert made.returncode == 0, made.stderr

    def kernels(name):
        return [np.load(tmp_path / name / "gt_k_x2" / f"kernel_{i}.npy") for i in (1, 2, 3)]

    clean, noisy, own = kernels("clean"), kernels("noisy"), kernels("own")
    assert all(np.array_equal(k, clean[0]) for k in clean + noisy)
    assert not np.allclose(own[0], own[1])
    manifest = json.loads((tmp_path / "noisy" / "manifest.json").read_text())
    assert manifest["shared_kernel"] is True and manifest["noise_sigma"] == 8.0
    difference = np.concatenate([
        np.asarray(Image.open(tmp_path / "noisy" / "lr_x2" / f"im_{i}.png"), dtype=np.float64)
        - np.asarray(Image.open(tmp_path / "clean" / "lr_x2" / f"im_{i}.png"), dtype=np.float64)
        for i in (1, 2, 3)])
    # Both were rounded to 8 bits: the difference is the noise plus at most one rounding step.
    assert abs(difference.mean()) < 0.2
    assert difference.std() == pytest.approx(np.sqrt(8.0 ** 2 + 1.0 / 6.0), rel=0.05)
    bad = blindsr("degrade", "input=hr", "output=x", "noise=-1", cwd=tmp_path)
    assert "noise" in one_line_error(bad, 2)


def test_degrade_in_linear_light_then_eval_in_either_light(tmp_path, rng):
    """degrade light=linear blurs the linear light; eval light=linear reproduces its LR images from
    the true kernels exactly, eval on the encoded values does not, and the two evaluations keep
    their results apart in one output folder."""
    hr_dir = tmp_path / "hr"
    hr_dir.mkdir()
    Image.fromarray((textured_image(rng, 72, 80) * 255).astype(np.uint8)).save(hr_dir / "a.png")
    made = blindsr("degrade", "input=hr", "output=bench", "seed=5", "scales=[2]", "light=linear", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert json.loads((tmp_path / "bench" / "manifest.json").read_text())["light"] == "linear"
    lr_psnr = {}
    for light in ("linear", "encoded"):
        run = blindsr("eval", "dataset=bench", "estimator=gt", "output=ev", f"light={light}", "overwrite=true",
                      cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        lr_psnr[light] = json.loads((tmp_path / "ev" / "eval_x2_gt.json").read_text())["rows"][0]["lr_psnr"]
    assert lr_psnr["linear"] > 60 and lr_psnr["encoded"] < 50
