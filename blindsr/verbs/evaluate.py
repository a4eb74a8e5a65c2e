"""``eval``: score kernel estimation and SR on a DIV2KRK-layout benchmark (the KernelGAN paper's
Table 1 rows).

Per image and mean: kernel PSNR and LR-reconstruction PSNR of the estimated kernel (definitions in
``blindsr.metrics``) with the bicubic kernel as the baseline, Y-channel PSNR/SSIM of the SR result
when a back-end is chosen (``sr=zssr|srmd|bicubic``), and seconds per stage. ``estimator=gt`` uses
the benchmark's true kernels (the upper bound of a blind method). Prints a markdown table and
writes ``<output>/eval_x{s}_<estimator>[_<sr>].{csv,json}``.
"""
from __future__ import annotations

import datetime
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from blindsr import __version__
from blindsr.backends import Backend
from blindsr.datasets import BenchmarkImage, load_benchmark
from blindsr.degradation import bicubic_kernel, quantize
from blindsr.errors import InputError
from blindsr.estimators import Estimator
from blindsr.images import read_image
from blindsr.kernel import SRKernel, load_kernel
from blindsr.metrics import KERNEL_PSNR_FORMULA, LR_PSNR_FORMULA, kernel_psnr, lr_psnr, y_psnr_ssim
from blindsr.outputs import prepare_output_dir
from blindsr.stages import build_backend, build_estimator, check_scale, progress_bar, super_resolve
from blindsr.tables import markdown_table, mean_row, write_tables

KERNEL_COLUMNS = ["kernel_psnr", "lr_psnr", "bicubic_kernel_psnr", "bicubic_lr_psnr"]
SR_COLUMNS = ["psnr", "ssim"]
SR_FORMULA = ("Y-channel PSNR/SSIM (MATLAB rgb2ycbcr, border = scale, float64; SSIM 11x11 Gaussian, "
              "sigma 1.5), SR output rounded to 8 bits")


def machine() -> dict[str, str]:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
            "cpu_count": str(os.cpu_count())}


def true_kernels(entry: BenchmarkImage, scale: int) -> dict[int, SRKernel]:
    """The benchmark's own kernels: the target scale's, and x2 as well for x4 (gradual SR)."""
    wanted = (2, 4) if scale == 4 else (scale,)
    missing = [s for s in wanted if s not in entry.kernels]
    if missing:
        raise InputError(f"{entry.name}: no ground-truth kernel in gt_k_x{missing[0]}/")
    return {s: load_kernel(entry.kernels[s], s) for s in wanted}


def evaluate_image(entry: BenchmarkImage, scale: int, estimator_name: str, estimator: Estimator | None,
                   backend: Backend | None, seed: int = 0, progress=None) -> dict[str, Any]:
    """One benchmark row: kernel metrics (when an estimator ran and the truth is known), SR
    metrics (when a back-end is given), and seconds per stage."""
    lr = read_image(entry.lr)
    hr = read_image(entry.gt).rgb
    row: dict[str, Any] = {"image": entry.name}
    start = time.perf_counter()
    if estimator is None:
        kernels = true_kernels(entry, scale)
    else:
        kernels = estimator.estimate(lr.rgb, scale, seed=seed, progress=progress).kernels
    row["estimate_s"] = time.perf_counter() - start
    if scale in entry.kernels:
        truth = load_kernel(entry.kernels[scale], scale)
        for prefix, kernel in (("", kernels[scale]), ("bicubic_", bicubic_kernel(scale))):
            row[f"{prefix}kernel_psnr"] = kernel_psnr(kernel, truth, size=truth.size)
            row[f"{prefix}lr_psnr"] = lr_psnr(hr, kernel, lr.rgb, scale)
    if backend is not None:
        start = time.perf_counter()
        sr, _, _ = super_resolve(lr, kernels, backend, scale, seed, progress)
        row["sr_s"] = time.perf_counter() - start
        hr = hr[:sr.shape[0], :sr.shape[1]]
        row["psnr"], row["ssim"] = y_psnr_ssim(quantize(sr), hr, scale)
    return row


def run(cfg: DictConfig) -> int:
    scale = check_scale(cfg.scale)
    entries = load_benchmark(cfg.dataset, scale, cfg.limit)
    name, sr_name = cfg.estimator.name, cfg.sr.name
    estimator = None if name == "gt" else build_estimator(cfg.estimator, cfg.device)
    backend = None if sr_name == "none" else build_backend(cfg.sr, cfg.device)
    stem = Path(cfg.output) / (f"eval_x{scale}_{name}" + ("" if backend is None else f"_{sr_name}"))
    out = prepare_output_dir(cfg.output, [stem.with_suffix(".csv"), stem.with_suffix(".json")], cfg.overwrite)
    per_image = (estimator.iterations(scale) if estimator else 0)
    rows = []
    with progress_bar(per_image * len(entries), f"eval x{scale}") as bar:
        for entry in entries:
            rows.append(evaluate_image(entry, scale, name, estimator, backend, cfg.seed, bar.update))
    columns = ["image"] + [c for c in KERNEL_COLUMNS + SR_COLUMNS if any(c in r for r in rows)]
    columns += [c for c in ("estimate_s", "sr_s") if any(c in r for r in rows)]
    table = markdown_table(rows + [mean_row(rows, columns, "image")], columns, digits={"ssim": 4})
    meta = {"dataset": str(cfg.dataset), "scale": scale, "estimator": OmegaConf.to_container(cfg.estimator),
            "sr": OmegaConf.to_container(cfg.sr), "seed": cfg.seed,
            "kernel_psnr": KERNEL_PSNR_FORMULA + " (canvas: the true kernel's size)",
            "lr_psnr": LR_PSNR_FORMULA, "psnr_ssim": SR_FORMULA, "version": __version__,
            "machine": machine(), "date": datetime.datetime.now().isoformat(timespec="seconds")}
    csv_path, json_path = write_tables(stem, rows, columns, meta)
    print(f"{name} kernels" + ("" if backend is None else f" + {sr_name}")
          + f", x{scale}, {len(rows)} images of {cfg.dataset}")
    print(f"kernel_psnr: {KERNEL_PSNR_FORMULA}; lr_psnr: {LR_PSNR_FORMULA}; psnr/ssim: {SR_FORMULA}\n")
    print(table)
    print(f"\nwrote {csv_path} and {json_path}")
    return 0
