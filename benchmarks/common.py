"""Shared by the benchmark scripts: machine facts and docs/BENCHMARKS.md section updates."""
from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from zssr import native_bf16  # whether this CPU computes bf16 (what ZSSR's precision=auto reads)

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"
LOAD_MARGIN = 0.5  # load average above the core count: more threads wanted the cores than there were
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
    bf16 = "native bf16" if native_bf16() else "no native bf16"
    return (f"{cpu}, {os.cpu_count()} cores ({bf16}), {gpu}; Python {platform.python_version()}, "
            f"torch {torch.__version__}, {platform.system()}")


def synchronise(device: str) -> None:
    """Wait for a GPU's queue to drain (a CPU has none), so that a timer around work sees all of it."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def unit_seconds(steps: int = 20, rounds: int = 3, device: str = "cpu") -> float:
    """The machine-independent speed unit: seconds of one fp32 training step (forward, backward,
    Adam) of the plain ZSSR network (8 x 64-channel 3x3 convolutions, NCHW) on a 1x3x128x128 input;
    the median of ``rounds`` means of ``steps`` steps, after 3 warm-up steps. A time divided by it
    compares across CPUs: AVX2-only and AVX-512/AMX machines differ 2-3x in seconds. ``device``:
    the same step elsewhere (a GPU, whose queue is drained around each round)."""
    from zssr.network import ZSSRNet

    generator = torch.Generator().manual_seed(0)
    net = ZSSRNet(3, 8, 64, 0.1, generator).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(1, 3, 128, 128, generator=generator).to(device)
    target = torch.rand(1, 3, 128, 128, generator=generator).to(device)

    def step() -> None:
        loss = (net(x) - target).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    means = []
    for _ in range(rounds):
        synchronise(device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        synchronise(device)
        means.append((time.perf_counter() - start) / steps)
    return statistics.median(means)


def command_line() -> str:
    """How this benchmark was started: ``python -m benchmarks.NAME ARGS`` (or the script's path)."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    program = ["-m", spec.name] if spec is not None else [Path(sys.argv[0]).as_posix().split("/")[-2] + "/"
                                                          + Path(sys.argv[0]).name]
    # Paths beside the checkout are written relative to it, as the Makefile gives them (../shared).
    beside = str(BENCHMARKS_MD.parents[2]) + "/"
    return "python " + " ".join(shlex.quote(a.replace(beside, "../")) for a in program + sys.argv[1:])


def revision() -> str:
    """The git revision the benchmark ran on (``+changes`` when the tree had uncommitted edits)."""
    root = Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True).stdout.strip()
        # BENCHMARKS.md itself is not code: a benchmark writing several sections dirties it.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":!docs/BENCHMARKS.md"], cwd=root, capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("+changes" if dirty else "")


def load_average() -> tuple[float, float]:
    """The 1- and 15-minute load average."""
    load = os.getloadavg()
    return load[0], load[2]


def numbers(spec: str) -> list[int]:
    """Image numbers: '1-5,9' -> [1, 2, 3, 4, 5, 9]."""
    out: list[int] = []
    for part in filter(None, spec.split(",")):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def worktree(revision: str, work: Path) -> Path:
    """A git worktree of ``revision`` (made once, kept in ``work`` for resumed runs), so that a
    benchmark runs the same code whatever happens to the checkout meanwhile."""
    tree = work / f"code-{revision}"
    if not tree.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), revision], cwd=BENCHMARKS_MD.parents[1],
                       check=True, capture_output=True)
    return tree


def run_facts() -> dict:
    """What a section's header says about the run that measured it: ``machine``, ``revision``,
    ``command``, ``date`` and ``load`` (1- and 15-minute load average and core count)."""
    return {"machine": machine_line(), "revision": revision(), "command": command_line(),
            "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "load": [*load_average(), os.cpu_count()]}


def write_section(name: str, title: str, body: str, make_target: str, measured: dict | None = None) -> None:
    """Replace (or append) the section ``name`` of docs/BENCHMARKS.md. ``measured``: the header's
    facts (``run_facts``) of a measurement made elsewhere, recorded here; default this run's."""
    facts = measured or run_facts()
    one, fifteen, cores = facts["load"]
    # A benchmark that keeps every core busy holds the load near the core count by itself; above
    # it, threads waited for a core - the run's own workers or other jobs, which the load cannot tell.
    shared = max(one, fifteen) > cores + LOAD_MARGIN
    busy = " (above the core count: threads waited for a core, this run's own or other jobs')" if shared else ""
    block = (f"<!-- bench:{name} -->\n## {title}\n\n`make {make_target}` ({facts['command']})  \n"
             f"Machine: {facts['machine']}  \nRevision: {facts['revision']}; date: {facts['date']}; load average when "
             f"written (1, 15 min): {one:.1f}, {fifteen:.1f}{busy}\n\n"
             f"{body.strip()}\n<!-- /bench:{name} -->")
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else HEADER
    pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    BENCHMARKS_MD.parent.mkdir(parents=True, exist_ok=True)
    BENCHMARKS_MD.write_text(text)


def run_hard_set_parts(description: str, name: str, parts: dict[str, tuple[str, ...]], titles: dict[str, str],
                       scores: Callable[..., dict], section: Callable[[str, dict], str], images: int) -> None:
    """The command line of a benchmark over the hard set's parts (``--part`` picks a key of
    ``parts``: its folders, in order): ``scores(entry, folder, work)`` per image of each folder
    (cached by the benchmark under ``--work``/folder), then ``section(part, results)`` and the
    remark written as the section ``<name>-<part>`` (``make bench-<name>-<part>``)."""
    from blindsr.datasets import load_benchmark

    root = BENCHMARKS_MD.parents[1]
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--part", choices=tuple(parts), default="tune")
    parser.add_argument("--hard-set", type=Path, default=root / "hard_set")
    parser.add_argument("--work", type=Path, default=root / "bench_out" / name)
    parser.add_argument("--make-target", default=None)
    parser.add_argument("--remark", default="", help="a paragraph added to the section (a decision, a caveat)")
    args = parser.parse_args()
    results = {}
    for folder in parts[args.part]:
        entries = load_benchmark(args.hard_set / folder, 2, limit=images)
        results[folder] = {e.name: scores(e, folder, args.work / folder) for e in entries}
    body = section(args.part, results) + (f"\n\n{args.remark}" if args.remark else "")
    write_section(f"{name}-{args.part}", titles[args.part], body, args.make_target or f"bench-{name}-{args.part}")


def cached_rows(cache: Path, name: str) -> tuple[dict, dict]:
    """A benchmark's cache of rows (``cache``, JSON; empty when absent) and a copy of image
    ``name``'s row in it (empty when absent), to be completed and handed to ``cache_row``."""
    found = json.loads(cache.read_text()) if cache.exists() else {}
    return found, dict(found.get(name, {}))


def cache_row(cache: Path, found: dict, name: str, row: dict) -> dict:
    """Add one image's scores to a benchmark's cache of rows (``cache``, JSON, written
    atomically) and print them: a stopped run resumes from the images already there."""
    from blindsr.outputs import write_json

    found[name] = row
    cache.parent.mkdir(parents=True, exist_ok=True)
    write_json(cache, found)
    print(f"{cache.parent.name} {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()
                                                    if isinstance(v, float)), flush=True)
    return row


def cached_estimate(entry, work: Path, stem: str, light: str = "encoded"):
    """The default KernelGAN x2 estimate (seed 0) of a benchmark image's LR image in ``light``,
    made once and kept in ``work`` as ``stem``'s kernel files and record (seconds, fallback,
    confidence, warnings); returns (kernel, record)."""
    from blindsr.estimators import get_estimator
    from blindsr.images import read_image
    from blindsr.kernel import kernel_paths, load_kernel, save_kernel
    from blindsr.light import decode
    from blindsr.outputs import write_json

    record_path = work / f"{stem}.json"
    if not record_path.exists():
        work.mkdir(parents=True, exist_ok=True)
        result = get_estimator("kernelgan", device="cpu").estimate(decode(read_image(entry.lr).rgb, light), 2, seed=0)
        kernel = result.kernels[2]
        save_kernel(kernel, work, stem)
        write_json(record_path, {"seconds": result.seconds, "fallback": kernel.provenance.get("fallback"),
                                 "confidence": (kernel.provenance.get("confidence") or {}).get("score"),
                                 "warnings": result.warnings})
    return load_kernel(kernel_paths(work, stem, 2)["npy"], 2), json.loads(record_path.read_text())


# How the noise correction's refits were made (``kernelgan.noise_corrected``): a benchmark's cached
# correction that refitted under another rule is made again from the kept uncorrected kernel.
NOISE_REFIT_RULE = "against a control refit; none when a refit scores other pixels; two levels, in proportion"


def correction_current(cached: dict) -> bool:
    """Whether a cached result's noise correction stands: it refitted nothing (its gate stayed
    shut, or a JPEG), or it refitted under today's ``NOISE_REFIT_RULE``."""
    return "draws" not in (cached.get("correction") or {}) or cached.get("refit_rule") == NOISE_REFIT_RULE


def kept_kernel(path: Path, make):
    """The kernel kept at ``path`` (``.npy``, its provenance beside it as ``.json``, both exactly as
    made), or ``make()``'s, kept there first."""
    from blindsr.kernel import SRKernel
    from blindsr.outputs import write_json

    sidecar = path.with_suffix(".json")
    if path.exists() and sidecar.exists():
        return SRKernel(np.load(path), 2, provenance=json.loads(sidecar.read_text()))
    kernel = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, kernel.array)
    write_json(sidecar, kernel.provenance)
    return kernel


@functools.lru_cache(maxsize=None)
def sr_backend(name: str):
    """A back-end as the hard-set benchmarks run it, built once per process: SRMD with
    ``noise=auto``, ZSSR with its default preset (``name``: "SRMD" or "ZSSR")."""
    from blindsr.backends import get_backend

    return get_backend(name.lower(), device="cpu", **({"noise": "auto"} if name == "SRMD" else {}))
