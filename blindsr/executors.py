"""Executors: where a batch's image tasks run. Names equal the Hydra ``executor`` group options.

* ``serial``: one after another in this process.
* ``local``: N worker processes on this machine, each with its own torch thread budget.
* ``submitit``: a SLURM job array (per-task CPUs, GPUs, memory, time limit in the config);
  submitit's ``local`` and ``debug`` clusters run the same code without SLURM.
* ``ray``: tasks on a Ray cluster (``address``), or a local one started for the batch.

``run(fn, tasks, on_done, on_lost)`` calls the top-level function ``fn`` on every task (plain,
picklable data), calls ``on_done(result)`` as tasks finish (in any order) and returns all
results; a task whose worker died (a killed job, a lost node) becomes ``on_lost(task, message)``.
KernelGAN runs single-threaded on the CPU, so kernels are identical whichever executor ran them.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from blindsr.errors import UsageError

OnDone = Callable[[Any], None]
OnLost = Callable[[Any, str], Any]


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, threads))


def _run_in_worker(fn: Callable[[Any], Any], task: Any, threads: int) -> Any:
    _init_worker(threads)
    return fn(task)


@dataclass
class SerialExecutor:
    """One task after another in this process (no options)."""

    def run(self, fn: Callable[[Any], Any], tasks: Sequence[Any], on_done: OnDone,
            on_lost: OnLost) -> list[Any]:
        results = []
        for task in tasks:
            results.append(fn(task))
            on_done(results[-1])
        return results


@dataclass
class LocalExecutor:
    workers: int = 2
    threads_per_worker: int = 0  # 0: the machine's cores divided among the workers

    def run(self, fn: Callable[[Any], Any], tasks: Sequence[Any], on_done: OnDone,
            on_lost: OnLost) -> list[Any]:
        workers = max(1, self.workers)
        threads = self.threads_per_worker or max(1, (os.cpu_count() or 1) // workers)
        results = []
        # spawn: workers start clean (no inherited OpenMP state or threads from this process).
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                 initargs=(threads,)) as pool:
            futures = {pool.submit(fn, task): task for task in tasks}
            for future in as_completed(futures):
                try:
                    results.append(future.result())
                except Exception as exc:  # noqa: BLE001 - a worker process that died
                    results.append(on_lost(futures[future], f"worker died: {exc.__class__.__name__}"))
                on_done(results[-1])
        return results


@dataclass
class SubmititExecutor:
    cluster: str | None = None  # None: SLURM; "local" or "debug" for submitit's own runners
    folder: str = ""  # job logs; default <output>/.submitit
    partition: str | None = None
    timeout_min: int = 60
    cpus_per_task: int = 2
    gpus_per_node: int = 0
    mem_gb: int = 8
    array_parallelism: int = 16
    threads_per_task: int = 0  # 0: cpus_per_task

    def run(self, fn: Callable[[Any], Any], tasks: Sequence[Any], on_done: OnDone,
            on_lost: OnLost) -> list[Any]:
        try:
            import submitit
        except ImportError:
            raise UsageError("executor=submitit needs submitit: pip install 'blindsr[cluster]'") from None
        if not tasks:
            return []
        folder = self.folder or str(Path.cwd() / ".submitit")
        executor = submitit.AutoExecutor(folder=folder, cluster=self.cluster)
        params: dict[str, Any] = {"timeout_min": self.timeout_min, "cpus_per_task": self.cpus_per_task,
                                  "gpus_per_node": self.gpus_per_node, "mem_gb": self.mem_gb,
                                  "slurm_array_parallelism": self.array_parallelism, "name": "blindsr"}
        if self.partition:
            params["slurm_partition"] = self.partition
        executor.update_parameters(**{k: v for k, v in params.items()
                                      if self.cluster is None or not k.startswith("slurm_")})
        threads = self.threads_per_task or self.cpus_per_task
        jobs = executor.map_array(_run_in_worker, [fn] * len(tasks), list(tasks), [threads] * len(tasks))
        results = []
        for task, job in zip(tasks, jobs):
            try:
                results.append(job.result())
            except Exception as exc:  # noqa: BLE001 - a job that died (time limit, node failure)
                results.append(on_lost(task, f"job {job.job_id} failed: {str(exc).splitlines()[0]}"))
            on_done(results[-1])
        return results


@dataclass
class RayExecutor:
    address: str | None = None  # None: start a local Ray for this batch
    num_cpus: float = 1  # per task
    num_gpus: float = 0
    threads_per_task: int = 1

    def run(self, fn: Callable[[Any], Any], tasks: Sequence[Any], on_done: OnDone,
            on_lost: OnLost) -> list[Any]:
        try:
            import ray
        except ImportError:
            raise UsageError("executor=ray needs Ray: pip install 'blindsr[cluster]'") from None
        started = not ray.is_initialized()
        if started:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     **({"num_cpus": os.cpu_count()} if self.address is None else {}))
        try:
            remote = ray.remote(num_cpus=self.num_cpus, num_gpus=self.num_gpus)(_run_in_worker)
            pending = {remote.remote(fn, task, self.threads_per_task): task for task in tasks}
            results = []
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                task = pending.pop(done[0])
                try:
                    results.append(ray.get(done[0]))
                except Exception as exc:  # noqa: BLE001 - a worker that died
                    results.append(on_lost(task, f"ray task failed: {str(exc).splitlines()[0]}"))
                on_done(results[-1])
            return results
        finally:
            if started:
                ray.shutdown()


EXECUTORS: dict[str, Callable[..., Any]] = {
    "serial": SerialExecutor, "local": LocalExecutor, "submitit": SubmititExecutor, "ray": RayExecutor}


def get_executor(name: str, **options: Any):
    if name not in EXECUTORS:
        raise UsageError(f"executor={name}: choose from {', '.join(EXECUTORS)}")
    return EXECUTORS[name](**options)
