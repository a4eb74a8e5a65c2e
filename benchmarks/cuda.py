"""The CUDA path, timed and checked against the CPU's (make bench-cuda) -> the 'cuda' section of
docs/BENCHMARKS.md.

On a machine with a CUDA GPU, for each image (``--images`` of a DIV2KRK-layout ``--data`` folder,
x2, seed 0) and on both the GPU and the CPU:

  estimate  the default KernelGAN x2 estimate: seconds, kernel PSNR against the true kernel, and
            the two devices' kernels against each other;
  zssr      ZSSR (the default ``fast`` preset, precision ``auto`` on each device) with the true
            kernel: seconds and Y-PSNR;
  srmd      SRMD x2 with the true kernel and noise 0: seconds, Y-PSNR, largest pixel difference;

then ``python -m blindsr pipeline`` end to end with ``device=auto`` (sr=zssr and sr=srmd, first
image), its records read back for the device every stage ran on. Times are in seconds and in
units (``benchmarks.common.unit_seconds``, the fp32 ZSSR step on this machine's CPU); the same step
on the GPU is reported beside it. Every run is preceded by one untimed warm-up on its device
(CUDA context, cuDNN autotuning, first allocations).

Checks (``TOLERANCES``): the GPU's float arithmetic differs from the CPU's (summation order, TF32
convolutions, bf16 on each side where it is native), so results agree within bounds, not bit for
bit. SRMD is one forward pass: its Y-PSNR within 0.05 dB. ZSSR and KernelGAN are trained, and a
different rounding sends training elsewhere, as another seed would: ZSSR's mean Y-PSNR within
0.1 dB and each image's within 0.3 dB; KernelGAN's mean kernel PSNR within 1 dB (one image's spread
over seeds reaches 0.6 dB standard deviation on the CPU, 'KernelGAN: run-to-run spread').

The measurement and the record are separate steps, so that a run on a borrowed GPU machine is
recorded in the checkout it came from:

    python -m benchmarks.cuda --data ../shared/data/BSD100RK --out cuda_out        # on the GPU machine
    python -m benchmarks.cuda --record cuda_out/cuda.json                          # writes the section

``--device cpu`` runs every step on the CPU twice (a check of this script on a machine without a
GPU; nothing is recorded from it unless ``--record`` is given its output).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from omegaconf import OmegaConf

from benchmarks.common import numbers, run_facts, synchronise, unit_seconds, write_section
from blindsr.backends import get_backend
from blindsr.datasets import BenchmarkImage, load_benchmark
from blindsr.degradation import quantize
from blindsr.estimators.truth import true_kernels
from blindsr.images import read_image
from blindsr.metrics import kernel_psnr, y_psnr_ssim
from blindsr.stages import build_estimator, super_resolve
from blindsr.tables import markdown_table

TOLERANCES = {"srmd_db": 0.05, "zssr_mean_db": 0.1, "zssr_image_db": 0.3, "kernel_mean_db": 1.0}


def timed(device: str, run: Callable[[], Any]) -> tuple[Any, float]:
    """``run()`` and its wall time, the device's queue drained before and after."""
    synchronise(device)
    start = time.perf_counter()
    result = run()
    synchronise(device)
    return result, time.perf_counter() - start


def gpu_unit(device: str) -> float | None:
    """The speed unit's step (fp32 ZSSR network, 1x3x128x128, forward, backward, Adam) on the GPU."""
    return unit_seconds(device=device) if device.startswith("cuda") else None


def estimate(entry: BenchmarkImage, device: str) -> dict[str, Any]:
    estimator = build_estimator(OmegaConf.create({"name": "kernelgan", "preset": "default"}), device)
    rgb = read_image(entry.lr).rgb
    result, seconds = timed(device, lambda: estimator.estimate(rgb, 2, seed=0))
    kernel = result.kernels[2]
    return {"seconds": seconds, "kernel": kernel, "kernel_psnr": kernel_psnr(kernel, true_kernels(entry, 2)[2]),
            "device": kernel.provenance.get("device")}


def super_resolved(entry: BenchmarkImage, name: str, device: str, **options: Any) -> dict[str, Any]:
    backend = get_backend(name, device=device, **options)
    image = read_image(entry.lr)
    (sr, _, record), seconds = timed(device, lambda: super_resolve(image, true_kernels(entry, 2), backend, 2, 0))
    hr = read_image(entry.gt).rgb[:sr.shape[0], :sr.shape[1]]
    psnr, _ = y_psnr_ssim(quantize(sr), hr, 2)
    return {"seconds": seconds, "psnr": psnr, "image": quantize(sr), "record": record}


def devices_in(record: Any) -> list[str]:
    """Every value of a ``device`` key anywhere in a pipeline record."""
    found: list[str] = []
    if isinstance(record, dict):
        for key, value in record.items():
            if key == "device" and isinstance(value, str):
                found.append(value)
            else:
                found += devices_in(value)
    elif isinstance(record, list):
        for value in record:
            found += devices_in(value)
    return found


def pipeline(entry: BenchmarkImage, sr: str) -> dict[str, Any]:
    """``python -m blindsr pipeline`` as a user runs it (device=auto), timed from outside."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        code = subprocess.run([sys.executable, "-m", "blindsr", "pipeline", f"input={entry.lr}", f"sr={sr}",
                               "scale=2", f"output={out}", "seed=0"], capture_output=True, text=True).returncode
        seconds = time.perf_counter() - start
        records = [json.loads(p.read_text()) for p in Path(out).glob("*.json")]
    return {"image": entry.name, "sr": sr, "exit": code, "seconds": seconds,
            # The devices the stages ran on (the resolved config's "auto" is what was asked for).
            "devices": sorted(set(d for r in records for d in devices_in(r) if d != "auto"))}


def measure(data: Path, images: list[int], device: str) -> dict[str, Any]:
    found = {e.number: e for e in load_benchmark(data, 2)}
    entries = [found[n] for n in images if n in found]
    if not entries:
        raise SystemExit(f"no x2 images {images} in {data}")
    cpu_unit = unit_seconds()
    sides = {"gpu": device, "cpu": "cpu"}
    # Warm-ups, untimed: one estimate of few iterations and one SR of each back-end per device.
    warm = entries[0]
    for side in sides.values():
        build_estimator(OmegaConf.create({"name": "kernelgan", "preset": "default", "iterations": 20,
                                           "drop_collapsed": False}),
                        side).estimate(read_image(warm.lr).rgb, 2, seed=0)
        super_resolved(warm, "zssr", side, max_iters=20)
        super_resolved(warm, "srmd", side, noise=0)
    rows = []
    for entry in entries:
        row: dict[str, Any] = {"image": entry.name}
        kernels = {}
        for side, name in sides.items():
            est = estimate(entry, name)
            kernels[side] = est.pop("kernel")
            row[f"estimate_{side}"] = est
            print(entry.name, side, "estimate", round(est["seconds"], 2), round(est["kernel_psnr"], 2), flush=True)
        row["kernel_agreement_db"] = kernel_psnr(kernels["gpu"], kernels["cpu"])
        outputs = {}
        for backend, options in (("zssr", {}), ("srmd", {"noise": 0})):
            for side, name in sides.items():
                result = super_resolved(entry, backend, name, **options)
                outputs[(backend, side)] = result.pop("image")
                row[f"{backend}_{side}"] = {"seconds": result["seconds"], "psnr": result["psnr"],
                                            "device": devices_in(result["record"])}
                print(entry.name, side, backend, round(result["seconds"], 2), round(result["psnr"], 3), flush=True)
        row["srmd_max_pixel_diff"] = float(np.abs(outputs[("srmd", "gpu")] - outputs[("srmd", "cpu")]).max())
        rows.append(row)
    runs = [pipeline(entries[0], sr) for sr in ("zssr", "srmd")]
    return {**run_facts(), "device": device,
            "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
            "torch": torch.__version__, "cuda": torch.version.cuda, "cpu_threads": torch.get_num_threads(),
            "unit_cpu": cpu_unit, "unit_gpu": gpu_unit(device), "images": rows, "pipeline": runs,
            "tolerances": TOLERANCES}


def checks(results: dict[str, Any]) -> list[str]:
    rows, tol = results["images"], results["tolerances"]
    kernel_gap = statistics.mean(r["estimate_gpu"]["kernel_psnr"] for r in rows) - \
        statistics.mean(r["estimate_cpu"]["kernel_psnr"] for r in rows)
    zssr = [r["zssr_gpu"]["psnr"] - r["zssr_cpu"]["psnr"] for r in rows]
    srmd = [r["srmd_gpu"]["psnr"] - r["srmd_cpu"]["psnr"] for r in rows]
    on_gpu = results["device"].startswith("cuda")
    devices_ok = all(all(d.startswith("cuda") == on_gpu for d in run["devices"]) and run["devices"]
                     for run in results["pipeline"])

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    return [
        f"KernelGAN, mean kernel PSNR GPU - CPU: {kernel_gap:+.2f} dB (tolerance {tol['kernel_mean_db']:g}: "
        f"{verdict(abs(kernel_gap) <= tol['kernel_mean_db'])})",
        f"ZSSR, Y-PSNR GPU - CPU: mean {statistics.mean(zssr):+.3f} dB, largest {max(zssr, key=abs):+.3f} dB "
        f"(tolerances {tol['zssr_mean_db']:g} and {tol['zssr_image_db']:g}: "
        f"{verdict(abs(statistics.mean(zssr)) <= tol['zssr_mean_db'] and max(map(abs, zssr)) <= tol['zssr_image_db'])})",
        f"SRMD, Y-PSNR GPU - CPU: largest {max(srmd, key=abs):+.4f} dB (tolerance {tol['srmd_db']:g}: "
        f"{verdict(max(map(abs, srmd)) <= tol['srmd_db'])})",
        f"`pipeline` with device=auto ran every stage on {'the GPU' if on_gpu else 'the CPU'} and exited 0: "
        f"{verdict(devices_ok and all(run['exit'] == 0 for run in results['pipeline']))}",
    ]


def section(results: dict[str, Any]) -> str:
    unit = results["unit_cpu"]
    rows = []
    for r in results["images"]:
        for stage, metric in (("estimate", "kernel_psnr"), ("zssr", "psnr"), ("srmd", "psnr")):
            gpu, cpu = r[f"{stage}_gpu"], r[f"{stage}_cpu"]
            rows.append({"image": r["image"], "stage": {"estimate": "KernelGAN estimate (default)",
                                                         "zssr": "ZSSR fast, true kernel",
                                                         "srmd": "SRMD, true kernel"}[stage],
                         "GPU s": gpu["seconds"], "CPU s": cpu["seconds"], "GPU units": gpu["seconds"] / unit,
                         "CPU units": cpu["seconds"] / unit, "GPU speed-up": cpu["seconds"] / gpu["seconds"],
                         "metric": "kernel PSNR" if stage == "estimate" else "Y-PSNR",
                         "GPU": gpu[metric], "CPU": cpu[metric]})
    runs = [{"image": p["image"], "sr": p["sr"], "exit": p["exit"], "seconds": p["seconds"],
             "units": p["seconds"] / unit, "devices in the records": ", ".join(p["devices"])}
            for p in results["pipeline"]]
    gpu_unit_text = ("" if results["unit_gpu"] is None else
                     f"; the same step on the GPU {results['unit_gpu']:.4f} s")
    agreement = ", ".join(f"{r['image']} {r['kernel_agreement_db']:.2f} dB" for r in results["images"])
    pixels = ", ".join(f"{r['image']} {r['srmd_max_pixel_diff'] * 255:.0f}/255" for r in results["images"])
    return (f"GPU: {results['gpu'] or 'none (--device cpu: the script checked on the CPU alone)'}; torch "
            f"{results['torch']}, CUDA {results['cuda']}; {results['cpu_threads']} CPU threads. The header gives the "
            "machine, revision and date of the measurement. x2, seed 0; each device warmed up once, untimed. "
            f"Unit: one fp32 ZSSR training step on 1x3x128x128 on this machine's CPU, {unit:.4f} s{gpu_unit_text}.\n\n"
            + markdown_table(rows, list(rows[0]), {"GPU s": 2, "CPU s": 2, "GPU units": 1, "CPU units": 1,
                                                     "GPU speed-up": 1, "GPU": 2, "CPU": 2})
            + f"\n\nThe two devices' KernelGAN kernels against each other (kernel PSNR): {agreement}. "
            f"SRMD's largest pixel difference between the devices (8-bit output): {pixels}.\n\n"
            "`python -m blindsr pipeline input=LR sr=SR scale=2` with the default device (auto), timed from "
            "outside (process start-up included):\n\n"
            + markdown_table(runs, list(runs[0]), {"seconds": 1, "units": 0})
            + "\n\nChecks (tolerances in benchmarks/cuda.py):\n\n" + "\n".join(f"- {c}" for c in checks(results))
            + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="DIV2KRK-layout folder (BSD100RK)")
    parser.add_argument("--images", default="1-3", help="x2 image numbers")
    parser.add_argument("--out", type=Path, default=Path("cuda_out"), help="where cuda.json is written")
    parser.add_argument("--device", default="cuda", help="the GPU to measure (cpu: a dry run of this script)")
    parser.add_argument("--record", type=Path, metavar="CUDA_JSON", help="write the section from a measurement")
    args = parser.parse_args()
    if args.record:
        results = json.loads(args.record.read_text())
        write_section("cuda", "The CUDA path against the CPU", section(results), "bench-cuda", measured=results)
        return
    if args.data is None:
        parser.error("--data is needed to measure")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU on this machine (torch.cuda.is_available() is False)")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    results = measure(args.data, numbers(args.images), args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cuda.json").write_text(json.dumps(results, indent=1))
    print("\n".join(checks(results)))
    print(f"written: {args.out / 'cuda.json'}")


if __name__ == "__main__":
    main()
