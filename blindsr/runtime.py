"""Where computations run: device choice, CPU thread budgets and the CPU allocator."""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
from typing import Iterator

import torch

from blindsr.errors import UsageError

# glibc's mallopt parameter M_TOP_PAD: bytes of free memory kept at the top of the heap when it
# is trimmed (and added whenever it grows).
M_TOP_PAD = -2
# What the training loops keep: more than one step's activations (KernelGAN's four batched runs
# free and reallocate a few MB each step; ZSSR's fast preset a few tens at most).
KEPT_FREE_BYTES = 64 << 20
# Set to "default" to leave the C library's allocator as it is (benchmarks.speed compares both).
ALLOCATOR_ENV = "BLINDSR_ALLOCATOR"
_allocator_tuned: bool | None = None


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep ``KEPT_FREE_BYTES`` of freed heap memory instead of returning it
    to the operating system at once. PyTorch's CPU tensors are malloc'd; a training step frees
    its activations and the next one allocates the same sizes again, and with glibc's default
    trimming every step gave the freed pages back and faulted them in again (docs/BENCHMARKS.md,
    'speed-allocator', counts the page faults and times both). Results are unchanged: only where
    the bytes live changes. Once per process; a no-op off glibc, when ``MALLOC_TOP_PAD_`` is set
    (the user's own choice) or when ``BLINDSR_ALLOCATOR=default``. True when the setting is on."""
    global _allocator_tuned
    if _allocator_tuned is None:
        _allocator_tuned = False
        if (sys.platform.startswith("linux") and "MALLOC_TOP_PAD_" not in os.environ
                and os.environ.get(ALLOCATOR_ENV, "") != "default"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                _allocator_tuned = bool(libc.mallopt(ctypes.c_int(M_TOP_PAD), ctypes.c_int(KEPT_FREE_BYTES)))
            except (OSError, AttributeError):  # not glibc (musl has no mallopt)
                pass
    return _allocator_tuned


def allocator_environment(kept: bool) -> dict[str, str]:
    """This process's environment for a child that keeps freed memory (``kept``, as shipped) or
    leaves glibc's malloc as it comes - what the benchmarks compare."""
    env = {k: v for k, v in os.environ.items() if k not in (ALLOCATOR_ENV, "MALLOC_TOP_PAD_")}
    return env if kept else {**env, ALLOCATOR_ENV: "default"}


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
