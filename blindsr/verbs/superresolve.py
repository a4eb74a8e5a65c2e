"""``sr``: non-blind SR with kernels given as files (``kernel=PATH`` or ``kernel=PATH,PATH``)."""
from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from blindsr.errors import InputError, UsageError
from blindsr.images import read_image
from blindsr.kernel import SRKernel, load_kernel
from blindsr.outputs import prepare_output_dir, safe_stem
from blindsr.progress import progress_bar
from blindsr.stages import build_backend, check_ready, output_paths, run_pipeline, write_outputs

log = logging.getLogger(__name__)


def kernel_files(value: str) -> list[Path]:
    """One path, or several separated by commas (a single existing path may contain commas)."""
    if Path(value).is_file():
        return [Path(value)]
    parts = [Path(p) for p in value.split(",") if p]
    if not parts:
        raise UsageError("kernel=PATH[,PATH] is empty")
    return parts


def load_kernels(value: str, scale: int) -> dict[int, SRKernel]:
    """Kernels by scale. A file without a scale (no sidecar, no ``_x{s}`` in its name) given
    alone is taken as the kernel of the requested scale; given with another, as x2 then x4."""
    files = kernel_files(value)
    if len(files) > 2:
        raise UsageError("give at most two kernels (x2 and x4)")
    default_scales = [scale] if len(files) == 1 else [2, 4]
    kernels: dict[int, SRKernel] = {}
    for path, default in zip(files, default_scales):
        named = "_x2" in path.name or "_x4" in path.name or path.with_suffix(".json").is_file()
        kernel = load_kernel(path, None if named else default)
        if kernel.scale in kernels:
            raise InputError(f"{path}: a second x{kernel.scale} kernel")
        kernels[kernel.scale] = kernel
    return kernels


def light_warning(kernels: dict[int, SRKernel], light: str) -> str | None:
    """A warning when the kernels were estimated in another light than SR is asked to use: they
    describe a blur of other values than the ones SR will work on (``blindsr.light``)."""
    recorded = sorted({k.provenance["light"] for k in kernels.values() if k.provenance.get("light")})
    if recorded and light not in recorded:
        return f"the kernel was estimated with light={recorded[0]}; this run super-resolves with light={light}"
    return None


def run(cfg: DictConfig) -> int:
    scale, width = cfg.scale, cfg.handoff_width
    backend = build_backend(cfg.sr, cfg.device)
    check_ready(backend, scale)
    kernels = load_kernels(cfg.kernel, scale)
    image = read_image(cfg.input, cfg.max_pixels)
    mismatch = light_warning(kernels, cfg.light)
    if mismatch:
        log.warning("%s: %s", image.path, mismatch)
        image.warnings.append(mismatch)
    stem = safe_stem(image.path.name)
    out = prepare_output_dir(cfg.output, output_paths(cfg.output, stem, scale, tuple(kernels)), cfg.overwrite)
    work = backend.work(image.shape, scale)
    with progress_bar(work, f"{stem} x{scale}", [(f"sr {backend.name}", work)]) as bar:
        result = run_pipeline(image, None, backend, scale, seed=cfg.seed, kernels=kernels,
                              handoff_width=width, progress=bar.update, light=cfg.light)
    paths = write_outputs(out, stem, scale, image, result, cfg)
    print(f"x{scale} image: {paths['image']}")
    print(f"record: {paths['record']}")
    return 0
