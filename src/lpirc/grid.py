"""Running a grid of independent tasks (seeds x alphas x teachers, ...): serially, on a process pool
(the default) or on Dask.

Every experiment of the book is a grid of training runs that do not depend on each other. A grid
point is a *pure task*: a module-level function called with keyword arguments that are file paths
and parameters; it writes files only into its own folder and returns one row (a dict). Nothing is
shared through globals, so the same task runs

- ``serial``: one after the other in one worker process, set up like a Dask worker;
- ``local`` (default): one single-threaded worker process per core (a process pool), TensorFlow's
  thread pools set to one thread to match;
- ``dask-local``: the same on a Dask ``LocalCluster`` (one single-threaded worker per core), with
  Dask's dashboard and performance report. Measured on a 2-core host: each Dask worker's event loop
  kept about one core busy while TensorFlow trained, so two workers on two cores ran the tasks about
  half as fast as the process pool (see ``tools/grid_speedup.py``); hence ``local`` is the pool;
- ``tcp://HOST:8786``: on an existing Dask cluster (``dask scheduler`` + ``dask worker``, dask-jobqueue
  on SLURM, Kubernetes). Its workers must run this project's environment and see the same results
  folder (a shared filesystem). Workers started with ``--resources GPU=1`` get one task per GPU.

The workers of ``serial`` and ``local`` live as long as the process that asked for them (a chapter's
kernel), so a chapter's second grid finds them started (:func:`fresh_workers` gives a grid new ones);
a worker imports TensorFlow only when a task needs it, and ends by itself if that process dies.

``LPIRC_SCHEDULER`` (set by ``lpirc run --scheduler``) chooses when the caller does not. Results do
not depend on where tasks ran: each task seeds itself from its own ``seed`` and TensorFlow runs with
op determinism and the same thread count everywhere (see :data:`TASK_THREADS`).
"""
from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import as_completed as futures_completed
from pathlib import Path
from typing import Callable

import cloudpickle
from tqdm.auto import tqdm

from lpirc.choices import check_scheduler
from lpirc.tfutil import tensorflow as _tf
from lpirc.tfutil import when_imported

import psutil

# Threads per task for TensorFlow's intra- and inter-op pools. One everywhere, serial included: the
# tasks of a grid are the parallelism, and a fixed count keeps float summation order, hence results,
# the same (measured: the same task trained with 2 threads and with 1 gives different weights).
TASK_THREADS = 1
WORKER_ENV = {"OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": str(TASK_THREADS),
              "TF_NUM_INTEROP_THREADS": str(TASK_THREADS), "TF_USE_LEGACY_KERAS": "1",
              "TF_CPP_MIN_LOG_LEVEL": "3", "TF_DETERMINISTIC_OPS": "1", "PYTHONHASHSEED": "0"}


class GridTaskFailed(RuntimeError):
    """One or more grid points raised; the message names each point and carries its traceback."""

    def __init__(self, label: str, failures: list[tuple[dict, str]], total: int):
        self.failures = failures
        lines = [f"{label}: {len(failures)} of {total} tasks failed"]
        for point, tb in failures:
            lines.append(f"--- grid point {describe(point)}\n{tb.rstrip()}")
        super().__init__("\n".join(lines))


def describe(point: dict) -> str:
    """The parameters that vary, not the paths: 'alpha=0.5 teacher=resnet8 seed=1'."""
    return " ".join(f"{k}={v}" for k, v in point.items() if not isinstance(v, (str, Path)) or k in
                    ("teacher", "arm", "config", "name")) or str(point)


def scheduler_from_env(scheduler: str | None = None) -> str:
    return check_scheduler(scheduler or os.environ.get("LPIRC_SCHEDULER") or "local")


def configure_threads(threads: int = TASK_THREADS) -> None:
    """Set TensorFlow's thread pools, if TensorFlow has not run anything yet in this process."""
    tf = _tf()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass                                    # already initialised: a worker running its second task
    tf.config.experimental.enable_op_determinism()


_TASKS_RUN = [0]     # tasks this process has run (the first one pays for starting the worker)


def _call(task: Callable, point: dict) -> dict:
    """Run one task; its row gains ``timing_s['start']``: for a worker's first task, the time from the
    process's creation through TensorFlow's import and set-up, else the set-up alone (what a task
    spends before its own work). TensorFlow's thread pools are set when TensorFlow is imported, by
    the task's module (unpickling the task imports it) or later by the task itself through
    lpirc.tfutil; a task that never uses TensorFlow (squaring numbers) never imports it."""
    t0 = time.perf_counter()
    created = time.time() - psutil.Process().create_time() if not _TASKS_RUN[0] else 0.0
    when_imported(configure_threads)
    start = created + time.perf_counter() - t0
    row = task(**point)
    _TASKS_RUN[0] += 1
    if isinstance(row, dict):
        row["timing_s"] = {"start": start, **row.get("timing_s", {})}
    return row


def _exit_with_parent(parent: int) -> None:
    """A pool worker whose parent (a chapter's kernel) died, even by SIGKILL, ends by itself: idle
    workers of a long-lived pool would otherwise wait for tasks forever."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def _worker_init(parent: int) -> None:
    os.environ.update(WORKER_ENV)
    # Ctrl-C, or a kernel's shutdown (which interrupts the kernel's process group), ends a worker at once
    # and quietly, idle or not, as it ended the short-lived workers before
    signal.signal(signal.SIGINT, lambda *_: os._exit(1))
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _call_pickled(blob: bytes) -> dict:
    task, point = cloudpickle.loads(blob)
    return _call(task, point)


_POOLS: dict[int, ProcessPoolExecutor] = {}     # long-lived process pools of this process, by size


def _worker_pool(workers: int) -> ProcessPoolExecutor:
    """The process pool of ``workers`` spawned workers, started by the first grid that asks for it and
    kept for the next ones (a worker starts on the first task it is given, not before); a pool broken
    by a worker that crashed (killed, out of memory) is replaced."""
    pool = _POOLS.get(workers)
    if pool is None or getattr(pool, "_broken", False):
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_init, initargs=(os.getpid(),))
        _POOLS[workers] = pool
    return pool


@contextlib.contextmanager
def fresh_workers():
    """Grids run inside the block start workers of their own, ended with the block: what a task costs
    on a new worker (its process start and TensorFlow's import), measured as it was before workers lived on."""
    global _POOLS
    saved, _POOLS = _POOLS, {}
    try:
        yield
    finally:
        for pool in _POOLS.values():
            pool.shutdown(wait=True)
        _POOLS = saved


def _pool(task, points, label, progress, workers: int):
    """The tasks on ``workers`` spawned worker processes (no Dask), each set up exactly like a Dask
    worker; ``workers=1`` runs them one at a time.

    Not in this process: TensorFlow here may already run with another thread count, and a different
    thread count changes float summation order, hence trained weights."""
    rows, failures = [None] * len(points), []
    pool = _worker_pool(workers)
    futures = {pool.submit(_call_pickled, cloudpickle.dumps((task, point))): i for i, point in enumerate(points)}
    try:
        with tqdm(total=len(points), desc=label, unit="task", disable=not progress) as bar:
            for future in futures_completed(futures):
                i = futures[future]
                try:
                    rows[i] = future.result()
                except Exception as exc:        # noqa: BLE001 — reported with its grid point below
                    failures.append((points[i], "".join(traceback.format_exception(exc))))
                bar.update(1)
    except BaseException:                       # interrupted: the grid's tasks not started never start
        for future in futures:
            future.cancel()
        raise
    return rows, failures


def _local_cluster():
    from distributed import LocalCluster     # Dask only for Dask's schedulers (see tests/test_layers.py)

    workers = max(1, os.cpu_count() or 1)
    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, env=WORKER_ENV,
                        dashboard_address=":0", silence_logs=40)


def _dask(task, points, label, progress, scheduler, report):
    from distributed import Client, as_completed, performance_report

    for name in ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.core"):
        logging.getLogger(name).setLevel(logging.WARNING)      # their INFO lines would flood the chapter

    cluster = _local_cluster() if scheduler == "dask-local" else None
    with Client(cluster if cluster is not None else scheduler) as client:
        info = client.scheduler_info()
        has_gpu = any(w.get("resources", {}).get("GPU") for w in info.get("workers", {}).values())
        resources = {"GPU": 1} if has_gpu else None
        ctx = performance_report(filename=str(report)) if report else contextlib.nullcontext()
        with ctx:
            futures = {client.submit(_call, task, point, key=f"{label}-{i}-{time.time_ns()}", pure=False,
                                     resources=resources): i for i, point in enumerate(points)}
            rows, failures = [None] * len(points), []
            bar = tqdm(total=len(points), desc=f"{label} ({scheduler})", unit="task", disable=not progress)
            for future in as_completed(futures):
                i = futures[future]
                if future.status == "error":
                    exc, tb = future.exception(), future.traceback()
                    failures.append((points[i], "".join(traceback.format_exception(type(exc), exc, tb))))
                else:
                    rows[i] = future.result()
                bar.update(1)
            bar.close()
    if cluster is not None:
        cluster.close()
    return rows, failures


def run_grid(task: Callable, points: list[dict], *, label: str = "grid", scheduler: str | None = None,
             progress: bool = True, report: Path | str | None = None) -> list[dict]:
    """``[task(**p) for p in points]``, on the chosen scheduler; rows in the order of ``points``.

    Every task runs even when some fail; then :class:`GridTaskFailed` names each failed point with its
    traceback. ``report``: where to write Dask's performance report (task timeline, HTML)."""
    scheduler = scheduler_from_env(scheduler)
    if not points:
        return []
    if scheduler in ("serial", "local"):
        # one pool per scheduler: a pool starts a worker only when no started one is idle, so a grid of
        # fewer points than cores starts no more workers than it has points
        workers = 1 if scheduler == "serial" else max(1, os.cpu_count() or 1)
        rows, failures = _pool(task, points, label, progress, workers)
    else:
        rows, failures = _dask(task, points, label, progress, scheduler, report)
    if failures:
        raise GridTaskFailed(label, failures, len(points))
    return rows
