"""Benchmark evaluation: per-image rows and the KernelGAN paper's Table 1 over method combinations.

A Table-1 evaluation runs in two resumable phases of plain-data tasks that any executor can run:
kernels are estimated once per (estimator, image) and saved, then every (estimator, SR back-end)
combination super-resolves every image from the saved kernels. Each task writes one JSON result;
a re-run skips tasks whose result is there.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from blindsr.backends import Backend
from blindsr.config import resolved_settings
from blindsr.datasets import BenchmarkImage
from blindsr.degradation import bicubic_kernel, quantize
from blindsr.errors import BlindSRError
from blindsr.estimators import Estimator
from blindsr.images import read_image
from blindsr.kernel import SRKernel, kernel_paths, load_kernel, save_kernel
from blindsr.light import decode
from blindsr.metrics import kernel_psnr, lr_psnr, y_psnr_ssim
from blindsr.outputs import write_json
from blindsr.progress import task_lines
from blindsr.stages import built_stage, estimate_stage, handoff_kernels, sr_stage, super_resolve

METHOD_NAMES = {"gt": "GT kernel", "kernelgan": "KernelGAN", "bicubic": "bicubic kernel"}
SR_NAMES = {"zssr": "ZSSR", "srmd": "SRMD", "bicubic": "bicubic interpolation", "none": "(kernel only)"}
# Published DIV2KRK rows (PSNR, SSIM) quoted from the KernelGAN paper's Table 1 (and its ground-truth
# rows as given in the project specs; None where only the PSNR is known), by (estimator, sr, scale).
PUBLISHED_DIV2KRK = {
    ("bicubic", "zssr", 2): (29.10, 0.8215), ("bicubic", "zssr", 4): (25.61, 0.6911),
    ("kernelgan", "zssr", 2): (30.36, 0.8669), ("kernelgan", "zssr", 4): (26.81, 0.7316),
    ("kernelgan", "srmd", 2): (29.57, 0.8564), ("kernelgan", "srmd", 4): (25.71, 0.7265),
    ("gt", "zssr", 2): (32.4, None), ("gt", "zssr", 4): (27.5, None),
    ("gt", "srmd", 2): (31.96, None), ("gt", "srmd", 4): (27.38, None),
}


def method_name(estimator: str, sr: str) -> str:
    if sr == "bicubic":
        return "bicubic interpolation"
    return f"{METHOD_NAMES.get(estimator, estimator)} + {SR_NAMES.get(sr, sr)}"


def kernel_metrics(entry: BenchmarkImage, kernels: dict[int, SRKernel], scale: int,
                   light: str = "encoded") -> dict[str, float]:
    """Kernel PSNR (on the true kernel's canvas) and LR-reconstruction PSNR (blurring in ``light``)
    of the estimate and of the bicubic kernel, when the benchmark has the true kernel."""
    if scale not in entry.kernels:
        return {}
    hr, lr = read_image(entry.gt).rgb, read_image(entry.lr).rgb
    truth = load_kernel(entry.kernels[scale], scale)
    row = {}
    for prefix, kernel in (("", kernels[scale]), ("bicubic_", bicubic_kernel(scale))):
        row[f"{prefix}kernel_psnr"] = kernel_psnr(kernel, truth, size=truth.size)
        row[f"{prefix}lr_psnr"] = lr_psnr(hr, kernel, lr, scale, light=light)
    return row


def sr_metrics(entry: BenchmarkImage, kernels: dict[int, SRKernel], backend: Backend, scale: int,
               seed: int, progress=None, light: str = "encoded") -> dict[str, float]:
    """Y-PSNR/SSIM of the back-end's result (rounded to 8 bits) against the ground truth; the
    back-end works in ``light`` (``blindsr.light``)."""
    lr = read_image(entry.lr)
    hr = read_image(entry.gt).rgb
    if progress is None:
        progress = task_lines(f"{entry.name} x{scale}", [sr_stage(backend, lr.shape, scale)])
    start = time.perf_counter()
    sr, _, _ = super_resolve(lr, kernels, backend, scale, seed, progress, light)
    seconds = time.perf_counter() - start
    hr = hr[:sr.shape[0], :sr.shape[1]]
    psnr, ssim = y_psnr_ssim(quantize(sr), hr, scale)
    return {"psnr": psnr, "ssim": ssim, "sr_s": seconds}


def estimate_kernels(entry: BenchmarkImage, estimator: Estimator, scale: int, seed: int,
                     progress=None, light: str = "encoded") -> tuple[dict[int, SRKernel], float | None]:
    """The entry's kernels and the seconds they took: the benchmark's own from an estimator that
    reads them (``gt``: ``kernels_for``, no time), else estimated from the LR image (its values
    in ``light``)."""
    if hasattr(estimator, "kernels_for"):
        return estimator.kernels_for(entry, scale), None
    if progress is None:
        progress = task_lines(f"{entry.name} x{scale}", [estimate_stage(estimator, estimator.iterations(scale))])
    start = time.perf_counter()
    kernels = estimator.estimate(decode(read_image(entry.lr).rgb, light), scale, seed=seed, progress=progress).kernels
    return kernels, time.perf_counter() - start


@dataclass(frozen=True)
class TableTask:
    """One unit of a Table-1 evaluation: estimate (``sr`` is None) or super-resolve."""

    entry: BenchmarkImage
    scale: int
    estimator: Any  # typed stage configs (blindsr.config.group_schemas)
    sr: Any | None
    kernel_dir: str
    result: str
    device: str
    seed: int
    handoff_width: float = 1.0  # applied to the kernels before SR (stages.handoff_kernels)
    light: str = "encoded"  # where the benchmark's blur acted (blindsr.light)


def _saved_kernels(task: TableTask) -> dict[int, SRKernel]:
    wanted = (2, 4) if task.scale == 4 else (task.scale,)
    return {s: load_kernel(kernel_paths(task.kernel_dir, task.entry.name, s)["npy"]) for s in wanted}


def run_table_task(task: TableTask) -> dict[str, Any]:
    """Run one task unless its result exists; never raises (errors go into the result)."""
    result_path = Path(task.result)
    if result_path.is_file():
        return json.loads(result_path.read_text())
    row: dict[str, Any] = {"image": task.entry.name, "estimator": task.estimator.name,
                           "sr": task.sr.name if task.sr else None}
    try:
        if task.sr is None:
            estimator = built_stage("estimator", task.estimator, task.device, benchmark=True)
            kernels, seconds = estimate_kernels(task.entry, estimator, task.scale, task.seed, light=task.light)
            Path(task.kernel_dir).mkdir(parents=True, exist_ok=True)
            for kernel in kernels.values():
                save_kernel(kernel, Path(task.kernel_dir), task.entry.name)
            row.update(kernel_metrics(task.entry, kernels, task.scale, task.light))
            if seconds is not None:
                row["estimate_s"] = seconds
        else:
            kernels = _saved_kernels(task)
            backend = built_stage("sr", task.sr, task.device, benchmark=True)
            kernels = handoff_kernels(kernels, task.handoff_width)
            row.update(sr_metrics(task.entry, kernels, backend, task.scale, task.seed, light=task.light))
    except BlindSRError as exc:
        row["error"] = str(exc)
    except Exception as exc:  # noqa: BLE001 - one failing task must not stop the table
        row["error"] = f"internal error: {exc.__class__.__name__}: {exc}"
    if "error" not in row:
        result_path.parent.mkdir(parents=True, exist_ok=True)
        write_json(result_path, row)
    return row


def stage_key(group: str, config: Any) -> str:
    """A stage config's cache folder name: its name and a hash of what it runs (a typed config or
    its ``settings`` dict, as ``resolved_settings`` of stage ``group``): an unset override counts as
    the preset's value, and the key changes when a release changes what the preset runs."""
    values = resolved_settings(group, config)
    digest = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()
    return values["name"] + "-" + digest[:8]


def sr_combinations(est_names: list[str], sr_names: list[str]) -> list[tuple[str, str]]:
    """The (estimator, SR back-end) pairs that super-resolve: all but ``none`` (kernel scores only),
    and bicubic interpolation once, with the first estimator - it ignores kernels, so it is one row
    whatever the estimators."""
    pairs, seen_bicubic = [], False
    for e in est_names:
        for s in sr_names:
            if s == "none" or (s == "bicubic" and seen_bicubic):
                continue
            seen_bicubic |= s == "bicubic"
            pairs.append((e, s))
    return pairs


def lost_task(task: TableTask, message: str) -> dict[str, Any]:
    return {"image": task.entry.name, "estimator": task.estimator.name,
            "sr": task.sr.name if task.sr else None, "error": message}


def merge(results: list[dict], est_names: list[str], sr_names: list[str],
          sr_combos: list[tuple[str, str]]) -> dict[tuple, list[dict]]:
    """Per (estimator, sr) combination, per-image rows joining the kernel and SR results."""
    kernel_rows = {(r["estimator"], r["image"]): r for r in results if r.get("sr") is None}
    sr_rows = {(r["estimator"], r["sr"], r["image"]): r for r in results if r.get("sr") is not None}
    images = sorted({r["image"] for r in results}, key=lambda n: int(n.split("_")[-1]))
    combos: dict[tuple, list[dict]] = {}
    wanted = [(e, "none") for e in est_names if "none" in sr_names] + sr_combos
    for e, s in wanted:
        rows = []
        for image in images:
            row = {"image": image}
            if s != "bicubic":  # interpolation uses no kernel
                row.update({k: v for k, v in kernel_rows.get((e, image), {}).items() if k not in ("estimator", "sr")})
            if s != "none":
                row.update({k: v for k, v in sr_rows.get((e, s, image), {}).items() if k not in ("estimator", "sr")})
            rows.append(row)
        label = method_name(e, s) if s != "none" else f"{METHOD_NAMES.get(e, e)} (kernel only)"
        combos[((e, s), label)] = rows
    return combos


def summary_row(method: str, rows: list[dict], scale: int, published_key: tuple | None) -> dict[str, Any]:
    ok = [r for r in rows if "error" not in r]
    out: dict[str, Any] = {"method": method, "images": len(ok), "failed": len(rows) - len(ok)}
    for column in ("psnr", "ssim", "kernel_psnr", "lr_psnr", "estimate_s", "sr_s"):
        values = [r[column] for r in ok if isinstance(r.get(column), (int, float)) and not np.isnan(r[column])]
        out[column] = float(np.mean(values)) if values else None
    if published_key is not None and (*published_key, scale) in PUBLISHED_DIV2KRK:
        out["published_psnr"], out["published_ssim"] = PUBLISHED_DIV2KRK[(*published_key, scale)]
    return out
