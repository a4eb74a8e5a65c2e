"""The executors on their own (blindsr.executors): every task's result comes back once, progress is
reported per task, a worker's thread budget is what was asked for, and a dead worker becomes the
``on_lost`` record instead of an exception."""
from __future__ import annotations

import os

import pytest

from blindsr.errors import UsageError
from blindsr.executors import LocalExecutor, SerialExecutor, get_executor

pytestmark = pytest.mark.slow  # the CLI in subprocesses, worker processes, training runs


def square(x: int) -> int:
    return x * x


def threads(_: int) -> int:
    import torch

    return torch.get_num_threads()


def die(_: int) -> int:
    os._exit(3)


def never_lost(task: int, message: str) -> None:
    raise AssertionError(f"task {task} lost: {message}")


def test_serial_runs_in_order_and_reports_each_task():
    seen = []
    assert SerialExecutor().run(square, [3, 1, 2], seen.append, never_lost) == [9, 1, 4]
    assert seen == [9, 1, 4]


def test_local_workers_return_every_result_once():
    seen = []
    results = LocalExecutor(workers=2, threads_per_worker=1).run(square, list(range(6)), seen.append, never_lost)
    assert sorted(results) == [0, 1, 4, 9, 16, 25] and sorted(seen) == sorted(results)


def test_local_workers_get_their_thread_budget():
    assert LocalExecutor(workers=1, threads_per_worker=3).run(threads, [0, 1], lambda _: None, never_lost) == [3, 3]


def test_a_dead_worker_is_reported_not_raised():
    lost = []
    results = LocalExecutor(workers=1, threads_per_worker=1).run(
        die, [5], lambda _: None, lambda task, message: lost.append((task, message)) or "lost")
    assert results == ["lost"] and lost[0][0] == 5 and lost[0][1].startswith("worker died")


def test_unknown_executor_is_a_usage_error():
    with pytest.raises(UsageError, match="executor=nope: choose from serial, local, submitit, ray"):
        get_executor("nope")
    assert isinstance(get_executor("local", workers=3), LocalExecutor)
