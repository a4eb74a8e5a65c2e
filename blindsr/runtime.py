"""Where computations run: device choice and CPU thread budgets."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from blindsr.errors import UsageError

# Seed offset of the one retry after a numerical fault (KernelGAN runs, ZSSR runs).
FAULT_RESEED = 7919


def select_device(name: str = "auto") -> torch.device:
    """``auto``: the first CUDA GPU when one is usable, else the CPU; or an explicit torch name."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"device={name}: not a device name (auto, cpu, cuda, cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device={name}: CUDA is not available on this machine")
    return device


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run a block with ``count`` intra-op threads (restored afterwards)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, count))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
