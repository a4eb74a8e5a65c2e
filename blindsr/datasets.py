"""Benchmark sets in the DIV2KRK layout (the KernelGAN paper's benchmark, and BSD100RK/Urban100RK).

```
gt/im_N.png (or img_N_gt.png)      lr_x2/im_N.png     gt_k_x2/kernel_N.{mat,npy}
                                   lr_x4/im_N.png     gt_k_x4/kernel_N.{mat,npy}
```
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from blindsr.errors import InputError

_NUMBER = re.compile(r"(\d+)")


@dataclass(frozen=True)
class BenchmarkImage:
    """One image of a benchmark: its ground truth, LR input at one scale, and its true kernels
    by scale (x2 and x4 when the set has both)."""

    name: str
    number: int
    scale: int
    gt: Path
    lr: Path
    kernels: dict[int, Path]

    @property
    def kernel(self) -> Path | None:
        """The true kernel at this entry's scale, if the set has one."""
        return self.kernels.get(self.scale)


def _number(path: Path) -> int | None:
    found = _NUMBER.findall(path.stem)
    return int(found[0]) if found else None


def _by_number(folder: Path, suffixes: tuple[str, ...]) -> dict[int, Path]:
    found: dict[int, Path] = {}
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            n = _number(path)
            if n is not None and path.suffix.lower() in suffixes:
                found.setdefault(n, path)
    return found


def load_benchmark(root: str | Path, scale: int, limit: int = 0) -> list[BenchmarkImage]:
    """The images of a DIV2KRK-layout folder at ``scale``, by number (im_1, im_2, ...); the first
    ``limit`` when ``limit`` > 0. Kernels are optional (real-image sets have none)."""
    root = Path(root)
    lr_dir = root / f"lr_x{scale}"
    if not root.is_dir():
        raise InputError(f"{root}: no such folder")
    if not lr_dir.is_dir() or not (root / "gt").is_dir():
        raise InputError(f"{root}: not a DIV2KRK-layout benchmark (needs gt/ and lr_x{scale}/)")
    lrs = _by_number(lr_dir, (".png",))
    gts = _by_number(root / "gt", (".png",))
    kernels = {s: _by_number(root / f"gt_k_x{s}", (".npy", ".mat")) for s in (2, 3, 4)}
    numbers = sorted(set(lrs) & set(gts))
    if not numbers:
        raise InputError(f"{root}: no image has both gt/ and lr_x{scale}/ files")
    if limit > 0:
        numbers = numbers[:limit]
    return [BenchmarkImage(f"im_{n}", n, scale, gts[n], lrs[n], {s: k[n] for s, k in kernels.items() if n in k})
            for n in numbers]
