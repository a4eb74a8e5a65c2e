"""Forked CPU workers (``blindsr.runtime.forked_map``): results in order, and a failed worker's task
redone in the parent."""
from __future__ import annotations

import logging
import os
import signal
import time

import pytest
import torch
from threadpoolctl import threadpool_info, threadpool_limits

import blindsr.runtime as runtime
from blindsr.runtime import can_fork, forked_map, signals_deferred


@pytest.mark.skipif(not can_fork(), reason="forked workers on Linux only")
def test_forked_map_runs_tasks_in_children_in_order():
    parent = os.getpid()
    results = forked_map([lambda: (os.getpid(), torch.get_num_threads(), "a"),
                          lambda: (os.getpid(), torch.get_num_threads(), "b"),
                          lambda: (os.getpid(), torch.get_num_threads(), "c")], threads=1)
    assert [r[2] for r in results] == ["a", "b", "c"]
    assert results[0][0] == parent and len({r[0] for r in results}) == 3
    assert all(r[1] == 1 for r in results)


def blas_threads() -> list[int]:
    return [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]


@pytest.mark.skipif(not can_fork(), reason="forked workers on Linux only")
def test_forked_map_gives_numpy_blas_the_thread_count_and_restores_it():
    """NumPy's BLAS runs with the map's thread count in the parent's task and in the children
    (its idle threads would take the other process's core), and gets its own count back after."""
    with threadpool_limits(2, user_api="blas"):
        before = blas_threads()
        assert before, "NumPy's BLAS was not found"
        results = forked_map([blas_threads, blas_threads], threads=1)
        assert blas_threads() == before
    assert results == [[1] * len(before)] * 2


@pytest.mark.skipif(not can_fork(), reason="forked workers on Linux only")
def test_forked_map_redoes_a_failed_or_killed_child_here(caplog):
    """A child that raises, or dies without a word, costs time, never the result."""
    parent = os.getpid()

    def raises_in_child():
        if os.getpid() != parent:
            raise RuntimeError("boom")
        return "redone"

    def dies_in_child():
        if os.getpid() != parent:
            os._exit(3)
        return "redone too"

    with caplog.at_level(logging.WARNING):
        assert forked_map([lambda: "here", raises_in_child, dies_in_child], threads=1) == ["here", "redone", "redone too"]
    assert "RuntimeError: boom" in caplog.text and "ended without a result" in caplog.text


class Stop(BaseException):
    """What the CLI's SIGTERM handler raises (``blindsr.cli.Interrupted``)."""


@pytest.fixture
def raising_sigterm():
    seen: list[int] = []

    def handler(signum, frame):
        seen.append(signum)
        raise Stop()

    previous = signal.signal(signal.SIGTERM, handler)
    yield seen, handler
    signal.signal(signal.SIGTERM, previous)


def test_signals_deferred_hold_a_signal_until_the_block_ends(raising_sigterm):
    seen, handler = raising_sigterm
    inside = None
    with pytest.raises(Stop):
        with signals_deferred():
            signal.raise_signal(signal.SIGTERM)
            inside = list(seen)
    assert inside == [] and seen == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGTERM) is handler


# Signals to raise in the parent from inside os.fork's callbacks, where CI once caught the CLI's
# SIGTERM (logging's lock release): registered once, armed by the test that needs it.
AFTER_FORK: list[int] = []
if can_fork():
    os.register_at_fork(after_in_parent=lambda: AFTER_FORK and signal.raise_signal(AFTER_FORK.pop()))


@pytest.mark.skipif(not can_fork(), reason="forked workers on Linux only")
def test_a_signal_while_forking_interrupts_the_map_and_leaves_no_child(raising_sigterm, monkeypatch):
    """SIGTERM that arrives while os.fork runs its callbacks (a raising handler there would be
    reported as an ignored exception, traceback and all, and the map would go on) reaches the
    handler once the child is counted: the map stops, and its child is killed and reaped."""
    seen, _ = raising_sigterm
    forked: list[int] = []
    real_fork = runtime._fork

    def recorded_fork(task, threads):
        pid, fd = real_fork(task, threads)
        forked.append(pid)
        return pid, fd

    monkeypatch.setattr(runtime, "_fork", recorded_fork)
    AFTER_FORK.append(signal.SIGTERM)
    try:
        with pytest.raises(Stop):
            forked_map([lambda: "here", lambda: time.sleep(5)], threads=1)
    finally:
        AFTER_FORK.clear()
    assert seen == [signal.SIGTERM] and len(forked) == 1
    with pytest.raises(ChildProcessError):
        os.waitpid(forked[0], os.WNOHANG)  # already reaped
