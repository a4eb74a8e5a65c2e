"""Peak memory and time of ``pipeline`` and ``estimate`` on photos of a few and of many megapixels
(make bench-memory) -> the 'memory' section of docs/BENCHMARKS.md.

Each run is a separate ``python -m blindsr`` process; its peak resident memory is read with
``getrusage(RUSAGE_CHILDREN)`` from a wrapper process that runs only it. Two inputs:

* photo: scikit-image's "coffee" (CC0) enlarged to 2000x1500; ``pipeline`` x2 with each back-end,
  each twice: as shipped, and with glibc's malloc left as it comes (``BLINDSR_ALLOCATOR=default``:
  ``blindsr.runtime.keep_freed_memory`` off), so that what keeping freed memory costs is measured.
* large: a 4000x3000 (12 MP) mosaic of scikit-image's public-domain and CC0 colour photos at their
  own resolution (astronaut, chelsea, coffee, rocket): the default KernelGAN estimate alone, and
  ``pipeline`` with the bicubic kernel handed to the bicubic and ZSSR back-ends (their output
  stages at 48 MP, the part that grows with the photo).

Peak memory does not depend on how many training iterations run, so ZSSR is capped at
``--zssr-iterations`` to keep the benchmark short (its reconstruction tests and full-size output,
the memory peaks, run as in a full run). ``--before REV`` runs every command a second time with the
code of revision REV (a git worktree of it), side by side, and compares the results: the kernel
files bit for bit, SR images by their largest difference in 8-bit levels.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import revision, worktree, write_section
from blindsr.degradation import imresize
from blindsr.demo import sample_image
from blindsr.images import read_image, write_image
from blindsr.runtime import ALLOCATOR_ENV, allocator_environment
from blindsr.tables import markdown_table
from blindsr.weights import ENV_PREFIX

ROOT = Path(__file__).resolve().parents[1]
WRAPPER = ("import resource, subprocess, sys, json, time; t = time.time(); "
           "code = subprocess.run(sys.argv[1:]).returncode; "
           "print(json.dumps({'code': code, 'seconds': time.time() - t, "
           "'peak_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))")
LARGE_SHAPE = (3000, 4000)
MOSAIC = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")  # public domain or CC0


def skimage_photo(name: str) -> np.ndarray:
    return read_image(sample_image(f"data/{name}")).rgb


def photo(path: Path) -> Path:
    return write_image(path, imresize(skimage_photo("coffee.png"), output_shape=(1500, 2000)).clip(0, 1))


def mosaic(path: Path, shape: tuple[int, int] = LARGE_SHAPE) -> Path:
    """The photos of ``MOSAIC`` at their own resolution, cut to the lowest one's height and tiled
    row by row in turn."""
    tiles = [skimage_photo(name) for name in MOSAIC]
    height = min(t.shape[0] for t in tiles)
    canvas = np.zeros((*shape, 3))
    turn = 0
    for top in range(0, shape[0], height):
        left = 0
        while left < shape[1]:
            tile = tiles[turn % len(tiles)]
            turn += 1
            h, w = min(height, shape[0] - top), min(tile.shape[1], shape[1] - left)
            canvas[top:top + h, left:left + w] = tile[:h, :w]
            left += w
    return write_image(path, canvas)


def measure(code: Path, verb: str, image: Path, out: Path, extra: list[str], env: dict[str, str]) -> dict:
    """One ``python -m blindsr`` run with ``code``'s blindsr (and its zssr and srmd) first on the path."""
    cmd = [sys.executable, "-m", "blindsr", verb, f"input={image}", f"output={out}", "scale=2", "overwrite=true",
           *extra]
    # The child runs in ``code`` (``-m`` puts it first on the path): paths given relative to here move with it.
    paths = {k: str(Path(v).resolve()) for k, v in env.items() if k.startswith(ENV_PREFIX) and v}
    env = dict(env, **paths, PYTHONPATH=os.pathsep.join([str(code), str(code / "third_party")]))
    result = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True, env=env, cwd=code)
    info = json.loads(result.stdout.strip().splitlines()[-1])
    if info["code"] != 0:
        raise SystemExit(f"{verb} {' '.join(extra)} failed: {result.stderr.strip()[-500:]}")
    return info


def compare(before: Path, now: Path) -> str:
    """How the two runs' results differ: kernel files bit for bit, SR images in 8-bit levels."""
    kernels = sorted(p.name for p in now.glob("*_kernel_x2.npy"))
    same = all(hashlib.sha256((before / k).read_bytes()).digest() == hashlib.sha256((now / k).read_bytes()).digest()
               for k in kernels)
    words = [f"kernel {'identical' if same else 'differs'}"] if kernels else []
    for image in sorted(p for p in now.glob("*_x2.png") if "_kernel_" not in p.name):
        pair = [read_image(folder / image.name, max_pixels=sys.maxsize).rgb for folder in (before, now)]  # 48 MP
        diff = np.abs(pair[0] - pair[1]).max() * 255
        words.append("SR identical" if diff == 0 else f"SR differs by up to {diff:.0f} level{'s' * (round(diff) != 1)}")
    return ", ".join(words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zssr-iterations", type=int, default=200)
    parser.add_argument("--before", help="a revision to run side by side (from a git worktree of it)")
    parser.add_argument("--work", type=Path, default=Path("build/memory"),
                        help="where --before's worktree and the finished runs are kept (a re-run resumes)")
    parser.add_argument("--remark", action="append", default=[], help="a line added to the section")
    args = parser.parse_args()
    codes = {"now": ROOT}
    if args.before:
        args.work.mkdir(parents=True, exist_ok=True)
        codes = {"before": worktree(args.before, args.work.resolve()), **codes}
    zssr = ["sr=zssr", f"sr.max_iters={args.zssr_iterations}"]
    runs = [("photo", "pipeline", name, extra, allocator)
            for name, extra in (("bicubic", ["sr=bicubic"]), ("srmd", ["sr=srmd"]), ("zssr", zssr))
            for allocator in ("kept", "default")]
    runs += [("large", "estimate", "kernelgan", [], "kept"),
             ("large", "pipeline", "bicubic", ["estimator=bicubic", "sr=bicubic"], "kept"),
             ("large", "pipeline", "zssr", ["estimator=bicubic", *zssr], "kept")]
    rows = []
    # Finished runs of this revision (a resumed run keeps what it measured; another revision measures again).
    done = args.work / f"rows-{revision()}-{args.before or 'alone'}-{args.zssr_iterations}"
    done.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        images = {"photo": photo(Path(tmp) / "coffee_2000x1500.png"),
                  "large": mosaic(Path(tmp) / "mosaic_4000x3000.png")}
        for part, verb, name, extra, allocator in runs:
            cached = done / f"{part}_{verb}_{name}_{allocator}.json"
            if cached.is_file():
                rows.append(json.loads(cached.read_text()))
                continue
            row = {"input": {"photo": "2000x1500", "large": "4000x3000"}[part], "verb": verb, "back-end": name,
                   "freed memory": ("kept (as shipped)" if allocator == "kept"
                                    else f"returned ({ALLOCATOR_ENV}=default)"),
                   "settings": " ".join(extra)}
            outs = {}
            for label, code in codes.items():
                outs[label] = Path(tmp) / f"{part}_{name}_{allocator}_{label}"
                info = measure(code, verb, images[part], outs[label], extra, allocator_environment(allocator == "kept"))
                row[f"peak MB ({label})" if args.before else "peak memory (MB)"] = info["peak_mb"]
                row[f"seconds ({label})" if args.before else "seconds"] = info["seconds"]
            if args.before:
                row["results"] = compare(outs["before"], outs["now"])
            rows.append(row)
            cached.write_text(json.dumps(row))
            print(row, flush=True)
    columns = [c for c in rows[0] if c != "settings"] + ["settings"]
    side = (f" Each run twice, side by side: with the code of revision {args.before} ('before') and of this "
            "revision ('now'); 'results' compares their outputs." if args.before else "")
    body = ("Peak resident memory and wall time of one `python -m blindsr` process, x2. 2000x1500: scikit-image's "
            "coffee (CC0) enlarged, the whole pipeline with the default KernelGAN estimate. 4000x3000: a mosaic of "
            "scikit-image's public-domain and CC0 colour photos at their own resolution (12 MP in, 48 MP out); the "
            "default KernelGAN estimate alone, and the bicubic kernel handed to the bicubic and ZSSR back-ends. "
            f"ZSSR trains {args.zssr_iterations} iterations (peak memory does not depend on how many)." + side
            + "".join(f"\n\n{line}" for line in args.remark) + "\n\n" + markdown_table(rows, columns, digits=0)
            + "\n\nBounded by tiling and blocks: SRMD runs on 512-px LR tiles, ZSSR's network passes on 512-px output "
              "tiles; bicubic resizing gathers its taps block by block, and ZSSR's resize operators are applied "
              "from their taps past 4M entries; KernelGAN holds the image and one full-size crop map at a time, "
              "makes its image tensors a colour plane at a time and its bicubic target in bands of rows. "
              "The PNG writer quantises a block of rows at a time; the bicubic back-end upscales in bands of "
              "output rows; ZSSR releases its training copies before its output stage, makes its float64 "
              "result in its own memory (the float32 SR in its first half, widened in place), checks it for "
              "non-finite values band by band and back-projects in place.")
    write_section("memory", "Peak memory of the pipeline (2000x1500 and 4000x3000 inputs, x2)", body, "bench-memory")
    print("updated docs/BENCHMARKS.md")


if __name__ == "__main__":
    main()
