"""Run the (method, seed) pairs of an experiment in worker processes, one torch thread each.

The runs of an experiment are independent and each one seeds itself, so they can run side by
side. On the 2-core development machine two single-threaded processes do twice the work of one
process with two threads (the small models here do not scale across threads). Workers are
forked from the parent after the task is built, so the pretrained backbone is shared
copy-on-write and never pickled; only the (method, seed) pair goes in and the result row plus
the task's optional per-run artifact (``Task.keep``) come back.

With one torch thread per process every run computes exactly what a serial run with
``threads=1`` computes, whatever the number of workers.

Example::

    rows, artifacts = run_all(task, [lora_r1, full_ft], seeds=[0, 1, 2], jobs=2)
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import torch

from ._common import Row, Task, run_method
from .methods import Method

Pairs = Sequence[tuple[Method, int]]
Result = tuple[int, Row, Any]

#: the task of the pool being run; set in the parent just before the workers are forked
_TASK: Task | None = None


def available_cpus() -> int:
    """CPUs this process may run on (``os.sched_getaffinity`` where it exists)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


#: modules that start native threads at import; forking a process that loaded one can deadlock
FORK_UNSAFE_MODULES = ("jax", "tensorflow")


def fork_blocker() -> str | None:
    """Why worker processes must not be forked here, or None if they may.

    Windows has no ``fork``; a process that imported JAX (or TensorFlow) runs native threads,
    and a forked child can inherit one of their locks held forever. Experiments never import
    them, but a notebook or test session that did gets a serial run instead of a possible hang.
    """
    if "fork" not in multiprocessing.get_all_start_methods():
        return "this platform cannot fork worker processes"
    loaded = [name for name in FORK_UNSAFE_MODULES if name in sys.modules]
    if loaded:
        return f"{', '.join(loaded)} is loaded in this process (forking its threads can deadlock)"
    return None


def can_fork() -> bool:
    """Whether worker processes can be forked here (see :func:`fork_blocker`)."""
    return fork_blocker() is None


def run_one(task: Task, method: Method, seed: int, split: str = "test") -> tuple[Row, Any]:
    """One run and the task's artifact of it (None if the task keeps nothing, or for a
    validation run)."""
    row, model = run_method(task, method, seed, split)
    artifact = task.keep(method, seed, model) if task.keep is not None and split == "test" else None
    return row, artifact


def blas_threads(n: int) -> AbstractContextManager[Any]:
    """Limit the BLAS/OpenMP pools NumPy and torch loaded to ``n`` threads, at once.

    Used as a context manager, the previous limits come back on exit. ``torch.set_num_threads``
    does not reach NumPy's OpenBLAS, which the library's torch CPU path uses for the Fastfood
    transform; unlimited, two single-threaded workers each start an OpenBLAS pool and four
    threads fight over two cores. Without ``threadpoolctl`` (a scikit-learn dependency) nothing
    is limited.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return nullcontext()
    return threadpool_limits(limits=n)


def _init_worker(threads: int = 1) -> None:
    torch.set_num_threads(threads)
    blas_threads(threads)  # for the worker's lifetime


def _work(job: tuple[int, Method, int, str]) -> Result:
    index, method, seed, split = job
    assert _TASK is not None, "worker started without a task"
    row, artifact = run_one(_TASK, method, seed, split)
    return index, row, artifact


@contextmanager
def worker_pool(
    task: Task, jobs: int, runs: int, threads: int = 1, split: str = "test"
) -> Iterator[Callable[[Pairs], Iterator[Result]]]:
    """A function that runs pairs and yields ``(index into pairs, row, artifact)`` as they finish.

    With ``jobs > 1`` (and more than one run, on a platform with ``fork``) the worker processes
    are forked when the block is entered, so open it before starting any thread (a progress
    display); otherwise everything runs in this process, in order. Each worker runs
    ``threads`` torch (and BLAS) threads. Every run is scored on ``split``.
    """
    if jobs <= 1 or runs <= 1 or not can_fork():

        def serial(pairs: Pairs) -> Iterator[Result]:
            for index, (method, seed) in enumerate(pairs):
                yield (index, *run_one(task, method, seed, split))

        yield serial
        return
    global _TASK
    _TASK = task
    try:
        context = multiprocessing.get_context("fork")
        with context.Pool(min(jobs, runs), initializer=_init_worker, initargs=(threads,)) as pool:

            def parallel(pairs: Pairs) -> Iterator[Result]:
                work = [(i, m, s, split) for i, (m, s) in enumerate(pairs)]
                return pool.imap_unordered(_work, work, chunksize=1)

            yield parallel
    finally:
        _TASK = None


def run_all(
    task: Task,
    methods: Sequence[Method],
    seeds: Sequence[int],
    show_progress: bool = True,
    jobs: int = 1,
    threads: int = 1,
    split: str = "test",
    pairs: Pairs | None = None,
    on_row: Callable[[int, Row], None] | None = None,
) -> tuple[list[Row], dict[tuple[str, int], Any]]:
    """Run every applicable method on every seed with a progress bar (with an ETA).

    ``threads``: torch threads of each worker process (with ``jobs > 1``). ``split``: where
    the runs are scored (``"val"`` for tuning runs). ``pairs``: explicit (method, seed) runs
    instead of every method on every seed (the protocol's tuning rounds). ``on_row(index into
    pairs, row)`` is called as each run finishes (the protocol saves its records as it goes).

    Returns the rows in (method, seed) order whatever order the workers finished in, and the
    artifacts of ``task.keep`` keyed by ``(method name, seed)``.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from ..console import make_console

    methods = [m for m in methods if m.kind not in task.skip_kinds and m.name not in task.skip_methods]
    if pairs is None:
        pairs = [(m, s) for m in methods for s in seeds]
    done: dict[int, tuple[Row, Any]] = {}
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    with worker_pool(task, jobs, len(pairs), threads, split) as run_pairs, \
            Progress(*columns, console=make_console(), disable=not show_progress) as progress:
        what = "tuning runs" if split == "val" else "runs"
        bar = progress.add_task(f"{task.name}: {len(pairs)} {what}, {jobs} jobs", total=len(pairs))
        for index, row, artifact in run_pairs(pairs):
            done[index] = (row, artifact)
            if on_row is not None:
                on_row(index, row)
            progress.advance(bar)
            if show_progress:
                shown = ", ".join(f"{k}={v:.3f}" for k, v in row.metrics.items())
                progress.console.print(
                    f"{row.method:<32} seed {row.seed}{'' if row.lr is None else f' lr {row.lr:.3g}'}: {shown}  "
                    f"params {row.adapter_params}+{row.head_params}  {row.wall_s:.1f}s",
                    highlight=False,
                )
    rows = [done[i][0] for i in range(len(pairs))]
    artifacts = {(m.name, s): done[i][1] for i, (m, s) in enumerate(pairs)
                 if done[i][1] is not None}
    return rows, artifacts
