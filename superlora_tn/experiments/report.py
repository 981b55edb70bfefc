"""Results tables (CSV, Markdown), the accuracy-versus-parameters plot, the efficiency factor."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np

from ._common import Row
from .protocol import TuningRecord, choices, scores_by_rate, t_interval

#: families drawn as horizontal reference lines (they train no adapter parameters)
REFERENCE_METHODS = ("zero-shot", "head only")


@dataclass
class Summary:
    """Mean, standard deviation and 95% t-interval half-width of every metric of one method over
    its seeds, and the learning rate of its runs (None where nothing was trained)."""

    method: str
    family: str
    impl: str
    adapter_params: int
    head_params: int
    seeds: int
    mean: dict[str, float]
    std: dict[str, float]
    wall_s: float
    ci: dict[str, float] = field(default_factory=dict)
    lr: float | None = None


def aggregate(rows: Sequence[Row]) -> list[Summary]:
    """Group per-seed rows by method (keeping first-seen order)."""
    order: list[str] = []
    by_method: dict[str, list[Row]] = {}
    for row in rows:
        if row.method not in by_method:
            order.append(row.method)
            by_method[row.method] = []
        by_method[row.method].append(row)
    out = []
    for name in order:
        group = by_method[name]
        metrics = list(group[0].metrics)
        values = {m: np.array([r.metrics[m] for r in group], dtype=float) for m in metrics}
        out.append(
            Summary(
                method=name,
                family=group[0].family,
                impl=group[0].impl,
                adapter_params=group[0].adapter_params,
                head_params=group[0].head_params,
                seeds=len(group),
                mean={m: float(v.mean()) for m, v in values.items()},
                std={m: float(v.std(ddof=1)) if len(v) > 1 else 0.0 for m, v in values.items()},
                wall_s=float(np.mean([r.wall_s for r in group])),
                ci={m: t_interval(v) for m, v in values.items()},
                lr=group[0].lr,
            )
        )
    return out


def write_rows_csv(rows: Sequence[Row], path: Path) -> None:
    """Per-seed results."""
    metrics = list(rows[0].metrics) if rows else []
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["task", "method", "family", "impl", "adapter_params", "head_params", "seed",
                    *metrics, "wall_s", "lr", "split"])
        for r in rows:
            w.writerow([r.task, r.method, r.family, r.impl, r.adapter_params, r.head_params,
                        r.seed, *(f"{r.metrics[m]:.6g}" for m in metrics), f"{r.wall_s:.2f}",
                        "" if r.lr is None else f"{r.lr:.6g}", r.split])


def read_rows_csv(path: Path) -> list[Row]:
    """Per-seed results written by :func:`write_rows_csv` (to re-plot or re-tabulate; files
    without the ``lr``/``split`` columns read as untuned test runs)."""
    fixed = {"task", "method", "family", "impl", "adapter_params", "head_params", "seed", "wall_s", "lr", "split"}
    with Path(path).open() as f:
        return [
            Row(r["task"], r["method"], r["family"], r["impl"], int(r["adapter_params"]),
                int(r["head_params"]), int(r["seed"]),
                {k: float(v) for k, v in r.items() if k not in fixed}, float(r["wall_s"]),
                float(r["lr"]) if r.get("lr") else None, r.get("split") or "test")
            for r in csv.DictReader(f)
        ]


def write_summary_csv(summaries: Sequence[Summary], path: Path) -> None:
    """One row per method: mean/std of each metric and mean wall time per run."""
    metrics = list(summaries[0].mean) if summaries else []
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method", "family", "impl", "adapter_params", "head_params", "seeds",
                    *(f"{m}_{s}" for m in metrics for s in ("mean", "std", "ci95")), "wall_s", "lr"])
        for s in summaries:
            vals = [f"{v:.6g}" for m in metrics for v in (s.mean[m], s.std[m], s.ci.get(m, 0.0))]
            w.writerow([s.method, s.family, s.impl, s.adapter_params, s.head_params, s.seeds,
                        *vals, f"{s.wall_s:.2f}", "" if s.lr is None else f"{s.lr:.6g}"])


def markdown_table(summaries: Sequence[Summary], percent: Sequence[str] = ()) -> str:
    """A Markdown table (mean ± 95% t-interval half-width); metrics named in ``percent`` are shown
    as percentages."""
    metrics = list(summaries[0].mean) if summaries else []
    head = ["method", "family", "adapter params", "head params", "seeds",
            *(f"{m} (mean ± 95% CI)" for m in metrics), "lr", "wall s/run"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summaries:
        cells = []
        for m in metrics:
            ci = s.ci.get(m, 0.0)
            spread = s.seeds > 1  # one seed has no interval: the mean alone
            if m in percent:
                cells.append(f"{100 * s.mean[m]:.1f}" + (f" ± {100 * ci:.1f}" if spread else ""))
            else:
                cells.append(f"{s.mean[m]:.3g}" + (f" ± {ci:.2g}" if spread else ""))
        lr = "-" if s.lr is None else f"{s.lr:.3g}"
        lines.append("| " + " | ".join([s.method, s.family, f"{s.adapter_params:,}",
                                         f"{s.head_params:,}", str(s.seeds), *cells, lr,
                                         f"{s.wall_s:.1f}"]) + " |")
    return "\n".join(lines) + "\n"


@dataclass
class Efficiency:
    """How many fewer parameters the best SuperLoRA setting needs for a LoRA row's quality."""

    lora: str
    lora_params: int
    lora_value: float
    superlora: str | None
    superlora_params: int | None
    superlora_value: float | None

    @property
    def factor(self) -> float | None:
        """LoRA params / SuperLoRA params (None when no SuperLoRA setting reached it)."""
        if self.superlora_params is None:
            return None
        return self.lora_params / self.superlora_params


def efficiency(
    summaries: Sequence[Summary], metric: str, higher_is_better: bool = True
) -> list[Efficiency]:
    """For every LoRA row: the SuperLoRA-family row with the fewest adapter parameters whose mean
    ``metric`` is at least as good as LoRA's mean (means over seeds, no noise allowance)."""
    sign = 1.0 if higher_is_better else -1.0
    supers = [s for s in summaries if s.family.startswith("SuperLoRA")]
    out = []
    for lora in (s for s in summaries if s.family == "LoRA"):
        good = [s for s in supers if sign * s.mean[metric] >= sign * lora.mean[metric]]
        best = min(good, key=lambda s: s.adapter_params, default=None)
        out.append(Efficiency(
            lora.method, lora.adapter_params, lora.mean[metric],
            best.method if best else None,
            best.adapter_params if best else None,
            best.mean[metric] if best else None,
        ))
    return out


def efficiency_markdown(effs: Sequence[Efficiency], metric: str) -> str:
    """The efficiency factors as a Markdown table."""
    if not effs:
        return "(no LoRA rows in this run)\n"
    lines = [f"| LoRA | LoRA params | LoRA {metric} | smallest SuperLoRA setting reaching it | "
             f"its params | its {metric} | factor |", "|---|---|---|---|---|---|---|"]
    for e in effs:
        if e.superlora is None:
            lines.append(f"| {e.lora} | {e.lora_params:,} | {e.lora_value:.3f} | none | - | - | - |")
        else:
            lines.append(
                f"| {e.lora} | {e.lora_params:,} | {e.lora_value:.3f} | {e.superlora} | "
                f"{e.superlora_params:,} | {e.superlora_value:.3f} | {e.factor:.1f}x |"
            )
    return "\n".join(lines) + "\n"


#: axis labels in words, by metric
METRIC_LABELS = {
    "accuracy": "accuracy on held-out data",
    "target_share": "share of samples judged a 5-9 digit",
    "fd": "Frechet distance to real 5-9 digits (lower is better)",
    "loss": "held-out denoising loss (lower is better)",
}
#: Okabe-Ito colours (colour-blind safe) and a marker per family; "+ fastfood" variants share
#: their base family's colour with a dashed line and hollow markers
FAMILY_STYLES = {
    "LoRA": ("#000000", "o"),
    "SuperLoRA 2-D": ("#E69F00", "s"),
    "SuperLoRA 3-D Tucker": ("#56B4E9", "D"),
    "SuperLoRA 4-D Tucker": ("#009E73", "^"),
    "LoKr": ("#D55E00", "v"),
    "LoNKr": ("#CC79A7", "<"),
    "LoTR": ("#0072B2", ">"),
    "full FT": ("#999999", "*"),
    "baseline": ("#7F6000", "P"),
    "random subspace": ("#882255", "x"),
}
EXTRA_STYLES = (("#E69F00", "h"), ("#56B4E9", "p"), ("#009E73", "H"), ("#D55E00", "d"), ("#CC79A7", "8"))


def family_style(family: str, index: int = 0) -> dict[str, object]:
    """Colour, marker, line and marker fill of a family's curve (see :data:`FAMILY_STYLES`).

    >>> family_style("SuperLoRA 3-D Tucker + fastfood")["linestyle"], family_style("LoRA")["color"]
    ('--', '#000000')
    """
    base = family.replace(" + fastfood", "").replace(" shuffled", "")
    color, marker = FAMILY_STYLES.get(base, EXTRA_STYLES[index % len(EXTRA_STYLES)])
    style: dict[str, object] = {"color": color, "marker": marker, "linestyle": "-", "markerfacecolor": color}
    if "fastfood" in family:
        style.update(linestyle="--", markerfacecolor="white")
    if "shuffled" in family:
        style.update(marker="X")
    if family == "random subspace":
        style.update(linestyle=":")
    return style


def plot(
    summaries: Sequence[Summary], metric: str | Sequence[str], path: Path, title: str, ylabel: str | None = None
) -> None:
    """Each metric versus adapter parameters (log x), one curve per family, std as error bars.

    The y axis fits the adapted methods; zero-shot and head-only are horizontal lines when they
    fall inside it, else a note at the edge they lie beyond (so they never squash the data).
    Several metrics are drawn side by side with one legend.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [metric] if isinstance(metric, str) else list(metric)
    fig, axes = plt.subplots(1, len(metrics), figsize=(6.4 * len(metrics) + 2.6, 5.2), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        _plot_metric(ax, summaries, m, ylabel if len(metrics) == 1 and ylabel else METRIC_LABELS.get(m, m))
        if len(metrics) > 1:
            ax.set_title(METRIC_LABELS.get(m, m).split(" (")[0], fontsize=10)
    if len(metrics) > 1:
        fig.suptitle(title, fontsize=11)
    else:
        axes[0][0].set_title(title, fontsize=11)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def _plot_metric(ax: object, summaries: Sequence[Summary], metric: str, ylabel: str) -> None:
    families: dict[str, list[Summary]] = {}
    for s in summaries:
        if s.method in REFERENCE_METHODS or s.adapter_params <= 0 or metric not in s.mean:
            continue
        families.setdefault(s.family, []).append(s)
    low, high = [], []
    for i, (family, group) in enumerate(families.items()):
        group = sorted(group, key=lambda s: s.adapter_params)
        y = [s.mean[metric] for s in group]
        e = [s.std[metric] for s in group]
        low += [v - d for v, d in zip(y, e)]
        high += [v + d for v, d in zip(y, e)]
        style = family_style(family, i)
        if len(group) == 1:
            style["linestyle"] = "none"
        label = family if family != "baseline" else ", ".join(s.method for s in group)
        ax.errorbar([s.adapter_params for s in group], y, yerr=e, capsize=3, label=label, markersize=6, **style)
    pad = 0.08 * ((max(high) - min(low)) or 1.0) if low else 0.1
    bottom, top = (min(low) - pad, max(high) + pad) if low else (0.0, 1.0)
    styles = {"zero-shot": ":", "head only": "--"}
    for s in summaries:
        if s.method not in REFERENCE_METHODS or metric not in s.mean:
            continue
        value = s.mean[metric]
        if bottom <= value <= top:
            ax.axhline(value, color="grey", linestyle=styles[s.method], label=s.method)
            ax.annotate(f"{s.method}: {value:.3g}", xy=(0.99, value), xycoords=("axes fraction", "data"), fontsize=8,
                        color="dimgrey", ha="right", va="bottom")
            continue
        below = value < bottom
        ax.annotate(f"{s.method}: {value:.3g} ({'below' if below else 'above'} the axis)", fontsize=8, color="dimgrey",
                    xy=(0.01, 0.015 if below else 0.985), xycoords="axes fraction", ha="left",
                    va="bottom" if below else "top")
    ax.set_ylim(bottom, top)
    ax.set_xscale("log")
    ax.set_xlabel("trainable adapter parameters (log scale)")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)


def replot(runs_csv: Path, metrics: Sequence[str], path: Path, title: str) -> None:
    """Redraw a saved experiment's plot from its ``<task>_runs.csv`` (no training)."""
    plot(aggregate(read_rows_csv(runs_csv)), metrics, path, title)


@dataclass
class EqualQuality:
    """A SuperLoRA setting against LoRA's curve: how many parameters LoRA needs for its quality.

    ``lora_params`` is read off LoRA's curve (linear in the metric against log parameters
    between neighbouring ranks); None when the setting's quality is outside LoRA's measured range
    (below LoRA's smallest rank or above its best), where nothing is extrapolated.
    """

    method: str
    params: int
    value: float
    lora_params: float | None

    @property
    def factor(self) -> float | None:
        """LoRA params for the same quality / this setting's params."""
        return None if self.lora_params is None else self.lora_params / self.params


def lora_params_for(lora: Sequence[tuple[int, float]], value: float, higher_is_better: bool = True) -> float | None:
    """The fewest parameters at which LoRA's piecewise log-linear curve reaches ``value``.

    ``lora`` holds (params, mean metric) per rank. None if no rank's curve reaches ``value`` or
    the value is worse than the smallest rank's (no extrapolation).

    >>> round(lora_params_for([(1000, 0.70), (2000, 0.80)], 0.75))
    1414
    """
    sign = 1.0 if higher_is_better else -1.0
    points = sorted(lora)
    if not points or sign * value < sign * points[0][1]:
        return None
    if sign * value <= sign * points[0][1]:
        return float(points[0][0])
    for (p0, v0), (p1, v1) in pairwise(points):
        if sign * v0 < sign * value <= sign * v1:
            frac = (value - v0) / (v1 - v0)
            return float(np.exp(np.log(p0) + frac * (np.log(p1) - np.log(p0))))
    return None


def equal_quality(
    summaries: Sequence[Summary], metric: str, higher_is_better: bool = True
) -> list[EqualQuality]:
    """Every SuperLoRA-family row against LoRA's curve (see :class:`EqualQuality`)."""
    lora = [(s.adapter_params, s.mean[metric]) for s in summaries if s.family == "LoRA"]
    return [
        EqualQuality(s.method, s.adapter_params, s.mean[metric],
                     lora_params_for(lora, s.mean[metric], higher_is_better))
        for s in summaries
        if s.family.startswith("SuperLoRA") and s.adapter_params > 0
    ]


def equal_quality_markdown(rows: Sequence[EqualQuality], metric: str) -> str:
    """The settings inside LoRA's range, best factor first, as a Markdown table."""
    inside = sorted((r for r in rows if r.factor is not None), key=lambda r: -(r.factor or 0.0))
    if not inside:
        return "(no SuperLoRA setting lies within LoRA's measured range)\n"
    lines = [f"| SuperLoRA setting | params | {metric} | LoRA params for the same {metric} "
             "(log-interpolated) | factor |", "|---|---|---|---|---|"]
    lines += [f"| {r.method} | {r.params:,} | {r.value:.3f} | {r.lora_params:,.0f} | {r.factor:.1f}x |"
              for r in inside]
    outside = len(rows) - len(inside)
    return "\n".join(lines) + f"\n\n{outside} settings lie outside LoRA's range (not compared).\n"


def tuning_markdown(records: Sequence[TuningRecord], higher_is_better: bool = True, percent: bool = True) -> str:
    """Per method: the rates searched with their validation means, and the chosen rate (bold).

    A chosen rate still on the edge of its grid after the allowed widenings is marked "(edge)".
    """
    if not records:
        return "(no tuning records)\n"
    lines = ["| method | params | chosen lr | validation (mean of seeds) | rates searched: validation |",
             "|---|---:|---:|---:|---|"]
    params = {r.method: r.adapter_params for r in records}
    def shown(x: float) -> str:
        return f"{100 * x:.1f}" if percent else f"{x:.4g}"

    for method, c in choices(records, higher_is_better).items():
        scores = scores_by_rate(records, method)
        cells = ", ".join(
            (f"**{lr:.3g}: {shown(float(np.mean(v)))}**" if lr == c.lr else f"{lr:.3g}: {shown(float(np.mean(v)))}")
            for lr, v in sorted(scores.items()))
        mark = "" if c.settled else " (edge)"
        lines.append(f"| {method} | {params[method]:,} | {c.lr:.3g}{mark} | {shown(c.validation)} | {cells} |")
    return "\n".join(lines) + "\n"


#: bootstrap resamples of the reported intervals (tests lower it)
BOOTSTRAP_DRAWS = 2000

#: the curve reading of :func:`lora_params_for` applies to any family's curve (the random subspace)
params_for = lora_params_for


def family_curve(summaries: Sequence[Summary], family: str, metric: str) -> list[tuple[int, float]]:
    """(adapter params, mean metric) of every row of one family."""
    return [(s.adapter_params, s.mean[metric]) for s in summaries if s.family == family and s.adapter_params > 0]


def _one(summaries: Sequence[Summary], pred: object) -> Summary | None:
    found = [s for s in summaries if pred(s)]  # type: ignore[operator]
    return found[0] if found else None


def d90(summaries: Sequence[Summary], metric: str, higher_is_better: bool = True, share: float = 0.9,
        subspace: str = "random subspace", baseline: str = "zero-shot") -> float | None:
    """Smallest random-subspace dimension reaching ``share`` of full fine-tuning's gain over
    ``baseline`` (log-interpolated along the random-subspace curve; None outside its range).

    The baseline is the row without any weight update that every adapted row builds on:
    zero-shot, or "head only" where every method trains a new head.

    >>> rows = [Row("t", "zero-shot", "baseline", "x", 0, 0, 0, {"a": 0.1}, 0.0),
    ...         Row("t", "full FT (adapted W)", "full FT", "x", 1000, 0, 0, {"a": 1.0}, 0.0),
    ...         Row("t", "rs 10", "random subspace", "x", 10, 0, 0, {"a": 0.5}, 0.0),
    ...         Row("t", "rs 100", "random subspace", "x", 100, 0, 0, {"a": 0.95}, 0.0)]
    >>> round(d90(aggregate(rows), "a"))  # 0.91 = 0.1 + 0.9 * 0.9: 10 ** (1 + 0.41 / 0.45)
    81
    """
    target = gain_target(summaries, metric, share, baseline)
    if target is None:
        return None
    return params_for(family_curve(summaries, subspace, metric), target, higher_is_better)


def gain_target(summaries: Sequence[Summary], metric: str, share: float = 0.9, baseline: str = "zero-shot") -> float | None:
    """``baseline``'s mean plus ``share`` of full fine-tuning's gain over it (None without both rows)."""
    zero = _one(summaries, lambda s: s.method == baseline)
    full = _one(summaries, lambda s: s.family == "full FT")
    if zero is None or full is None:
        return None
    return zero.mean[metric] + share * (full.mean[metric] - zero.mean[metric])


@dataclass
class Equivalent:
    """A SuperLoRA setting against the random-subspace curve: the dimension d at which a random
    subspace reaches the setting's mean (None outside the measured curve)."""

    method: str
    params: int
    value: float
    random_dims: float | None

    @property
    def ratio(self) -> float | None:
        """Equivalent random dimensions per trainable parameter of the setting."""
        return None if self.random_dims is None else self.random_dims / self.params


#: families compared with the random subspace (LoRA and its relatives, every SuperLoRA setting)
COMPARED_FAMILIES = ("SuperLoRA", "LoRA", "LoKr", "LoNKr", "LoTR")


def equivalent_dims(summaries: Sequence[Summary], metric: str, higher_is_better: bool = True,
                    subspace: str = "random subspace") -> list[Equivalent]:
    """The equivalent random dimensions (see :class:`Equivalent`) of every LoRA-family and
    SuperLoRA-family row."""
    curve = family_curve(summaries, subspace, metric)
    return [Equivalent(s.method, s.adapter_params, s.mean[metric], params_for(curve, s.mean[metric], higher_is_better))
            for s in summaries if s.family.startswith(COMPARED_FAMILIES) and s.adapter_params > 0]


def outside_curve(curve: Sequence[tuple[int, float]], value: float, higher_is_better: bool = True) -> str:
    """Where a value lies off a measured curve: ``"< d_min"`` below its first point, ``"> d_max"``
    above its best, ``""`` inside."""
    if not curve:
        return ""
    sign = 1.0 if higher_is_better else -1.0
    points = sorted(curve)
    if sign * value < sign * points[0][1]:
        return f"< {points[0][0]:,}"
    if all(sign * value > sign * v for _, v in points):
        return f"> {points[-1][0]:,}"
    return ""


def resample(rows: Sequence[Row], rng: np.random.Generator) -> list[Row]:
    """A bootstrap resample: every method's seeds drawn with replacement (same count)."""
    by_method: dict[str, list[Row]] = {}
    for r in rows:
        by_method.setdefault(r.method, []).append(r)
    out: list[Row] = []
    for group in by_method.values():
        out += [group[i] for i in rng.integers(0, len(group), len(group))]
    return out


@dataclass
class Interval:
    """A statistic on the seed means and its percentile bootstrap interval over seed resamples.

    ``defined``: share of resamples where the statistic exists (e.g. some setting reaches LoRA);
    ``low``/``high`` are taken over those resamples only.
    """

    value: float | None
    low: float | None
    high: float | None
    defined: float

    def text(self, fmt: str = "{:.1f}", unit: str = "") -> str:
        """``value [low, high]`` (and the share defined when below 1)."""
        if self.value is None:
            return "-"
        out = f"{fmt.format(self.value)}{unit}"
        if self.low is not None and self.high is not None:
            out += f" [{fmt.format(self.low)}, {fmt.format(self.high)}]"
        if self.defined < 0.995:
            out += f" (defined in {100 * self.defined:.0f}% of resamples)"
        return out


def resamples(rows: Sequence[Row], n: int = 2000, seed: int = 0) -> list[list[Summary]]:
    """The ``n`` bootstrap resamples of :func:`bootstrap`, aggregated: compute them once and pass
    them as ``draws`` to every statistic of a report (the same resamples it would draw itself)."""
    rng = np.random.default_rng(seed)
    return [aggregate(resample(rows, rng)) for _ in range(n)]


def bootstrap(rows: Sequence[Row], statistic: object, n: int = 2000, seed: int = 0, level: float = 0.95,
              draws: Sequence[Sequence[Summary]] | None = None) -> Interval:
    """``statistic(summaries) -> float | None`` on the seed means, with a percentile bootstrap
    interval: each method's seeds resampled with replacement ``n`` times (with 3 seeds an interval
    of this kind is narrower than the truth; it shows which statements survive seed noise at all).
    ``draws``: the resamples from :func:`resamples` (same ``rows``, ``n`` and ``seed``), shared
    between statistics instead of drawn again.
    """
    value = statistic(aggregate(rows))  # type: ignore[operator]
    if draws is None:
        draws = resamples(rows, n, seed)
    n = len(draws)
    stats = [statistic(d) for d in draws]  # type: ignore[operator]
    got = np.array([d for d in stats if d is not None], dtype=float)
    if not len(got):
        return Interval(value, None, None, 0.0)
    lo, hi = np.percentile(got, [50 * (1 - level), 50 * (1 + level)])
    return Interval(value, float(lo), float(hi), len(got) / n)


def first_reaching_factor(lora: str, metric: str, higher_is_better: bool = True) -> object:
    """The statistic: ``lora``'s params / params of the smallest SuperLoRA setting reaching it."""

    def stat(summaries: Sequence[Summary]) -> float | None:
        for e in efficiency(summaries, metric, higher_is_better):
            if e.lora == lora:
                return e.factor
        return None

    return stat


def curve_factor(method: str, metric: str, higher_is_better: bool = True) -> object:
    """The statistic: LoRA params for ``method``'s mean (LoRA's curve) / ``method``'s params."""

    def stat(summaries: Sequence[Summary]) -> float | None:
        for e in equal_quality(summaries, metric, higher_is_better):
            if e.method == method:
                return e.factor
        return None

    return stat


def efficiency_intervals_markdown(rows: Sequence[Row], metric: str, higher_is_better: bool = True,
                                  n: int | None = None) -> str:
    """Both efficiency factors with bootstrap intervals: the first-reaching factor per LoRA rank
    and the factor against LoRA's curve per SuperLoRA setting."""
    n = n or BOOTSTRAP_DRAWS
    summaries = aggregate(rows)
    draws = resamples(rows, n)
    lines = [f"| LoRA | first-reaching factor [95% bootstrap] on {metric} |", "|---|---|"]
    for e in efficiency(summaries, metric, higher_is_better):
        iv = bootstrap(rows, first_reaching_factor(e.lora, metric, higher_is_better), n, draws=draws)
        reached = f"{e.superlora} ({e.superlora_params:,} params)" if e.superlora else "none reaches it"
        lines.append(f"| {e.lora} | {iv.text(unit='x')}; {reached} |")
    lines += ["", f"| SuperLoRA setting | params | factor against LoRA's curve [95% bootstrap] on {metric} |",
              "|---|---:|---|"]
    for q in equal_quality(summaries, metric, higher_is_better):
        iv = bootstrap(rows, curve_factor(q.method, metric, higher_is_better), n, draws=draws)
        if iv.value is None and iv.defined == 0:
            continue
        lines.append(f"| {q.method} | {q.params:,} | {iv.text(unit='x')} |")
    return "\n".join(lines) + "\n"


def subspace_markdown(rows: Sequence[Row], metric: str, higher_is_better: bool = True, n: int | None = None,
                      baseline: str = "zero-shot") -> str:
    """d90 (gain over ``baseline``) and every SuperLoRA setting's equivalent random dimensions,
    with bootstrap intervals."""
    n = n or BOOTSTRAP_DRAWS
    summaries = aggregate(rows)
    if not family_curve(summaries, "random subspace", metric):
        return "(no random-subspace rows in this run)\n"
    draws = resamples(rows, n)
    iv = bootstrap(rows, lambda s: d90(s, metric, higher_is_better, baseline=baseline), n, draws=draws)
    target = gain_target(summaries, metric, baseline=baseline)
    curve = family_curve(summaries, "random subspace", metric)
    shown = iv.text(fmt="{:,.0f}")
    if iv.value is None and target is not None:  # say where the target lies off the measured curve
        shown = f"{outside_curve(curve, target, higher_is_better)} (target {target:.3g} not reached)"
    lines = [f"d90 (smallest random-subspace dimension reaching 90% of full fine-tuning's gain over "
             f"{baseline}): **{shown}**", "",
             "| setting | params | mean | equivalent random dimensions [95% bootstrap] | per parameter |",
             "|---|---:|---:|---|---:|"]
    for e in equivalent_dims(summaries, metric, higher_is_better):
        def stat(s: Sequence[Summary], name: str = e.method) -> float | None:
            return next((q.random_dims for q in equivalent_dims(s, metric, higher_is_better) if q.method == name), None)

        eq = bootstrap(rows, stat, n, draws=draws)
        ratio = "-" if e.ratio is None else f"{e.ratio:.2g}x"
        shown = eq.text(fmt="{:,.0f}") if e.random_dims is not None else outside_curve(curve, e.value, higher_is_better)
        lines.append(f"| {e.method} | {e.params:,} | {e.value:.3g} | {shown} | {ratio} |")
    return "\n".join(lines) + "\n"
