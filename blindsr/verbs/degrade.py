"""``degrade``: a DIV2KRK-layout benchmark from any folder of HR images, by the DIV2KRK protocol.

Each HR image (natural name order) is converted to 8-bit RGB, cropped to a multiple of 4 and
numbered: ``gt/im_N.png``; one random x2/x4 kernel pair is drawn per image from
``numpy.random.default_rng(seed)`` (``blindsr.degradation.random_kernels``) and saved as
``gt_k_x{s}/kernel_N.{npy,mat}``; ``lr_x{s}/im_N.png`` is the reference degradation rounded to
8 bits. ``manifest.json`` maps numbers to source files.

``shared_kernel=true`` draws one kernel pair for the whole folder (a one-camera set: the optics
are the same for every image); ``noise=SIGMA`` adds independent Gaussian noise of that sigma
(8-bit units, per channel and pixel) to every LR image before the rounding, from a generator of
its own, so the kernels of a seed are the same with and without noise.

``light=linear`` blurs the HR image's linear light (sRGB-decoded) and encodes the LR image again,
as a camera's optics and tone curve do (``blindsr.light``); the kernels are the same as without.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from blindsr.degradation import degrade, random_kernels
from blindsr.errors import InputError
from blindsr.images import list_images, read_image, write_image
from blindsr.kernel import write_kernel_array
from blindsr.light import decode, encode
from blindsr.outputs import prepare_output_dir, write_json
from blindsr.progress import progress_bar

NOISE_STREAM = 1  # the noise generator is default_rng([seed, NOISE_STREAM])


def run(cfg: DictConfig) -> int:
    scales = sorted(set(cfg.scales))
    images, _ = list_images(cfg.input)
    if not images:
        raise InputError(f"{cfg.input}: no images found")
    out = prepare_output_dir(cfg.output, [Path(cfg.output) / "manifest.json"], cfg.overwrite)
    folders = ["gt"] + [f"lr_x{s}" for s in scales] + [f"gt_k_x{s}" for s in scales]
    for folder in folders:
        (out / folder).mkdir(exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    noise_rng = np.random.default_rng([cfg.seed, NOISE_STREAM])
    shared = random_kernels(rng) if cfg.shared_kernel else None
    manifest = {"protocol": "DIV2KRK (blindsr.degradation.random_kernels)", "seed": cfg.seed,
                "scales": scales, "shared_kernel": bool(cfg.shared_kernel), "noise_sigma": float(cfg.noise),
                "light": cfg.light, "images": []}
    with progress_bar(len(images), "degrade", unit="image") as bar:
        for number, path in enumerate(images, start=1):
            hr = read_image(path, cfg.max_pixels).rgb
            hr = np.round(hr * 255) / 255
            rows, cols = hr.shape[0] // 4 * 4, hr.shape[1] // 4 * 4
            if min(rows, cols) < 4:
                raise InputError(f"{path}: too small to degrade ({hr.shape[1]}x{hr.shape[0]})")
            hr = hr[:rows, :cols]
            kernels = shared or random_kernels(rng)
            write_image(out / "gt" / f"im_{number}.png", hr)
            for s in scales:
                k = np.asarray(kernels[s].array)
                for suffix in ("npy", "mat"):
                    write_kernel_array(out / f"gt_k_x{s}" / f"kernel_{number}.{suffix}", k)
                lr = encode(degrade(decode(hr, cfg.light), k, s), cfg.light)
                if cfg.noise:
                    lr = lr + noise_rng.normal(0.0, cfg.noise / 255.0, lr.shape)
                write_image(out / f"lr_x{s}" / f"im_{number}.png", lr)
            manifest["images"].append({"number": number, "source": str(path),
                                       "size": [cols, rows], **kernels[2].provenance})
            bar.update(1)
    write_json(out / "manifest.json", manifest)
    print(f"wrote a DIV2KRK-layout benchmark of {len(images)} images to {out}")
    return 0
