"""Building and running the stages a verb composes: estimator, back-end, progress display."""
from __future__ import annotations

import sys
from typing import Any

from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from blindsr.errors import UsageError
from blindsr.estimators import Estimator, get_estimator

SCALES = (2, 4)


def check_scale(scale: int, allowed: tuple[int, ...] = SCALES) -> int:
    if scale not in allowed:
        raise UsageError(f"scale={scale}: must be one of {', '.join(map(str, allowed))}")
    return scale


def options(node: DictConfig) -> dict[str, Any]:
    """A stage's config as keyword arguments: without ``name`` and without unset (None) values."""
    values = OmegaConf.to_container(node, resolve=True)
    return {k: v for k, v in values.items() if k != "name" and v is not None}


def build_estimator(node: DictConfig, device: str) -> Estimator:
    try:
        return get_estimator(node.name, device=device, **options(node))
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None


def progress_bar(total: int, desc: str) -> tqdm:
    """One bar per run (silent when stderr is not a terminal)."""
    return tqdm(total=total, desc=desc, unit="it", dynamic_ncols=True, leave=False,
                disable=None if total else True, file=sys.stderr)
