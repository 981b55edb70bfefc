"""The tuning protocol: one learning-rate search per method, chosen on validation data only.

Every method of a task is treated the same way:

1. **Grid.** At least 5 log-spaced learning rates around the method kind's default
   (:func:`lr_grid`: ``center * 10**(k/2)`` for k = -2..2, half a decade apart).
2. **Selection.** Each rate is trained on two tuning seeds (:data:`TUNING_SEEDS`, disjoint from the
   final seeds) on the *fit* split and scored on a *validation* split held out of the training
   data; the rate with the best mean of the two seeds wins (:func:`choose_rate`). The test split
   is never evaluated while tuning.
3. **Widening.** While the best rate lies on an edge of the grid, one more rate half a decade
   beyond that edge is tried (at most :data:`MAX_WIDEN` times per side).
4. **Final runs.** Three fresh seeds (:data:`FINAL_SEEDS`) at the chosen rate, scored on the test
   split, reported with 95% t-intervals (:func:`t_interval`).

Steps, batch size and schedule (AdamW, cosine) are the task's, the same for every method. The
tuning records are plain CSV (:func:`write_tuning_csv` / :func:`read_tuning_csv`), so the chosen
rates, and from them the tables, can be rebuilt without training.

>>> lr_grid(1e-2)
[0.001, 0.00316228, 0.01, 0.0316228, 0.1]
>>> choose_rate({0.01: [0.5, 0.7], 0.1: [0.8, 0.8], 1.0: [0.2, 0.3]})
(0.1, None)
"""

from __future__ import annotations

import csv
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: seeds of the tuning runs (selection on the validation split)
TUNING_SEEDS: tuple[int, ...] = (100, 101)
#: seeds of the final runs at the chosen rate (test split)
FINAL_SEEDS: tuple[int, ...] = (0, 1, 2)
#: points of the initial grid, and their spacing in decades
GRID_POINTS = 5
GRID_STEP_DECADES = 0.5
#: how often the grid may grow by one point past the same edge
MAX_WIDEN = 3
#: share of the target training data held out as the validation split
VALIDATION_SHARE = 0.2


def _round(x: float) -> float:
    return float(f"{x:.6g}")


def lr_grid(center: float, points: int = GRID_POINTS, step_decades: float = GRID_STEP_DECADES) -> list[float]:
    """``points`` log-spaced rates, ``step_decades`` apart, centred on ``center`` (rounded to 6
    significant digits so that they survive a CSV round trip unchanged).

    >>> lr_grid(3e-2, points=3)
    [0.00948683, 0.03, 0.0948683]
    """
    if points < 1 or center <= 0:
        raise ValueError(f"lr_grid needs points >= 1 and center > 0, got {points}, {center}")
    half = (points - 1) / 2
    return [_round(center * 10 ** ((k - half) * step_decades)) for k in range(points)]


def beyond(rates: Sequence[float], edge: str, step_decades: float = GRID_STEP_DECADES) -> float:
    """The next rate half a decade (``step_decades``) past the ``"low"`` or ``"high"`` edge."""
    if edge == "low":
        return _round(min(rates) * 10 ** (-step_decades))
    if edge == "high":
        return _round(max(rates) * 10**step_decades)
    raise ValueError(f"edge must be 'low' or 'high', got {edge!r}")


def choose_rate(
    scores: Mapping[float, Sequence[float]], higher_is_better: bool = True
) -> tuple[float, str | None]:
    """The rate with the best mean validation score, and the edge it lies on (None: interior).

    Ties go to the smaller rate. A rate whose runs diverged (NaN) counts as the worst score. With
    one rate in the grid, that rate is on both edges; ``"low"`` is returned.

    >>> choose_rate({1e-3: [0.9, 0.9], 1e-2: [0.7, 0.8]})
    (0.001, 'low')
    >>> choose_rate({1e-3: [1.0], 1e-2: [0.5]}, higher_is_better=False)
    (0.01, 'high')
    """
    if not scores:
        raise ValueError("choose_rate needs at least one rate")
    sign = 1.0 if higher_is_better else -1.0

    def key(rate: float) -> float:
        mean = float(np.mean(scores[rate]))
        return -math.inf if math.isnan(mean) else sign * mean

    rates = sorted(scores)
    best = max(rates, key=lambda r: (key(r), -r))
    edge = "low" if best == rates[0] else "high" if best == rates[-1] else None
    return best, edge


@dataclass(frozen=True)
class TuningRecord:
    """One tuning run: a method at one rate on one tuning seed, scored on the validation split.

    ``value`` is kept to the 6 significant digits the tuning CSV stores, so that a choice made
    in the sweep is the choice recomputed from its CSV (the shipped rates), also where two
    rates' means differ only by float rounding.

    >>> TuningRecord("t", "m", "f", 1, 0.01, 0, "accuracy", 846 / 1204, 1.0).value
    0.702658
    """

    task: str
    method: str
    family: str
    adapter_params: int
    lr: float
    seed: int
    metric: str
    value: float
    wall_s: float
    steps: int | None = None  # training steps of the tuning run (None: the task's full budget)

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", float(f"{self.value:.6g}"))


TUNING_FIELDS = ("task", "method", "family", "adapter_params", "lr", "seed", "metric", "value", "wall_s", "steps")


def write_tuning_csv(records: Sequence[TuningRecord], path: Path) -> None:
    """Tuning runs, one per line (values to 6 significant digits)."""
    with Path(path).open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(TUNING_FIELDS)
        for r in records:
            w.writerow([r.task, r.method, r.family, r.adapter_params, f"{r.lr:.6g}", r.seed, r.metric,
                        f"{r.value:.6g}", f"{r.wall_s:.2f}", "" if r.steps is None else r.steps])


def read_tuning_csv(path: Path) -> list[TuningRecord]:
    """Tuning runs written by :func:`write_tuning_csv` (a missing or empty ``steps``: full budget)."""
    with Path(path).open() as f:
        return [
            TuningRecord(r["task"], r["method"], r["family"], int(r["adapter_params"]), float(r["lr"]),
                         int(r["seed"]), r["metric"], float(r["value"]), float(r["wall_s"]),
                         int(r["steps"]) if r.get("steps") else None)
            for r in csv.DictReader(f)
        ]


def scores_by_rate(records: Sequence[TuningRecord], method: str) -> dict[float, list[float]]:
    """The validation scores of one method, by rate."""
    out: dict[float, list[float]] = {}
    for r in records:
        if r.method == method:
            out.setdefault(r.lr, []).append(r.value)
    return out


@dataclass(frozen=True)
class Choice:
    """The chosen rate of one method and the evidence: the grid searched and the edge, if any."""

    method: str
    lr: float
    validation: float
    grid: tuple[float, ...]
    edge: str | None

    @property
    def settled(self) -> bool:
        """Whether the best rate is inside the grid (not on an edge)."""
        return self.edge is None


def choices(records: Sequence[TuningRecord], higher_is_better: bool = True) -> dict[str, Choice]:
    """The chosen rate of every method in ``records`` (in first-seen order)."""
    out: dict[str, Choice] = {}
    for method in dict.fromkeys(r.method for r in records):
        scores = scores_by_rate(records, method)
        lr, edge = choose_rate(scores, higher_is_better)
        out[method] = Choice(method, lr, float(np.mean(scores[lr])), tuple(sorted(scores)), edge)
    return out


def next_rates(
    scores: Mapping[float, Sequence[float]],
    higher_is_better: bool = True,
    widened: Mapping[str, int] | None = None,
    max_widen: int = MAX_WIDEN,
) -> list[float]:
    """The rates still to try for one method: one past the edge the best lies on, else none.

    ``widened`` counts how often each edge was already extended (at most ``max_widen``).

    >>> next_rates({0.01: [0.9], 0.1: [0.5]})
    [0.00316228]
    >>> next_rates({0.01: [0.5], 0.1: [0.9], 1.0: [0.6]})
    []
    """
    _, edge = choose_rate(scores, higher_is_better)
    if edge is None or (widened or {}).get(edge, 0) >= max_widen:
        return []
    return [beyond(list(scores), edge)]


def t_interval(values: Sequence[float], level: float = 0.95) -> float:
    """Half-width of the two-sided Student-t confidence interval of the mean (0 for one value).

    >>> round(t_interval([1.0, 2.0, 3.0]), 3)  # t(0.975, 2) = 4.303, std 1, n 3
    2.484
    """
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return 0.0
    return t_quantile(0.5 + level / 2, len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))


@functools.lru_cache(maxsize=64)
def t_quantile(p: float, dof: int) -> float:
    """Student-t quantile (cached: a report's bootstrap asks for the same few thousands of times)."""
    from scipy import stats

    return float(stats.t.ppf(p, dof))


def search(
    methods: Sequence[str],
    centers: Mapping[str, float],
    evaluate: Callable[[list[tuple[str, float, int]]], list[TuningRecord]],
    higher_is_better: bool = True,
    seeds: Sequence[int] = TUNING_SEEDS,
    points: int = GRID_POINTS,
    max_widen: int = MAX_WIDEN,
    known: Sequence[TuningRecord] = (),
) -> list[TuningRecord]:
    """Run the grid search for every method in rounds and return all tuning records.

    ``evaluate`` runs a batch of ``(method, lr, seed)`` jobs (all methods of a round together, so
    that they fill the worker processes) and returns their records. ``known`` records (a cache
    read back from CSV) are reused and not run again. Round 1 is the initial grid of every
    method; each later round adds one rate past the edge of every method whose best is on one.
    """
    records = list(known)
    widened: dict[str, dict[str, int]] = {}
    for m in methods:  # widenings already in the known records count against max_widen
        grid, done = lr_grid(centers[m], points), {r.lr for r in records if r.method == m}
        widened[m] = {"low": sum(lr < min(grid) for lr in done), "high": sum(lr > max(grid) for lr in done)}

    def missing(method: str, rates: Sequence[float]) -> list[tuple[str, float, int]]:
        done = {(r.lr, r.seed) for r in records if r.method == method}
        return [(method, lr, s) for lr in rates for s in seeds if (lr, s) not in done]

    jobs = [j for m in methods for j in missing(m, lr_grid(centers[m], points))]
    while True:
        if jobs:
            records += evaluate(jobs)
        jobs = []
        for m in methods:
            scores = scores_by_rate(records, m)
            for lr in next_rates(scores, higher_is_better, widened[m], max_widen):
                edge = "low" if lr < min(scores) else "high"
                widened[m][edge] = widened[m].get(edge, 0) + 1
                jobs += missing(m, [lr])
        if not jobs:
            return records
