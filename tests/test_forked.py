"""Forked CPU workers (``blindsr.runtime.forked_map``): results in order, and a failed worker's task
redone in the parent."""
from __future__ import annotations

import logging
import os

import pytest
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from blindsr.runtime import can_fork, forked_map


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
