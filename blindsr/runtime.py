"""Where computations run: device choice, CPU thread budgets, forked CPU workers and the CPU
allocator."""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import pickle
import signal
import sys
import threading
from typing import Callable, Iterator, Sequence, TypeVar

import torch
from threadpoolctl import threadpool_limits

from blindsr.errors import UsageError

log = logging.getLogger(__name__)
T = TypeVar("T")
PR_SET_PDEATHSIG = 1  # prctl option: the signal a child gets when its parent dies

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


def can_fork() -> bool:
    """Whether ``forked_map`` runs its tasks in child processes here (Linux: a forked child shares
    the parent's memory copy-on-write and starts at once; elsewhere fork is unsafe or absent)."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


def forked_map(tasks: Sequence[Callable[[], T]], threads: int) -> list[T]:
    """Run ``tasks`` side by side, each with ``threads`` intra-op threads: the first in this
    process, the others in forked children, which hand their results back pickled through a pipe.

    Small CPU-bound trainings scale better over processes than over one process's threads. The
    results are exactly what running the tasks one after another would give, provided each
    task's numbers do not depend on the thread count; a child that fails or dies (or a platform
    without fork) has its task run again here, so the call only ever costs time. While tasks run
    side by side, NumPy's BLAS gets the same thread count here and in the children: its idle
    threads keep a core busy for a while after each call, which took that core from the other
    process (the refinement's two searches ran slower side by side than one after another)."""
    if len(tasks) == 1 or not can_fork():
        with torch_threads(threads):
            return [task() for task in tasks]
    children: list[tuple[int, int]] = []
    blas = threadpool_limits(threads, user_api="blas")
    try:
        for task in tasks[1:]:
            with signals_deferred():
                children.append(_fork(task, threads))
        with torch_threads(threads):
            results = [tasks[0]()]
        for (pid, fd), task in zip(children, tasks[1:]):
            results.append(_collect(pid, fd, task, threads))
        children.clear()
        return results
    finally:
        blas.restore_original_limits()
        for pid, fd in children:  # this process failed or was interrupted: stop the rest
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            with contextlib.suppress(OSError):
                os.close(fd)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Run a block with SIGINT and SIGTERM held back: a signal that arrives meanwhile reaches its
    handler when the block ends. ``os.fork`` runs callbacks (logging releases its lock in the
    parent); a handler that raises there (the CLI's interruption) is reported as an ignored
    exception, with a traceback, and the exception is lost. Only the main thread installs
    handlers; elsewhere, or where a handler was not set from Python, the block runs as it is."""
    names = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.getsignal(sig) for sig in names}
    if threading.current_thread() is not threading.main_thread() or None in previous.values():
        yield
        return
    caught: list[int] = []
    for sig in names:
        signal.signal(sig, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(caught):
            signal.raise_signal(sig)


def _fork(task: Callable[[], T], threads: int) -> tuple[int, int]:
    read, write = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write)
        return pid, read
    # The child: compute, hand the result over, and leave without running the parent's cleanup.
    try:
        os.close(read)
        _die_with_parent()
        torch.set_num_threads(max(1, threads))
        payload = pickle.dumps(("ok", task()))
    except BaseException as exc:  # noqa: BLE001 - whatever it was, the parent redoes the task
        payload = pickle.dumps(("failed", f"{type(exc).__name__}: {exc}"))
    try:
        with os.fdopen(write, "wb") as pipe:
            pipe.write(payload)
    finally:
        os._exit(0)


def _collect(pid: int, fd: int, task: Callable[[], T], threads: int) -> T:
    with os.fdopen(fd, "rb") as pipe:
        payload = pipe.read()
    os.waitpid(pid, 0)
    try:
        status, value = pickle.loads(payload)
    except Exception:  # noqa: BLE001 - a child killed before it wrote
        status, value = "failed", "the worker process ended without a result"
    if status == "ok":
        return value
    log.warning("a forked worker failed (%s); running its share here", value)
    with torch_threads(threads):
        return task()


def _die_with_parent() -> None:
    """Ask Linux to kill this child when its parent dies (a killed batch leaves no workers)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
