"""Building and running the stages a verb composes: estimator -> handoff -> SR back-end.

``run_pipeline`` is the one implementation of "estimate, then super-resolve" that the pipeline,
sr, batch and eval verbs share; ``write_outputs`` writes its files (all atomically).
"""
from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from omegaconf import DictConfig, OmegaConf

from blindsr import __version__
from blindsr.backends import BACKENDS, Backend, adapt
from blindsr.degradation import bicubic_upscale
from blindsr.config import plain, resolved_settings, stage_settings
from blindsr.errors import InputError, UsageError
from blindsr.estimators import ESTIMATORS, Estimator
from blindsr.estimators.compression import compression_record
from blindsr.estimators.confidence import UNTRUSTED
from blindsr.images import LoadedImage, write_image
from blindsr.kernel import SRKernel, kernel_paths, save_kernel
from blindsr.light import decode, encode
from blindsr.outputs import write_json

log = logging.getLogger(__name__)
Progress = Callable[[int], None]


def handoff_kernels(kernels: dict[int, SRKernel], width: float) -> dict[int, SRKernel]:
    """The kernels handed to SR: each estimate (``SRKernel.is_estimate``) narrowed to ``width`` of
    its extent (``SRKernel.narrowed``); a fallback to the bicubic kernel as it is. Why: an estimate's
    width is uncertain, and SR is far more hurt by a kernel that is too wide (over-sharpening,
    ringing) than by one that is too narrow (a softer result); the default width was chosen on
    held-out images (docs/BENCHMARKS.md, 'handoff width')."""
    if width == 1.0:
        return kernels
    return {s: k.narrowed(width) if k.is_estimate else k for s, k in kernels.items()}


def options(node: DictConfig | Any) -> dict[str, Any]:
    """A stage's config as keyword arguments for its class: ``stage_settings`` without ``name``."""
    return {k: v for k, v in stage_settings(node).items() if k != "name"}


def _build(registry: Any, group: str, node: DictConfig | Any, device: str, benchmark: bool) -> Any:
    try:
        if getattr(registry.factory(node.name), "benchmark_only", False) and not benchmark:
            raise UsageError(f"{group}={node.name} is for benchmarks only (the eval verb)")
        return registry.get(node.name, device=device, **options(node))
    except (KeyError, ValueError) as exc:  # unknown stage or setting, or a bad value for one
        raise UsageError(str(exc.args[0])) from None


def build_estimator(node: DictConfig | Any, device: str, benchmark: bool = False) -> Estimator:
    """The estimator a config names; ``benchmark``: the eval verb, where ``gt`` is allowed."""
    return _build(ESTIMATORS, "estimator", node, device, benchmark)


def build_backend(node: DictConfig | Any, device: str, benchmark: bool = False) -> Backend:
    """The SR back-end a config names; ``benchmark``: the eval verb, where ``none`` is allowed."""
    return _build(BACKENDS, "sr", node, device, benchmark)


def check_ready(backend: Backend, scale: int) -> None:
    """Fail before any work when the back-end cannot run at ``scale`` (SRMD without its weights);
    back-ends with nothing to fetch have no ``check_ready``."""
    ready = getattr(backend, "check_ready", None)
    if ready is not None:
        ready(scale)


@functools.lru_cache(maxsize=8)
def _built_once(group: str, settings_json: str, device: str, benchmark: bool) -> Any:
    build = build_estimator if group == "estimator" else build_backend
    return build(OmegaConf.create(json.loads(settings_json)), device, benchmark)


def built_stage(group: str, config: Any, device: str, benchmark: bool = False) -> Any:
    """``build_estimator`` (group "estimator") or ``build_backend`` (group "sr"), once per process
    for the same settings: the worker of a batch or an evaluation reuses it from task to task."""
    return _built_once(group, json.dumps(stage_settings(config), sort_keys=True), device, benchmark)


def announce_untrusted(path: Path, warnings: list[str]) -> None:
    """One warning line on stderr, naming the image, for an estimate the estimator did not trust
    (the warning is also in the record and the kernel's provenance)."""
    for line in warnings:
        if line.startswith(UNTRUSTED):
            log.warning("%s: %s", path, line)


def check_image(image: LoadedImage, estimator: Estimator | None) -> None:
    """Refuse an image the estimator cannot handle, naming the file (before any output)."""
    if estimator is not None:
        try:
            estimator.check(image.shape)
        except InputError as exc:
            raise InputError(f"{image.path}: {exc}") from None


def estimate_stage(estimator: Estimator, units: int) -> tuple[str, int]:
    """(stage name, progress units) of an estimate that reports ``units`` (for progress lines)."""
    return f"estimate {estimator.name}", units


def sr_stage(backend: Backend, shape: tuple[int, int], scale: int) -> tuple[str, int]:
    """(stage name, progress units) of super-resolving an image of ``shape`` (for progress lines)."""
    return f"sr {backend.name}", backend.work(shape, scale)


def stage_work(estimator: Estimator | None, backend: Backend, shape: tuple[int, int],
               scale: int) -> list[tuple[str, int]]:
    """(stage name, progress units) of ``run_pipeline``'s stages, in order (for progress lines)."""
    stages = [estimate_stage(estimator, estimator.iterations(scale))] if estimator is not None else []
    return stages + [sr_stage(backend, shape, scale)]


@dataclass
class PipelineResult:
    """What one image's run produced: the SR image (and alpha), the kernels, and the record."""

    rgb: np.ndarray
    alpha: np.ndarray | None
    kernels: dict[int, SRKernel]
    record: dict[str, Any] = field(default_factory=dict)


def super_resolve(image: LoadedImage, kernels: dict[int, SRKernel], backend: Backend, scale: int,
                  seed: int, progress: Progress | None = None, light: str = "encoded",
                  decoded: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Adapt the kernels to the back-end, super-resolve the colour image, and upscale alpha on its
    own with bicubic interpolation. Returns (rgb, alpha, stage record). The image's JPEG
    compression, if any (``compression_record``: the file's table, or the steps its pixels show),
    travels in the kernels' provenance to the back-end's noise level (SRMD's ``noise=auto``).
    ``light="linear"``: the back-end works on the image's linear light (``decoded``, when the
    caller has it already) and its result is encoded again (``blindsr.light``)."""
    adapted = adapt(kernels, backend.needs, scale)
    compression = compression_record(image.jpeg_luma_table, image.rgb if image.bit_depth == 8 else None)
    if compression is not None:
        adapted = {s: k.with_provenance(compression=compression) for s, k in adapted.items()}
    pixels = decode(image.rgb, light) if decoded is None else decoded
    result = backend.super_resolve(pixels, scale, adapted, seed=seed, progress=progress)
    alpha = None
    if image.alpha is not None:
        alpha = bicubic_upscale(image.alpha, scale)
    record = {"backend": backend.name, "seconds": round(result.seconds, 3),
              "kernels_used": {f"x{s}": k.provenance.get("support", k.size) for s, k in adapted.items()},
              "diagnostics": result.diagnostics, "warnings": result.warnings, "compression": compression,
              "light": light}
    return encode(result.image, light), alpha, record


def run_pipeline(image: LoadedImage, estimator: Estimator | None, backend: Backend, scale: int, *,
                 seed: int = 0, kernels: dict[int, SRKernel] | None = None, handoff_width: float = 1.0,
                 progress: Progress | None = None, light: str = "encoded") -> PipelineResult:
    """Estimate the kernels (unless given), then super-resolve ``image`` by ``scale``. The kernels
    returned (and saved) are the estimate; SR gets them through ``handoff_kernels`` with
    ``handoff_width`` when they are given or come from a learned estimator. ``light``: where the
    blur acted (``blindsr.light``); both stages work on the values it acted on."""
    stages: dict[str, Any] = {}
    warnings: list[str] = list(image.warnings)
    pixels = decode(image.rgb, light)  # what both stages work on (the image itself when encoded)
    if kernels is None:
        if estimator is None:
            raise ValueError("run_pipeline needs an estimator or kernels")
        check_image(image, estimator)
        start = time.perf_counter()
        estimate = estimator.estimate(pixels, scale, seed=seed, progress=progress)
        kernels = {s: k.with_provenance(light=light) for s, k in estimate.kernels.items()}
        warnings += estimate.warnings
        announce_untrusted(image.path, estimate.warnings)
        stages["estimate"] = {"estimator": estimator.name, "seconds": round(time.perf_counter() - start, 3)}
    if estimator is not None and not estimator.learned:
        handoff_width = 1.0
    start = time.perf_counter()
    rgb, alpha, sr_record = super_resolve(image, handoff_kernels(kernels, handoff_width), backend, scale, seed,
                                          progress, light, pixels)
    stages["sr"] = {**sr_record, "handoff_width": handoff_width,
                    "wall_seconds": round(time.perf_counter() - start, 3)}
    warnings += sr_record["warnings"]
    record = {"version": __version__, "input": str(image.path), "input_sha256": image.sha256,
              "input_size": [image.shape[1], image.shape[0]], "bit_depth": image.bit_depth,
              "grayscale": image.grayscale, "alpha": image.alpha is not None, "scale": scale,
              "seed": seed, "light": light, "stages": stages, "warnings": warnings,
              "kernels": {f"x{s}": k.describe() for s, k in kernels.items()},
              "kernel_confidence": kernels[min(kernels)].provenance.get("confidence"),
              "noise": kernels[min(kernels)].provenance.get("noise"), "compression": sr_record["compression"]}
    return PipelineResult(rgb, alpha, kernels, record)


def output_paths(directory: str | Path, stem: str, scale: int, kernel_scales: tuple[int, ...]) -> list[Path]:
    """Every file ``write_outputs`` writes, for refusing to overwrite before any work."""
    directory = Path(directory)
    paths = [directory / f"{stem}_x{scale}.png", directory / f"{stem}_x{scale}.json"]
    for s in kernel_scales:
        paths += kernel_paths(directory, stem, s).values()
    return paths


def write_outputs(directory: Path, stem: str, scale: int, image: LoadedImage, result: PipelineResult,
                  config: DictConfig | dict | None = None) -> dict[str, Path]:
    """``<stem>_x{s}.png`` in the input's bit depth and mode, the kernels, and ``<stem>_x{s}.json``
    (provenance with per-stage timings and the resolved config: each stage's preset spelled out into
    the values it ran with, ``resolved_settings``). The JSON is written last."""
    paths = {"image": write_image(directory / f"{stem}_x{scale}.png", result.rgb, result.alpha,
                                  image.bit_depth, image.grayscale)}
    for s, kernel in result.kernels.items():
        paths[f"kernel_x{s}"] = save_kernel(kernel.with_provenance(image=str(image.path),
                                                                   image_sha256=image.sha256),
                                            directory, stem)["npy"]
    record = dict(result.record)
    if config is not None:
        values = plain(OmegaConf.to_object(config)) if isinstance(config, DictConfig) else dict(config)
        record["config"] = {**values, **{group: resolved_settings(group, values[group]) for group in ("estimator", "sr")
                                         if isinstance(values.get(group), dict)}}
    paths["record"] = write_json(directory / f"{stem}_x{scale}.json", record)
    return paths
