"""``pipeline``: estimate the photo's kernel, then super-resolve it with that kernel."""
from __future__ import annotations

from omegaconf import DictConfig

from blindsr.images import read_image
from blindsr.outputs import prepare_output_dir, safe_stem
from blindsr.progress import progress_bar
from blindsr.stages import (build_backend, build_estimator, check_image, check_ready, output_paths, run_pipeline,
                            stage_work, write_outputs)


def run(cfg: DictConfig) -> int:
    scale, width = cfg.scale, cfg.handoff_width
    estimator = build_estimator(cfg.estimator, cfg.device)
    backend = build_backend(cfg.sr, cfg.device)
    check_ready(backend, scale)
    image = read_image(cfg.input, cfg.max_pixels)
    check_image(image, estimator)
    stem = safe_stem(image.path.name)
    kernel_scales = (2, 4) if scale == 4 else (2,)
    out = prepare_output_dir(cfg.output, output_paths(cfg.output, stem, scale, kernel_scales), cfg.overwrite)
    stages = stage_work(estimator, backend, image.shape, scale)
    with progress_bar(sum(units for _, units in stages), f"{stem} x{scale}", stages) as bar:
        result = run_pipeline(image, estimator, backend, scale, seed=cfg.seed, handoff_width=width,
                              progress=bar.update, light=cfg.light)
    paths = write_outputs(out, stem, scale, image, result, cfg)
    print(f"x{scale} image: {paths['image']}")
    print(f"kernels: {', '.join(str(paths[f'kernel_x{s}']) for s in sorted(result.kernels))}")
    print(f"record: {paths['record']}")
    return 0
