"""The CPU allocator setting (``blindsr.runtime.keep_freed_memory``): when it applies, that it stops
the page faults it is for, and that results do not change. Each case runs in a fresh interpreter:
the setting is process-wide and cannot be undone."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from blindsr.runtime import ALLOCATOR_ENV

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")

# A few KernelGAN training steps (the default preset's four batched runs on the default crop
# sizes), after warm-up: the minor page faults they take and a hash of the kernels they reach.
STEPS = """
import hashlib, json, resource
import numpy as np, torch
from blindsr.estimators.kernelgan import KernelGANEstimator
from blindsr.estimators.kernelgan.settings import settings_for
from blindsr.estimators.kernelgan.train import KernelGANRun
from blindsr.runtime import keep_freed_memory
KernelGANEstimator(device="cpu")  # applies the setting, as every CPU estimate does
torch.set_num_threads(1)
rgb = np.random.default_rng(0).random((96, 96, 3))
run = KernelGANRun(rgb, settings_for("default"), [0, 1, 2, 3], torch.device("cpu"))
for i in range(10):
    run.step(i)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for i in range(10, 30):
    run.step(i)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"kept": keep_freed_memory(), "faults": faults,
                  "kernels": hashlib.sha256(run.kernels().tobytes()).hexdigest()}))
"""


def run_python(code: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in (ALLOCATOR_ENV, "MALLOC_TOP_PAD_")}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_kept_memory_stops_the_page_faults_and_changes_no_result():
    default = run_python(STEPS, **{ALLOCATOR_ENV: "default"})
    kept = run_python(STEPS)
    assert not default["kept"] and kept["kept"]
    assert kept["kernels"] == default["kernels"]
    # With the setting a step faults in (almost) no new 4 KiB pages. Without it, how many depends
    # on how glibc's adaptive thresholds happened to settle - from a few to thousands per step
    # (docs/BENCHMARKS.md, 'speed-allocator') - so only the kept side is bounded here.
    assert kept["faults"] < 20 * 50


def test_setting_is_left_to_the_user_when_asked():
    code = "import json; from blindsr.runtime import keep_freed_memory; print(json.dumps({'kept': keep_freed_memory()}))"
    assert run_python(code)["kept"] is True
    assert run_python(code, **{ALLOCATOR_ENV: "default"})["kept"] is False
    assert run_python(code, MALLOC_TOP_PAD_="131072")["kept"] is False
