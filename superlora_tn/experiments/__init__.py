"""Offline experiment pipelines: quality versus trainable parameters for SuperLoRA and LoRA.

Three tasks (``digits``, ``diffusion``, ``minilm``), each run as::

    from superlora_tn.experiments import run
    summaries = run("digits", quick=True, out_dir="results")

or from the command line (``superlora-tn experiment digits [--quick]``
or ``python -m superlora_tn.experiments digits``). Every run writes, under ``out_dir``:
``<task>_runs.csv`` (per seed), ``<task>_summary.csv``, ``<task>_results.md`` (tables, setup,
efficiency factor) and ``<task>_plot.png`` (metric versus adapter parameters, log x).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TASKS = ("digits", "diffusion", "minilm")
PLOT_TITLES = {
    "digits": "digits: ViT adapted to digits rotated by 90 degrees",
    "diffusion": "diffusion: denoiser adapted from digits 0-4 to 5-9",
    "minilm": "MiniLM: sentiment of VADER lexicon words",
}


def _make_task(name: str, quick: bool, budget: Any = None) -> Any:
    if name == "digits":
        from . import digits

        return digits.make_task(quick=quick, budget=budget)
    if name == "diffusion":
        from . import diffusion

        return diffusion.make_task(quick=quick, budget=budget)
    if name == "minilm":
        from . import minilm

        return minilm.make_task(quick=quick, budget=budget)
    raise ValueError(f"unknown experiment {name!r}; valid: {', '.join(TASKS)}")


def run(
    name: str,
    quick: bool = False,
    out_dir: str | Path = "results",
    seeds: Sequence[int] | None = None,
    methods: Sequence[str] | None = None,
    budget: Any = None,
    show_progress: bool = True,
    threads: int | None = None,
    jobs: int | None = None,
) -> list[Any]:
    """Run one experiment end to end and write its tables and plot.

    Args:
        name: ``digits``, ``diffusion`` or ``minilm``.
        quick: one seed and the quick subset of methods, with a smaller budget.
        out_dir: where the CSV, Markdown and PNG files go (created if missing).
        seeds: seeds to run (default: ``(0,)`` quick, ``(0, 1, 2)`` otherwise).
        methods: method names to run instead of the default selection.
        budget: a task-specific budget dataclass overriding the defaults.
        show_progress: draw the progress bar and per-run log lines.
        threads: torch threads for the run, also the limit of NumPy's BLAS pool during it
            (None: 1 when ``jobs > 1``, else leave as is).
        jobs: runs side by side in forked worker processes of one torch thread each (None:
            one per available CPU, at most the number of runs). Results do not depend on it:
            ``jobs=2`` gives the numbers of ``jobs=1, threads=1``. Serial, with a
            ``RuntimeWarning``, where forking is unsafe (no ``fork``; JAX loaded).

    Returns:
        The per-method summaries (:class:`superlora_tn.experiments.report.Summary`).
    """
    import torch

    from . import _common, report
    from ._pool import available_cpus, blas_threads, fork_blocker, run_all
    from .methods import select

    jobs = available_cpus() if jobs is None else max(1, jobs)
    blocker = fork_blocker()
    if jobs > 1 and blocker is not None:
        warnings.warn(f"running the experiment serially: {blocker}", RuntimeWarning, stacklevel=2)
        jobs = 1
    if threads is None and jobs > 1:
        threads = 1  # pretraining too, so that the backbone does not depend on jobs
    if threads is not None:
        torch.set_num_threads(threads)
    seeds = list(seeds) if seeds is not None else ([0] if quick else [0, 1, 2])
    chosen = select(quick=quick, names=list(methods) if methods is not None else None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _common.SHOW_PROGRESS = show_progress
    start = time.perf_counter()
    with blas_threads(threads) if threads is not None else contextlib.nullcontext():
        task = _make_task(name, quick, budget)
        rows, artifacts = run_all(task, chosen, seeds, show_progress=show_progress, jobs=jobs, threads=threads or 1)
    summaries = report.aggregate(rows)
    total_s = time.perf_counter() - start
    extra = task.finish(out, artifacts) if task.finish is not None else ""

    report.write_rows_csv(rows, out / f"{name}_runs.csv")
    report.write_summary_csv(summaries, out / f"{name}_summary.csv")
    percent = [m for m in task.higher_is_better if m in ("accuracy", "target_share")]
    effs = report.efficiency(summaries, task.primary, task.higher_is_better[task.primary])
    report.plot(summaries, list(task.higher_is_better), out / f"{name}_plot.png", title=PLOT_TITLES.get(name, name))
    notes = {**task.notes, "seeds": seeds, "total wall time (s)": round(total_s, 1),
             "torch threads": torch.get_num_threads(), "worker processes": jobs}
    md = [f"# Experiment `{name}`{' (quick)' if quick else ''}\n", "## Setup\n"]
    md += [f"- {k}: {v}" for k, v in notes.items()]
    md += ["", "## Results\n", report.markdown_table(summaries, percent=percent)]
    md += [f"## Parameter efficiency ({task.primary})\n", report.efficiency_markdown(effs, task.primary)]
    equal = report.equal_quality(summaries, task.primary, task.higher_is_better[task.primary])
    md += ["## SuperLoRA settings against LoRA's curve\n",
           report.equal_quality_markdown(equal, task.primary)]
    if extra:
        md += [extra]
    md += [f"![{name}]({name}_plot.png)\n"]
    (out / f"{name}_results.md").write_text("\n".join(md))
    (out / f"{name}_notes.json").write_text(json.dumps(notes, indent=1, default=str))
    return summaries


def cli_experiment(
    name: str, quick: bool = False, out_dir: str | Path = "results", jobs: int | None = None,
    threads: int | None = None,
) -> int:
    """Entry point for ``superlora-tn experiment NAME [--quick] [--out-dir DIR] [--jobs N] [--threads N]``."""
    run(name, quick=quick, out_dir=out_dir, jobs=jobs, threads=threads)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``NAME [--quick] [--out DIR] [--seeds ..] [--methods ..] [--threads N] [--jobs N]``."""
    parser = argparse.ArgumentParser(prog="superlora-tn experiment", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=TASKS)
    parser.add_argument("--quick", action="store_true", help="one seed, fewer methods")
    parser.add_argument("--out", default="results", help="output folder (default: results)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--methods", nargs="+", default=None, help="method names to run")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per process (default: 1 with several jobs)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="worker processes (default: one per CPU)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    run(args.name, quick=args.quick, out_dir=args.out, seeds=args.seeds, methods=args.methods,
        threads=args.threads, jobs=args.jobs, show_progress=not args.no_progress)
    return 0
