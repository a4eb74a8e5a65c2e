"""``make demo``: blind kernel estimation on a photo whose true kernel we know.

The HR photo is scikit-image's ``chelsea.png`` ("Chelsea the cat", CC0 by Stefan van der Walt),
read from the installed scikit-image wheel (a development dependency) without importing it. It is
degraded x2 with a random DIV2KRK-protocol kernel; ``python -m blindsr estimate`` then estimates
the kernel from the LR image alone, and the demo prints how close it came, next to the bicubic
kernel that non-blind SR methods assume.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

from blindsr.cli import main as cli_main
from blindsr.degradation import bicubic_kernel, degrade, imresize, quantize, random_kernels
from blindsr.images import read_image, write_image
from blindsr.kernel import load_kernel, save_kernel
from blindsr.metrics import kernel_psnr, lr_psnr, y_psnr_ssim
from blindsr.tables import markdown_table

SAMPLE = ("skimage", "data/chelsea.png", "Chelsea the cat, CC0 (Stefan van der Walt), from scikit-image")


def sample_image(name: str = SAMPLE[1]) -> Path:
    """The demo's photo, or another file ``name`` of the scikit-image install."""
    spec = importlib.util.find_spec(SAMPLE[0])
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the demo image comes with scikit-image: pip install -e '.[dev]' (make demo does)")
    path = Path(list(spec.submodule_search_locations)[0]) / name
    if not path.is_file():
        raise SystemExit(f"{path} is missing from the scikit-image install")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="demo_out")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=None, help="KernelGAN iterations")
    parser.add_argument("--sr", default="zssr", help="SR back-end (zssr, srmd, bicubic)")
    parser.add_argument("--precision", default=None, help="ZSSR training arithmetic (auto, fp32, bf16)")
    args = parser.parse_args(argv)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)

    source = sample_image()
    hr = read_image(source).rgb
    hr = hr[: hr.shape[0] // 4 * 4, : hr.shape[1] // 4 * 4]
    truth = random_kernels(np.random.default_rng(args.seed))[2]
    lr = quantize(degrade(hr, truth, 2))
    write_image(out / "chelsea_hr.png", hr)
    lr_path = write_image(out / "chelsea_lr_x2.png", lr)
    (out / "true").mkdir(exist_ok=True)
    save_kernel(truth, out / "true", "chelsea")
    print(f"HR image: {SAMPLE[2]}; {hr.shape[1]}x{hr.shape[0]} -> LR {lr.shape[1]}x{lr.shape[0]}")
    print(f"true kernel: {truth.describe()}")

    cli_args = ["pipeline", f"input={lr_path}", f"output={out}", f"seed={args.seed}", f"sr={args.sr}",
                "overwrite=true"]
    if args.iterations:
        cli_args.append(f"estimator.iterations={args.iterations}")
    if args.precision:
        cli_args.append(f"sr.precision={args.precision}")
    code = cli_main(cli_args)
    if code:
        return code
    estimated = load_kernel(out / "chelsea_lr_x2_kernel_x2.npy")
    stages = json.loads((out / "chelsea_lr_x2_x2.json").read_text())["stages"]
    rows = []
    for name, kernel in (("KernelGAN (blindsr)", estimated), ("bicubic (non-blind assumption)", bicubic_kernel(2))):
        rows.append({"kernel": name, "kernel PSNR (dB)": kernel_psnr(kernel, truth),
                     "LR-reconstruction PSNR (dB)": lr_psnr(hr, kernel, lr, 2)})
    print()
    print(markdown_table(rows, list(rows[0])))
    print(f"\nestimated kernel: {estimated.describe()}")
    results = []
    for name, image in ((f"blindsr (KernelGAN + {args.sr})", read_image(out / "chelsea_lr_x2_x2.png").rgb),
                        ("bicubic interpolation", quantize(imresize(lr, 2.0)))):
        psnr, ssim = y_psnr_ssim(image, hr, 2)
        results.append({"result": name, "Y-PSNR (dB)": psnr, "SSIM": ssim})
    print()
    print(markdown_table(results, list(results[0]), digits={"SSIM": 4}))
    print(f"\ntime: kernel estimate {stages['estimate']['seconds']:.0f} s, SR ({args.sr}) "
          f"{stages['sr']['seconds']:.0f} s")
    print(f"\nfiles in {out}/: chelsea_lr_x2_x2.png (result), chelsea_hr.png (original), "
          "*_kernel_x2.png (kernel pictures; the true one in true/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
