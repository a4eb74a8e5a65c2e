"""``eval``: score kernel estimation on a DIV2KRK-layout benchmark.

Per image and mean: kernel PSNR and LR-reconstruction PSNR (definitions in ``blindsr.metrics``),
seconds, and the same metrics for the plain bicubic kernel as the baseline. Prints a markdown table
and writes ``<output>/eval_x{s}_<estimator>.{csv,json}``.
"""
from __future__ import annotations

import datetime
import platform
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from blindsr import __version__
from blindsr.datasets import BenchmarkImage, load_benchmark
from blindsr.degradation import bicubic_kernel
from blindsr.errors import InputError
from blindsr.images import read_image
from blindsr.kernel import SRKernel, load_kernel
from blindsr.metrics import KERNEL_PSNR_FORMULA, LR_PSNR_FORMULA, kernel_psnr, lr_psnr
from blindsr.outputs import prepare_output_dir
from blindsr.stages import build_estimator, check_scale, progress_bar
from blindsr.tables import markdown_table, mean_row, write_tables

COLUMNS = ["image", "kernel_psnr", "lr_psnr", "seconds", "bicubic_kernel_psnr", "bicubic_lr_psnr"]


def machine() -> dict[str, str]:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
            "cpu_count": str(__import__("os").cpu_count())}


def true_kernel(entry: BenchmarkImage, scale: int) -> SRKernel:
    if entry.kernel is None:
        raise InputError(f"{entry.name}: no ground-truth kernel in gt_k_x{scale}/")
    return load_kernel(entry.kernel, scale)


def score_kernel(kernel: SRKernel, truth: SRKernel, hr: np.ndarray, lr: np.ndarray,
                 scale: int) -> dict[str, float]:
    """Kernel PSNR on the ground truth's canvas, and LR-reconstruction PSNR."""
    return {"kernel_psnr": kernel_psnr(kernel, truth, size=truth.size),
            "lr_psnr": lr_psnr(hr, kernel, lr, scale)}


def run(cfg: DictConfig) -> int:
    scale = check_scale(cfg.scale)
    entries = load_benchmark(cfg.dataset, scale, cfg.limit)
    name = cfg.estimator.name
    estimator = None if name == "gt" else build_estimator(cfg.estimator, cfg.device)
    stem = Path(cfg.output) / f"eval_x{scale}_{name}"
    out = prepare_output_dir(cfg.output, [stem.with_suffix(".csv"), stem.with_suffix(".json")],
                             cfg.overwrite)
    baseline = bicubic_kernel(scale)
    rows = []
    per_image = estimator.iterations(scale) if estimator else 0
    with progress_bar(per_image * len(entries), f"eval x{scale}") as bar:
        for entry in entries:
            lr = read_image(entry.lr).rgb
            hr = read_image(entry.gt).rgb
            truth = true_kernel(entry, scale)
            start = time.perf_counter()
            if estimator is None:
                kernel = truth
            else:
                kernel = estimator.estimate(lr, scale, seed=cfg.seed, progress=bar.update).kernels[scale]
            seconds = time.perf_counter() - start
            ours = score_kernel(kernel, truth, hr, lr, scale)
            base = score_kernel(baseline, truth, hr, lr, scale)
            rows.append({"image": entry.name, **ours, "seconds": seconds,
                         "bicubic_kernel_psnr": base["kernel_psnr"], "bicubic_lr_psnr": base["lr_psnr"]})
    table = markdown_table(rows + [mean_row(rows, COLUMNS, "image")], COLUMNS)
    meta = {"dataset": str(cfg.dataset), "scale": scale, "estimator": OmegaConf.to_container(cfg.estimator),
            "seed": cfg.seed, "kernel_psnr": KERNEL_PSNR_FORMULA + " (canvas: the true kernel's size)",
            "lr_psnr": LR_PSNR_FORMULA, "version": __version__, "machine": machine(),
            "date": datetime.datetime.now().isoformat(timespec="seconds")}
    csv_path, json_path = write_tables(stem, rows, COLUMNS, meta)
    print(f"{name} kernels, x{scale}, {len(rows)} images of {cfg.dataset}")
    print(f"kernel_psnr: {KERNEL_PSNR_FORMULA}; lr_psnr: {LR_PSNR_FORMULA}\n")
    print(table)
    print(f"\nwrote {csv_path} and {json_path}")
    return 0
