"""``eval``: score kernel estimation and SR on a DIV2KRK-layout benchmark - the KernelGAN paper's
Table 1 rows.

One combination (``estimator=kernelgan sr=zssr``) prints per-image rows and their mean; lists
(``estimator=[gt,kernelgan,bicubic] sr=[bicubic,zssr,srmd]``) print the Table-1 layout, one row per
method, with the published DIV2KRK figures beside ours when the dataset is DIV2KRK. Work runs as
resumable tasks on any executor (``blindsr.evaluation``): an interrupted evaluation re-run with the
same settings only does what is missing. Writes CSV/JSON next to the printed tables.
"""
from __future__ import annotations

import datetime
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from blindsr import __version__
from blindsr.config import group_schemas, resolved_settings
from blindsr.datasets import load_benchmark
from blindsr.errors import UsageError
from blindsr.evaluation import (TableTask, lost_task, merge, run_table_task, sr_combinations, stage_key,
                                summary_row)
from blindsr.executors import get_executor
from blindsr.metrics import KERNEL_PSNR_FORMULA, LR_PSNR_FORMULA
from blindsr.outputs import prepare_output_dir
from blindsr.progress import progress_bar
from blindsr.stages import build_backend, build_estimator, check_ready, options
from blindsr.tables import markdown_table, mean_row, write_tables

SR_FORMULA = ("Y-channel PSNR/SSIM (MATLAB rgb2ycbcr, border = scale, float64; SSIM 11x11 Gaussian, "
              "sigma 1.5), SR output rounded to 8 bits")
IMAGE_COLUMNS = ["image", "kernel_psnr", "lr_psnr", "psnr", "ssim", "bicubic_kernel_psnr", "bicubic_lr_psnr",
                 "estimate_s", "sr_s", "error"]
TABLE_COLUMNS = ["method", "psnr", "ssim", "kernel_psnr", "lr_psnr", "estimate_s", "sr_s", "images",
                 "failed", "published_psnr", "published_ssim"]
DIGITS = {"ssim": 4, "published_ssim": 4, "images": 0, "failed": 0}


def machine() -> dict[str, str]:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
            "cpu_count": str(os.cpu_count())}


def stage_configs(cfg: DictConfig, group: str, names: list[str]) -> dict[str, Any]:
    """Each listed option's typed config: the composed one for the option the command line
    selected (it carries the user's ``group.key=value`` overrides), the defaults for the others."""
    schemas = group_schemas()[group]
    out = {}
    selected = cfg[group]
    for name in names:
        if name not in schemas:
            raise UsageError(f"{group}={name}: choose from {', '.join(schemas)}")
        node = selected if selected.name == name else OmegaConf.structured(schemas[name])
        out[name] = OmegaConf.to_object(node)
    return out


def run(cfg: DictConfig) -> int:
    scale, width = cfg.scale, cfg.handoff_width
    entries = load_benchmark(cfg.dataset, scale, cfg.limit)
    est_names = list(cfg.estimators) or [cfg.estimator.name]
    sr_names = list(cfg.srs) or [cfg.sr.name]
    estimators = stage_configs(cfg, "estimator", est_names)
    backends = stage_configs(cfg, "sr", sr_names)
    # Fail fast on bad stage configs, before any work.
    learned = {name: build_estimator(config, cfg.device, benchmark=True).learned
               for name, config in estimators.items()}
    for config in backends.values():
        check_ready(build_backend(config, cfg.device, benchmark=True), scale)
    executor = get_executor(cfg.executor.name, **options(cfg.executor))
    single = len(est_names) == 1 and len(sr_names) == 1
    stem = Path(cfg.output) / (f"eval_x{scale}_{est_names[0]}" + ("" if sr_names[0] == "none" else f"_{sr_names[0]}")
                               if single else f"table_x{scale}")
    out = prepare_output_dir(cfg.output, [stem.with_suffix(".csv"), stem.with_suffix(".json")], cfg.overwrite)
    cache = out / f"tasks_x{scale}"
    common = {"scale": scale, "device": cfg.device, "seed": cfg.seed, "light": cfg.light}
    # Estimates and results in linear light are other results: kept apart in the cache.
    light_key = "" if cfg.light == "encoded" else f"+{cfg.light}"

    # Each stage's cache key once (it resolves the stage's preset), not once per task.
    e_keys = {name: stage_key("estimator", config) + light_key for name, config in estimators.items()}
    s_keys = {name: stage_key("sr", config) for name, config in backends.items()}

    def task(entry, est: str, sr: str | None) -> TableTask:
        e_key = e_keys[est]
        w = width if learned[est] else 1.0
        s_key = None if sr is None else s_keys[sr] + ("" if w == 1.0 else f"+width{w:g}")
        result = cache / (e_key if sr is None else f"{e_key}+{s_key}") / f"{entry.name}.json"
        return TableTask(entry=entry, estimator=estimators[est], sr=None if sr is None else backends[sr],
                         kernel_dir=str(cache / e_key / "kernels"), result=str(result),
                         handoff_width=1.0 if sr is None else w, **common)

    sr_combos = sr_combinations(est_names, sr_names)
    phases = [[task(entry, e, None) for e in est_names for entry in entries],
              [task(entry, e, s) for e, s in sr_combos for entry in entries]]
    results: list[dict] = []
    with progress_bar(sum(map(len, phases)), f"eval x{scale}", unit="task", stoppable=False) as bar:
        for tasks in phases:
            results += executor.run(run_table_task, tasks, lambda _: bar.update(1), lost_task)
    rows_by_combo = merge(results, est_names, sr_names, sr_combos)
    meta = {"dataset": str(cfg.dataset), "scale": scale,
            "estimators": {name: resolved_settings("estimator", config) for name, config in estimators.items()},
            "srs": {name: resolved_settings("sr", config) for name, config in backends.items()},
            "handoff_width": width, "light": cfg.light,
            "seed": cfg.seed, "kernel_psnr": KERNEL_PSNR_FORMULA + " (canvas: the true kernel's size)",
            "lr_psnr": LR_PSNR_FORMULA, "psnr_ssim": SR_FORMULA, "version": __version__,
            "machine": machine(), "date": datetime.datetime.now().isoformat(timespec="seconds")}
    div2krk = "div2krk" in Path(cfg.dataset).resolve().name.lower()
    table = [summary_row(method, rows, scale, key if div2krk else None) for (key, method), rows in rows_by_combo.items()]
    print(f"x{scale}, {len(entries)} images of {cfg.dataset}")
    print(f"kernel_psnr: {KERNEL_PSNR_FORMULA}; lr_psnr: {LR_PSNR_FORMULA}; psnr/ssim: {SR_FORMULA}\n")
    if single:
        rows = next(iter(rows_by_combo.values()))
        columns = [c for c in IMAGE_COLUMNS if any(c in r for r in rows)]
        print(markdown_table(rows + [mean_row(rows, columns, "image")], columns, DIGITS))
        csv_path, json_path = write_tables(stem, rows, columns, meta)
    else:
        columns = [c for c in TABLE_COLUMNS if any(r.get(c) is not None for r in table)]
        print(markdown_table(table, columns, DIGITS))
        per_image = [dict(r, method=m) for (_, m), rows in rows_by_combo.items() for r in rows]
        csv_path, json_path = write_tables(stem, table, columns, {**meta, "per_image": per_image})
    print(f"\nwrote {csv_path} and {json_path}")
    failed = sum(r.get("failed", 0) for r in table)
    if failed:
        print(f"blindsr eval: {failed} task(s) failed (errors in {json_path})", file=sys.stderr)
        return 1
    return 0
