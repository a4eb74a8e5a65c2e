"""``estimate``: the image's SR kernel(s), saved in the handoff convention.

Writes ``<output>/<stem>_kernel_x2.{npy,mat,png,json}`` (and ``_x4`` for scale=4) and prints their
paths. Scripts depend on these names.
"""
from __future__ import annotations

from omegaconf import DictConfig

from blindsr.images import read_image
from blindsr.kernel import kernel_paths, save_kernel
from blindsr.light import decode
from blindsr.outputs import prepare_output_dir, safe_stem
from blindsr.progress import progress_bar
from blindsr.stages import announce_untrusted, build_estimator, check_image


def run(cfg: DictConfig) -> int:
    scale = cfg.scale
    estimator = build_estimator(cfg.estimator, cfg.device)
    image = read_image(cfg.input, cfg.max_pixels)
    check_image(image, estimator)
    stem = safe_stem(image.path.name)
    scales = (2, 4) if scale == 4 else (2,)
    targets = [p for s in scales for p in kernel_paths(cfg.output, stem, s).values()]
    out = prepare_output_dir(cfg.output, targets, cfg.overwrite)
    work = estimator.iterations(scale)
    with progress_bar(work, f"estimate {stem}", [(f"estimate {estimator.name}", work)]) as bar:
        result = estimator.estimate(decode(image.rgb, cfg.light), scale, seed=cfg.seed, progress=bar.update)
    announce_untrusted(image.path, result.warnings)
    for s in scales:
        kernel = result.kernels[s].with_provenance(image=str(image.path), image_sha256=image.sha256, light=cfg.light,
                                                   warnings=image.warnings + result.warnings)
        paths = save_kernel(kernel, out, stem)
        print(f"x{s} kernel: {paths['npy']} (+ .mat, .png, .json)")
    return 0
