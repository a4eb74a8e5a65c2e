"""The robustness benchmark (benchmarks/robust.py) runs its estimates as jobs from a git worktree
of the revision measured, an older one included: the file must start there, where the
``benchmarks`` folder may lack what today's has."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_benchmark_starts_from_a_code_root_without_todays_benchmarks(tmp_path):
    (tmp_path / "blindsr").symlink_to(ROOT / "blindsr")  # an older revision: blindsr, no benchmarks/
    env = {**os.environ, "BLINDSR_BENCH_CODE_ROOT": str(tmp_path)}
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "robust.py"), "--help"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "--baseline" in run.stdout
