"""Choosing the handoff width on held-out images (make bench-handoff) -> the 'handoff' section of
docs/BENCHMARKS.md.

KernelGAN (default preset, seed 0) estimates the x2 kernels of BSD100RK images 1-N (through
``blindsr eval``, cached under ``--work`` and shared with bench-table1). SRMD x2 then super-resolves
every image with the estimate narrowed to each candidate width (``SRKernel.narrowed``). The width
with the best mean Y-PSNR on the selection images (6-N) is the one to ship; images 1-5, on which
the issues' Table-1 goals are stated, are reported separately and play no part in the choice.
SRMD is used for the sweep because it costs about a second per image; bench-table1 checks the
chosen width with ZSSR.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmarks.common import write_section
from blindsr.backends import adapt
from blindsr.backends.srmd import SRMDBackend
from blindsr.config import HANDOFF_WIDTH
from blindsr.degradation import quantize
from blindsr.images import read_image
from blindsr.kernel import SRKernel, kernel_paths, load_kernel
from blindsr.metrics import y_psnr_ssim
from blindsr.tables import markdown_table
from blindsr.evaluation import stage_key

WIDTHS = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6)
TEST_IMAGES = 5


def estimates(data: Path, work: Path, images: int) -> Path:
    """KernelGAN's kernels for images 1-``images`` (computed once, cached); their folder."""
    out = work / "x2"
    subprocess.run([sys.executable, "-m", "blindsr", "eval", f"dataset={data}", "scale=2", f"limit={images}",
                    "estimator=[kernelgan]", "sr=[none]", f"output={out}", "overwrite=true"], check=True,
                   stdout=subprocess.DEVNULL)
    table = json.loads((out / "eval_x2_kernelgan.json").read_text())
    return out / "tasks_x2" / stage_key("estimator", table["estimators"]["kernelgan"]) / "kernels"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="BSD100RK folder")
    parser.add_argument("--work", type=Path, default=Path("build/bench-table1"), help="result cache")
    parser.add_argument("--images", type=int, default=20)
    args = parser.parse_args()
    kernels = estimates(args.data, args.work, args.images)
    backend = SRMDBackend()
    per_image = []
    for i in range(1, args.images + 1):
        name = f"im_{i}"
        lr = read_image(args.data / "lr_x2" / f"{name}.png").rgb
        hr = read_image(args.data / "gt" / f"{name}.png").rgb
        estimate = load_kernel(kernel_paths(kernels, name, 2)["npy"])
        truth = SRKernel.from_array(np.load(args.data / "gt_k_x2" / f"kernel_{i}.npy"), 2)
        row = {"image": name}
        for label, kernel in [*((f"{w:g}", estimate.narrowed(w)) for w in WIDTHS), ("true kernel", truth)]:
            sr = quantize(backend.super_resolve(lr, 2, adapt({2: kernel}, backend.needs, 2)).image)
            row[label] = y_psnr_ssim(sr[:hr.shape[0], :hr.shape[1]], hr, 2)[0]
        per_image.append(row)
        print(name, {k: round(v, 2) for k, v in row.items() if k != "image"}, flush=True)
    labels = [f"{w:g}" for w in WIDTHS] + ["true kernel"]
    sets = {"selection (6-%d)" % args.images: per_image[TEST_IMAGES:], "test (1-5)": per_image[:TEST_IMAGES]}
    means = [{"images": s, **{label: float(np.mean([r[label] for r in rows])) for label in labels}}
             for s, rows in sets.items()]
    selection = means[0]
    best = max((f"{w:g}" for w in WIDTHS), key=lambda label: selection[label])
    body = (f"SRMD x2 Y-PSNR (dB) with KernelGAN's estimate narrowed to each width (1 = as estimated), and with "
            f"the true kernel for reference; BSD100RK images 1-{args.images}, KernelGAN default preset, seed 0. "
            f"SRMD as the pipeline runs it (`sr.noise=auto`: the noise sigma the estimate recorded; with the "
            f"true kernel, the sigma fitted with it), where bench-table1 gives it the paper's sigma 0: the "
            f"same width scores differently there.\n\n"
            f"{markdown_table(means, ['images', *labels], 2)}\n\n"
            f"Best width on the selection images: **{best}** (test images: {means[1][best]:.2f} dB vs "
            f"{means[1]['1']:.2f} dB at width 1). Shipped default (`handoff_width`): **{HANDOFF_WIDTH:g}**.\n\n"
            f"Per image:\n\n{markdown_table(per_image, ['image', *labels], 2)}\n")
    write_section("handoff", "Handoff width: chosen on held-out images", body, "bench-handoff")


if __name__ == "__main__":
    main()
