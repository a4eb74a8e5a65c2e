"""ZSSR back-end speed and quality (make bench-zssr) -> the 'zssr' section of docs/BENCHMARKS.md.

1. Overhead, side by side in one run: seconds per ZSSR training iteration (father crop, son by
   strided convolution, bicubic upscaling, weighted L1, Adam, reconstruction test every 50
   iterations) vs the bare network step (forward + backward + Adam on a fixed 128x128 input),
   alternating rounds on the same image; the ratio of the medians (goal <= 1.25).
2. Whole runs with the ground-truth kernels (preset kernelgan, seed 0): x2 on BSD100RK images 1-N
   and the gradual x4 (x2 then x4 stage, kernels k2 and k4) on image 1; wall time (goal: a full x2
   run <= 5 minutes), iterations per stage, and Y-PSNR/SSIM (s pixels shaved, outputs rounded to
   8 bits) against bicubic interpolation of the same LR image.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import zssr
from benchmarks.common import write_section
from blindsr.degradation import imresize, quantize
from blindsr.images import read_image
from blindsr.kernel import load_kernel
from blindsr.metrics import y_psnr_ssim
from blindsr.tables import markdown_table, mean_row
from zssr.network import ZSSRNet

OVERHEAD_GOAL = 1.25
X2_GOAL_S = 300.0


def bare_step_seconds(iterations: int, seed: int = 0) -> float:
    """Seconds per forward + backward + Adam step of the bare network on a 128x128 input."""
    settings = zssr.preset("kernelgan")
    net = ZSSRNet(3, settings.depth, settings.width, settings.init_variance,
                  torch.Generator().manual_seed(seed)).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=settings.learning_rate)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, settings.crop_size, settings.crop_size, generator=gen)
    target = torch.rand(1, 3, settings.crop_size, settings.crop_size, generator=gen)
    start = time.perf_counter()
    for _ in range(iterations):
        loss = (net(x) - target).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - start) / iterations


def zssr_iteration_seconds(lr: np.ndarray, kernel: np.ndarray, iterations: int) -> float:
    """Seconds per ZSSR training iteration (training loop only, no final output)."""
    result = zssr.super_resolve(lr, 2, [kernel], zssr.preset("kernelgan", max_iters=iterations,
                                                              back_projection_iters=0, precision="fp32"))
    (stage,) = result.diagnostics["stages"]
    return stage["train_seconds"] / stage["iterations"]


def overhead(data: Path, iterations: int, rounds: int) -> tuple[str, float]:
    lr = read_image(data / "lr_x2" / "im_1.png").rgb
    kernel = load_kernel(data / "gt_k_x2" / "kernel_1.npy", 2).array
    bare, full = [], []
    for r in range(rounds):
        bare.append(bare_step_seconds(iterations))
        full.append(zssr_iteration_seconds(lr, kernel, iterations))
        print(f"round {r}: bare {bare[-1]:.4f} s, zssr {full[-1]:.4f} s", flush=True)
    ratio = statistics.median(full) / statistics.median(bare)
    rows = [{"round": r + 1, "bare step (s)": b, "ZSSR iteration (s)": f, "ratio": f / b}
            for r, (b, f) in enumerate(zip(bare, full))]
    text = (f"BSD100RK lr_x2/im_1 ({lr.shape[1]}x{lr.shape[0]}), ground-truth kernel, {iterations} iterations "
            f"per measurement, {rounds} alternating rounds, fp32 both:\n\n"
            + markdown_table(rows, ["round", "bare step (s)", "ZSSR iteration (s)", "ratio"], digits=3)
            + f"\n\nOverhead ratio (median ZSSR iteration / median bare step): **{ratio:.3f}x** "
            f"(goal <= {OVERHEAD_GOAL}x: {'met' if ratio <= OVERHEAD_GOAL else 'NOT met'}). "
            f"The net's own cost is ~22 GFLOP per step (forward + backward at 128x128).")
    return text, ratio


def whole_run(data: Path, number: int, scale: int, precision: str = "auto") -> dict:
    lr = read_image(data / f"lr_x{scale}" / f"im_{number}.png").rgb
    hr = read_image(data / "gt" / f"im_{number}.png").rgb
    kernels = [load_kernel(data / f"gt_k_x{s}" / f"kernel_{number}.npy", s).array for s in zssr.stages(scale)]
    start = time.perf_counter()
    result = zssr.super_resolve(lr, scale, kernels, zssr.preset("kernelgan", precision=precision), seed=0)
    seconds = time.perf_counter() - start
    psnr, ssim = y_psnr_ssim(quantize(result.image), hr, scale)
    bicubic_psnr, bicubic_ssim = y_psnr_ssim(quantize(np.clip(imresize(lr, float(scale)), 0, 1)), hr, scale)
    stages = result.diagnostics["stages"]
    row = {"image": f"im_{number}", "scale": f"x{scale}", "precision": result.diagnostics["precision"],
           "LR size": f"{lr.shape[1]}x{lr.shape[0]}",
           "seconds": seconds, "iterations": " + ".join(str(s["iterations"]) for s in stages),
           "LR drops at": "; ".join(",".join(map(str, s["lr_drops"])) or "none" for s in stages),
           "ZSSR Y-PSNR": psnr, "bicubic Y-PSNR": bicubic_psnr, "gain (dB)": psnr - bicubic_psnr,
           "ZSSR Y-SSIM": ssim, "bicubic Y-SSIM": bicubic_ssim}
    print(row, flush=True)
    return row


def runs(data: Path, x2_images: int) -> tuple[str, list[dict]]:
    """x2 runs in fp32 and in the default precision (bf16 where native), then the gradual x4."""
    numeric = ["seconds", "ZSSR Y-PSNR", "bicubic Y-PSNR", "gain (dB)", "ZSSR Y-SSIM", "bicubic Y-SSIM"]
    columns = ["image", "scale", "precision", "LR size", "seconds", "iterations", "LR drops at", *numeric[1:]]
    digits = {"seconds": 0, "ZSSR Y-SSIM": 4, "bicubic Y-SSIM": 4}
    tables, means = [], {}
    for precision in ("fp32", "auto"):
        rows = [whole_run(data, n, 2, precision) for n in range(1, x2_images + 1)]
        means[precision] = mean_row(rows, numeric, "image")
        tables.append(rows + ([means[precision]] if len(rows) > 1 else []))
        default_rows = rows
    x4 = whole_run(data, 1, 4)
    worst = max(r["seconds"] for r in default_rows)
    speedup = means["fp32"]["seconds"] / means["auto"]["seconds"]
    cost = means["auto"]["ZSSR Y-PSNR"] - means["fp32"]["ZSSR Y-PSNR"]
    text = (markdown_table([r for t in tables for r in t] + [x4], columns, digits)
            + f"\n\nDefault precision ({default_rows[0]['precision']}) vs fp32: **{speedup:.2f}x** faster, "
            f"{cost:+.2f} dB mean Y-PSNR. Slowest full x2 run (default): **{worst:.0f} s** "
            f"(goal <= {X2_GOAL_S:.0f} s: {'met' if worst <= X2_GOAL_S else 'NOT met'}). "
            f"Gradual x4: **{x4['seconds']:.0f} s**. Mean x2 gain over bicubic interpolation: "
            f"**{means['auto']['gain (dB)']:+.2f} dB**.")
    return text, default_rows + [x4]


def main() -> None:
    default_data = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "BSD100RK"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data, help="BSD100RK folder")
    parser.add_argument("--x2-images", type=int, default=2)
    parser.add_argument("--speed-iterations", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads; 0: all cores (on a shared machine 1 is safer: a "
                             "thread waiting for a busy core slows every convolution down)")
    args = parser.parse_args()
    if not (args.data / "lr_x2").is_dir():
        raise SystemExit(f"{args.data}: BSD100RK not found (set DATA=...)")
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    speed_text, _ = overhead(args.data, args.speed_iterations, args.rounds)
    runs_text, _ = runs(args.data, args.x2_images)
    load_after = os.getloadavg()[0]
    context = (f"{torch.get_num_threads()} torch thread(s); load average {load_before:.1f} at the start and "
               f"{load_after:.1f} at the end (other jobs share the machine, so seconds are upper bounds).")
    write_section("zssr", "ZSSR back-end", "\n\n".join([
        context, "### Iteration overhead\n\n" + speed_text,
        "### Whole runs, ground-truth kernels (preset kernelgan)\n\n" + runs_text]), "bench-zssr")
    print("updated docs/BENCHMARKS.md")


if __name__ == "__main__":
    main()
