"""Folder runs at scale (make bench-batch) -> the 'batch' section of docs/BENCHMARKS.md.

The same ``batch`` over a folder of photos (the real set) run five ways, compared by hash:
  serial     the reference, uninterrupted
  killed     started, ``kill -9`` once ``--kill-after`` images are complete, then re-run (resume)
  local      ``executor=local``, 2 worker processes with one torch thread each
  submitit   ``executor=submitit executor.cluster=local`` (submitit's local mode, 2 tasks at a time)
  ray        ``executor=ray`` on a local Ray head started on 127.0.0.1 for the run and stopped after
Kernels must be identical across all five (same seeds, CPU); SR images too for a deterministic
back-end. Each run goes to its own folder under ``--work`` (fresh each time).
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import write_section
from blindsr.tables import markdown_table

RAY_PORT = 26481


def digest(folder: Path, pattern: str, exclude: str | None = None) -> tuple[str, int]:
    files = sorted(p for p in folder.rglob(pattern) if exclude is None or exclude not in p.name)
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(folder)).encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()[:16], len(files)


def batch_cmd(folder: Path, out: Path, sr: str, scale: int, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "blindsr", "batch", f"input={folder}", f"output={out}", f"sr={sr}",
            f"scale={scale}", *extra]


def completed(out: Path) -> int:
    return sum(1 for _ in out.rglob("COMPLETE.json")) if out.exists() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, required=True, help="folder of photos")
    parser.add_argument("--work", type=Path, default=Path("build/bench-batch"))
    parser.add_argument("--sr", default="srmd")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--kill-after", type=int, default=4)
    parser.add_argument("--runs", default="serial,killed,local,submitit,ray")
    args = parser.parse_args()
    runs = args.runs.split(",")
    extras = {
        "serial": [],
        "local": ["executor=local", "executor.workers=2", "executor.threads_per_worker=1"],
        "submitit": ["executor=submitit", "executor.cluster=local", "executor.cpus_per_task=1",
                     "executor.array_parallelism=2"],
        "ray": ["executor=ray", f"executor.address=127.0.0.1:{RAY_PORT}"],
    }
    rows = []
    for run in runs:
        out = args.work / run
        shutil.rmtree(out, ignore_errors=True)
        start = time.time()
        note = ""
        if run == "killed":
            proc = subprocess.Popen(batch_cmd(args.input, out, args.sr, args.scale, []))
            while completed(out) < args.kill_after and proc.poll() is None:
                time.sleep(0.2)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            before = completed(out)
            code = subprocess.run(batch_cmd(args.input, out, args.sr, args.scale, [])).returncode
            note = f"kill -9 with {before} complete; the re-run did {completed(out) - before}"
        elif run == "ray":
            ray = [sys.executable, "-m", "ray.scripts.scripts"]
            subprocess.run([*ray, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={RAY_PORT}",
                            "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"], check=True,
                           capture_output=True)
            try:
                code = subprocess.run(batch_cmd(args.input, out, args.sr, args.scale, extras[run])).returncode
            finally:
                subprocess.run([*ray, "stop", "--force"], capture_output=True)
        else:
            code = subprocess.run(batch_cmd(args.input, out, args.sr, args.scale, extras[run])).returncode
        kernels, n_kernels = digest(out, f"*_kernel_x{args.scale}.npy")
        images, n_images = digest(out, f"*_x{args.scale}.png", exclude="_kernel_")
        rows.append({"run": run, "exit": code, "complete": completed(out), "minutes": (time.time() - start) / 60,
                     "kernels sha256": f"{kernels} ({n_kernels})", "images sha256": f"{images} ({n_images})",
                     "note": note})
    same_kernels = len({r["kernels sha256"] for r in rows}) == 1
    same_images = len({r["images sha256"] for r in rows}) == 1
    body = (f"`python -m blindsr batch input=real output=OUT sr={args.sr} scale={args.scale} [executor=...]` over "
            f"{args.input.name}/, five ways. Hashes: sha256 over the sorted (relative path, file sha256) pairs of "
            f"all kernels (`*_kernel_x{args.scale}.npy`) and all SR images.\n\n"
            f"{markdown_table(rows, list(rows[0]), {'minutes': 1})}\n\n"
            f"Kernels identical across runs: **{'yes' if same_kernels else 'NO'}**; "
            f"SR images identical: **{'yes' if same_images else 'NO'}**.\n")
    write_section("batch", "Folder runs: resume after kill -9, and the executors", body, "bench-batch")


if __name__ == "__main__":
    main()
