"""Shared by the benchmark scripts: machine facts and docs/BENCHMARKS.md section updates."""
from __future__ import annotations

import datetime
import os
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path

import torch

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"
HEADER = """# Benchmarks

Every number here was written by the command shown above it (`make bench-*` targets; see
benchmarks/). Speed claims are ratios measured side by side in the same run on the same machine.
"""


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, {gpu}; Python {platform.python_version()}, "
            f"torch {torch.__version__}, {platform.system()}")


def command_line() -> str:
    return "python " + " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).as_posix().split("/")[-2] + "/"
                                                          + Path(sys.argv[0]).name] + sys.argv[1:])


def revision() -> str:
    """The git revision the benchmark ran on (``+changes`` when the tree had uncommitted edits)."""
    root = Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("+changes" if dirty else "")


def write_section(name: str, title: str, body: str, make_target: str) -> None:
    """Replace (or append) the section ``name`` of docs/BENCHMARKS.md."""
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    load = os.getloadavg()
    busy = " (above the core count: other jobs shared the machine)" if max(load[0], load[2]) > os.cpu_count() else ""
    block = (f"<!-- bench:{name} -->\n## {title}\n\n`make {make_target}` ({command_line()})  \n"
             f"Machine: {machine_line()}  \nRevision: {revision()}; date: {stamp}; load average when written (1, 15 min): "
             f"{load[0]:.1f}, {load[2]:.1f}{busy}\n\n"
             f"{body.strip()}\n<!-- /bench:{name} -->")
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else HEADER
    pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    BENCHMARKS_MD.parent.mkdir(parents=True, exist_ok=True)
    BENCHMARKS_MD.write_text(text)
