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
import dataclasses
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
    tune: bool = False,
    tuning: str | Path | None = None,
    tune_steps: int | None = None,
) -> list[Any]:
    """Run one experiment end to end and write its tables and plot.

    Learning rates: with ``tune=True`` the protocol of :mod:`.protocol` runs first (a rate grid
    per method, chosen on the validation split by the mean of 2 tuning seeds, widened at the
    edges), its records go to ``<task>_tuning.csv`` and the final seeds run at the chosen rates.
    Records already in ``tuning`` (a tuning CSV) are reused, not rerun. Without ``tune``, the
    rates chosen in ``tuning`` (default: the shipped :data:`.tuned.TUNED_RATES`) are used, and
    the task's default for the method kind where a method has none (marked in the table).

    Args:
        name: ``digits``, ``diffusion`` or ``minilm``.
        quick: one seed and the quick subset of methods, with a smaller budget.
        out_dir: where the CSV, Markdown and PNG files go (created if missing).
        seeds: final seeds (default: ``(0,)`` quick, ``(0, 1, 2)`` otherwise).
        methods: method names to run instead of the default selection.
        budget: a task-specific budget dataclass overriding the defaults.
        show_progress: draw the progress bar and per-run log lines.
        threads: torch threads for the run, also the limit of NumPy's BLAS pool during it
            (None: 1 when ``jobs > 1``, else leave as is).
        jobs: runs side by side in forked worker processes of one torch thread each (None:
            one per available CPU, at most the number of runs). Results do not depend on it:
            ``jobs=2`` gives the numbers of ``jobs=1, threads=1``. Serial, with a
            ``RuntimeWarning``, where forking is unsafe (no ``fork``; JAX loaded).
        tune: run the learning-rate search before the final seeds.
        tuning: a tuning CSV whose records are reused (``tune``) or whose chosen rates are used.
        tune_steps: shorten the tuning runs to this many steps (cosine schedule over them; the
            final runs keep the task's budget). None: tuning runs are as long as the final ones.

    Returns:
        The per-method summaries (:class:`superlora_tn.experiments.report.Summary`).
    """
    import torch

    from . import _common, protocol, report
    from ._pool import available_cpus, blas_threads, fork_blocker, run_all
    from .methods import random_subspace, select

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
    timing: dict[str, float] = {}
    with blas_threads(threads) if threads is not None else contextlib.nullcontext():
        task = _make_task(name, quick, budget)
        if (task.primary, task.higher_is_better, task.selection_metric) != TASK_METRICS.get(name):
            raise RuntimeError(f"TASK_METRICS[{name!r}] does not describe the task's metrics")
        timing["task setup (s)"] = round(time.perf_counter() - start, 1)
        if methods is None:  # the task's own selection: its methods, and in a full run its random subspaces
            chosen = [m for m in chosen if m.runs_on(name)]
            if not quick:  # the random-subspace control belongs to every full table
                chosen += [random_subspace(d) for d in task.subspace_dims]
        chosen = [m for m in chosen if m.kind not in task.skip_kinds and m.name not in task.skip_methods]
        pool = dict(show_progress=show_progress, jobs=jobs, threads=threads or 1)
        records = _tuning_records(name, tuning)
        if tune:
            t0 = time.perf_counter()
            records = _tune(task, chosen, records, pool, out / f"{name}_tuning.partial.csv", tune_steps)
            protocol.write_tuning_csv(records, out / f"{name}_tuning.csv")
            timing["tuning sweep (s)"] = round(time.perf_counter() - t0, 1)
        rates = _rates(name, task, records, tuning is not None or tune)
        chosen = [dataclasses.replace(m, lr=rates.get(m.name)) for m in chosen]
        t0 = time.perf_counter()
        rows, artifacts = run_all(task, chosen, seeds, **pool)
        timing["final runs (s)"] = round(time.perf_counter() - t0, 1)
    summaries = report.aggregate(rows)
    total_s = time.perf_counter() - start
    extra = task.finish(out, artifacts) if task.finish is not None else ""

    notes = {**task.notes, "seeds": seeds, **timing, "total wall time (s)": round(total_s, 1),
             "torch threads": torch.get_num_threads(), "worker processes": jobs,
             **({"tuning runs": f"shortened to {tune_steps} steps (final runs: the full budget)"} if tune and tune_steps else {}),
             "learning rates": "tuned by the protocol (tuning CSV)" if tune or tuning is not None
             else "shipped tuned rates where available, else the kind default (see the lr column)"}
    write_report(name, rows, records if (tune or tuning is not None) else [], out, notes, extra,
                 title=f"Experiment `{name}`{' (quick)' if quick else ''}")
    return summaries


#: primary metric, direction of every metric, and the validation metric the protocol selects by
TASK_METRICS: dict[str, tuple[str, dict[str, bool], str]] = {
    "digits": ("accuracy", {"accuracy": True}, "accuracy"),
    "diffusion": ("target_share", {"target_share": True, "fd": False, "loss": False}, "loss"),
    "minilm": ("accuracy", {"accuracy": True}, "accuracy"),
}

#: the row d90's gain is measured from: no weight update (MiniLM: every method trains a new head)
GAIN_BASELINES: dict[str, str] = {"digits": "zero-shot", "diffusion": "zero-shot", "minilm": "head only"}


def write_report(
    name: str, rows: Sequence[Any], records: Sequence[Any], out: Path, notes: dict[str, Any] | None = None,
    extra: str = "", title: str | None = None,
) -> None:
    """Write ``<task>_runs.csv``, ``_summary.csv``, ``_plot.png`` and ``_results.md`` (tables with
    95% intervals, tuning, both efficiency factors with bootstrap intervals, the random-subspace
    control) from per-seed rows and tuning records; :func:`rebuild` calls it on saved CSVs."""
    from . import report

    primary, higher, selection = TASK_METRICS[name]
    notes = dict(notes or {})
    out.mkdir(parents=True, exist_ok=True)
    summaries = report.aggregate(rows)
    report.write_rows_csv(rows, out / f"{name}_runs.csv")
    report.write_summary_csv(summaries, out / f"{name}_summary.csv")
    percent = [m for m in higher if m in ("accuracy", "target_share")]
    effs = report.efficiency(summaries, primary, higher[primary])
    report.plot(summaries, list(higher), out / f"{name}_plot.png", title=PLOT_TITLES.get(name, name))
    md = [f"# {title or f'Experiment `{name}`'}\n", "## Setup\n"]
    md += [f"- {k}: {v}" for k, v in notes.items()]
    md += ["", "## Results\n", "Mean ± half-width of the 95% t-interval over the seeds; lr: the "
           "learning rate of the runs.\n", report.markdown_table(summaries, percent=percent)]
    if records:
        md += ["## Learning-rate tuning (validation split, mean of the tuning seeds)\n",
               report.tuning_markdown(records, higher[selection], percent=selection in percent)]
    md += [f"## Parameter efficiency ({primary})\n", report.efficiency_markdown(effs, primary)]
    equal = report.equal_quality(summaries, primary, higher[primary])
    md += ["## SuperLoRA settings against LoRA's curve\n", report.equal_quality_markdown(equal, primary)]
    several = max((s.seeds for s in summaries), default=1) > 1
    for metric in dict.fromkeys([primary, selection]):
        if several:
            md += [f"## Efficiency factors with 95% bootstrap intervals ({metric})\n",
                   f"Seeds of every method resampled with replacement ({report.BOOTSTRAP_DRAWS:,} draws); with 3 seeds the "
                   "interval is a rough guide.\n", report.efficiency_intervals_markdown(rows, metric, higher[metric])]
        if any(s.family == "random subspace" for s in summaries):
            md += [f"## Random-subspace control ({metric})\n",
                   report.subspace_markdown(rows, metric, higher[metric], baseline=GAIN_BASELINES[name])]
    if extra:
        md += [extra]
    md += [f"![{name}]({name}_plot.png)\n"]
    (out / f"{name}_results.md").write_text("\n".join(md))
    (out / f"{name}_notes.json").write_text(json.dumps(notes, indent=1, default=str))


def rebuild(
    name: str, runs: Sequence[str | Path], tuning: Sequence[str | Path] = (), out_dir: str | Path = "results",
    notes: dict[str, Any] | None = None,
) -> list[Any]:
    """Rebuild the tables and plot of a task from saved CSVs, without training.

    ``runs``: ``<task>_runs.csv`` files, concatenated (a method in several keeps its first
    file's rows); ``tuning``: tuning CSVs (records of a method/rate/seed seen twice are kept once).
    """
    from . import protocol, report

    rows: list[Any] = []
    for path in runs:
        have = {r.method for r in rows}
        rows += [r for r in report.read_rows_csv(Path(path)) if r.method not in have]
    records: dict[tuple[str, float, int], Any] = {}
    for path in tuning:
        for r in protocol.read_tuning_csv(Path(path)):
            records.setdefault((r.method, r.lr, r.seed), r)
    write_report(name, rows, list(records.values()), Path(out_dir), notes)
    return report.aggregate(rows)


def _tuning_records(name: str, tuning: str | Path | None) -> list[Any]:
    from . import protocol

    if tuning is None:
        return []
    if not Path(tuning).exists():
        raise FileNotFoundError(f"tuning CSV {tuning} does not exist")
    return [r for r in protocol.read_tuning_csv(Path(tuning)) if r.task == name]


def _tune(
    task: Any, methods: Sequence[Any], known: Sequence[Any], pool: dict[str, Any], partial: Path | None = None,
    steps: int | None = None,
) -> list[Any]:
    """The protocol's search (validation split) for every trained method; returns all records.

    Every finished run is also written to ``partial`` (a tuning CSV), which a stopped sweep can
    be resumed from (``tuning=partial``)."""
    from . import protocol
    from ._pool import run_all

    if task.validate is None:
        raise ValueError(f"task {task.name!r} has no validation split: it cannot be tuned")
    trained = [m for m in methods if m.kind != "zero-shot"]
    by_name = {m.name: m for m in trained}
    metric = task.selection_metric

    def record(row: Any, lr: float) -> Any:
        return protocol.TuningRecord(task.name, row.method, row.family, row.adapter_params, lr, row.seed,
                                     metric, row.metrics[metric], row.wall_s, steps)

    saved = list(known)

    def evaluate(jobs: list[tuple[str, float, int]]) -> list[Any]:
        pairs = [(dataclasses.replace(by_name[m], lr=lr, steps=steps), seed) for m, lr, seed in jobs]

        def save(index: int, row: Any) -> None:  # every finished run, so that a stopped sweep resumes
            saved.append(record(row, jobs[index][1]))
            if partial is not None:
                protocol.write_tuning_csv(saved, partial)

        rows, _ = run_all(task, [], [], split="val", pairs=pairs, on_row=save, **pool)
        return [record(r, lr) for r, (_, lr, _) in zip(rows, jobs)]

    names = [m.name for m in trained]
    centers = {m.name: task.lr(dataclasses.replace(m, lr=None)) for m in trained}
    known = [r for r in known if r.method in by_name]
    return protocol.search(names, centers, evaluate, task.higher_is_better[metric], known=known)


def _rates(name: str, task: Any, records: Sequence[Any], from_records: bool) -> dict[str, float]:
    """Chosen rate per method name: from tuning records, else the shipped table."""
    from . import protocol

    if from_records:
        return {m: c.lr for m, c in protocol.choices(records, task.higher_is_better[task.selection_metric]).items()}
    from .tuned import TUNED_RATES

    return dict(TUNED_RATES.get(name, {}))


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
    parser.add_argument("--tune", action="store_true",
                        help="run the learning-rate protocol first (writes <task>_tuning.csv)")
    parser.add_argument("--tune-steps", type=int, default=None,
                        help="shorten the tuning runs to this many steps (final runs keep the full budget)")
    parser.add_argument("--tuning", default=None,
                        help="tuning CSV: records to reuse with --tune, or whose chosen rates to use")
    parser.add_argument("--rebuild", nargs="+", default=None, metavar="RUNS_CSV",
                        help="no training: rebuild tables and plot from these runs CSVs (and --rebuild-tuning)")
    parser.add_argument("--rebuild-tuning", nargs="+", default=(), metavar="TUNING_CSV")
    args = parser.parse_args(argv)
    if args.rebuild:
        rebuild(args.name, args.rebuild, args.rebuild_tuning, args.out)
        return 0
    run(args.name, quick=args.quick, out_dir=args.out, seeds=args.seeds, methods=args.methods,
        threads=args.threads, jobs=args.jobs, show_progress=not args.no_progress, tune=args.tune,
        tuning=args.tuning, tune_steps=args.tune_steps)
    return 0
