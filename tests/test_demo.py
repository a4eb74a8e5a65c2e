"""``make demo`` end to end, shortened: few KernelGAN iterations and the bicubic back-end."""
from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # the CLI in subprocesses, worker processes, training runs

pytest.importorskip("skimage")


def test_demo_runs_and_reports(tmp_path):
    result = subprocess.run([sys.executable, "-m", "blindsr.demo", "--output", str(tmp_path / "demo"),
                             "--iterations", "20", "--sr", "bicubic"], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "kernel PSNR (dB)" in result.stdout and "Y-PSNR (dB)" in result.stdout
    assert "time: kernel estimate " in result.stdout
    for name in ("chelsea_lr_x2_x2.png", "chelsea_hr.png", "chelsea_lr_x2_kernel_x2.npy",
                 "true/chelsea_kernel_x2.npy"):
        assert (tmp_path / "demo" / name).is_file(), name
