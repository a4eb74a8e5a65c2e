"""Peak memory of ``pipeline`` on a 2000x1500 input at x2, per back-end (make bench-memory) -> the
'memory' section of docs/BENCHMARKS.md.

Each run is a separate ``python -m blindsr pipeline`` process; its peak resident memory is read
with ``getrusage(RUSAGE_CHILDREN)`` from a wrapper process that runs only it. The input is
scikit-image's "coffee" photo (CC0) enlarged to 2000x1500. Peak memory does not depend on how many
training iterations run, so ZSSR is capped at ``--zssr-iterations`` to keep the benchmark short
(its reconstruction tests and tiled final pass, the memory peaks, all run as in a full run).
Each back-end runs twice: as shipped, and with glibc's malloc left as it comes
(``BLINDSR_ALLOCATOR=default``: ``blindsr.runtime.keep_freed_memory`` off), so that what keeping
freed memory costs in peak memory is measured.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import write_section
from blindsr.degradation import imresize
from blindsr.images import read_image, write_image
from blindsr.runtime import ALLOCATOR_ENV, allocator_environment
from blindsr.tables import markdown_table

WRAPPER = ("import resource, subprocess, sys, json, time; t = time.time(); "
           "code = subprocess.run(sys.argv[1:]).returncode; "
           "print(json.dumps({'code': code, 'seconds': time.time() - t, "
           "'peak_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))")


def sample(path: Path) -> Path:
    import importlib.util

    spec = importlib.util.find_spec("skimage")
    coffee = Path(list(spec.submodule_search_locations)[0]) / "data" / "coffee.png"
    rgb = read_image(coffee).rgb
    return write_image(path, imresize(rgb, output_shape=(1500, 2000)).clip(0, 1))


def measure(image: Path, out: Path, extra: list[str], env: dict[str, str]) -> dict:
    cmd = [sys.executable, "-m", "blindsr", "pipeline", f"input={image}", f"output={out}", "scale=2",
           "overwrite=true", *extra]
    result = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True, env=env)
    info = json.loads(result.stdout.strip().splitlines()[-1])
    if info["code"] != 0:
        raise SystemExit(f"{' '.join(extra)} failed: {result.stderr.strip()[-500:]}")
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zssr-iterations", type=int, default=200)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        image = sample(Path(tmp) / "coffee_2000x1500.png")
        for name, extra in (("bicubic", ["sr=bicubic"]), ("srmd", ["sr=srmd"]),
                            ("zssr", ["sr=zssr", f"sr.max_iters={args.zssr_iterations}"])):
            for allocator in ("kept", "default"):
                start = time.perf_counter()
                env = allocator_environment(allocator == "kept")
                info = measure(image, Path(tmp) / f"{name}_{allocator}", extra, env)
                rows.append({"back-end": name, "freed memory": "kept (as shipped)" if allocator == "kept" else
                             f"returned ({ALLOCATOR_ENV}=default)", "peak memory (MB)": info["peak_mb"],
                             "seconds": time.perf_counter() - start, "settings": " ".join(extra)})
                print(rows[-1], flush=True)
    body = ("`python -m blindsr pipeline` on a 2000x1500 RGB photo (scikit-image's coffee, CC0, "
            "enlarged), x2, default KernelGAN estimate; peak resident memory of the whole process:\n\n"
            + markdown_table(rows, ["back-end", "freed memory", "peak memory (MB)", "seconds", "settings"],
                             digits=0)
            + "\n\nBounded by tiling: SRMD runs on 512-px LR tiles, ZSSR's full-image passes on 512-px "
              "output tiles; KernelGAN only ever holds the image and its crop maps.")
    write_section("memory", "Peak memory of the pipeline (2000x1500 input, x2)", body, "bench-memory")
    print("updated docs/BENCHMARKS.md")


if __name__ == "__main__":
    main()
