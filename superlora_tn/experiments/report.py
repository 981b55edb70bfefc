"""Results tables (CSV, Markdown), the accuracy-versus-parameters plot, the efficiency factor."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

from ._common import Row

#: families drawn as horizontal reference lines (they train no adapter parameters)
REFERENCE_METHODS = ("zero-shot", "head only")


@dataclass
class Summary:
    """Mean and standard deviation of every metric of one method over its seeds."""

    method: str
    family: str
    impl: str
    adapter_params: int
    head_params: int
    seeds: int
    mean: dict[str, float]
    std: dict[str, float]
    wall_s: float


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
            )
        )
    return out


def write_rows_csv(rows: Sequence[Row], path: Path) -> None:
    """Per-seed results."""
    metrics = list(rows[0].metrics) if rows else []
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["task", "method", "family", "impl", "adapter_params", "head_params", "seed",
                    *metrics, "wall_s"])
        for r in rows:
            w.writerow([r.task, r.method, r.family, r.impl, r.adapter_params, r.head_params,
                        r.seed, *(f"{r.metrics[m]:.6g}" for m in metrics), f"{r.wall_s:.2f}"])


def read_rows_csv(path: Path) -> list[Row]:
    """Per-seed results written by :func:`write_rows_csv` (to re-plot or re-tabulate)."""
    fixed = {"task", "method", "family", "impl", "adapter_params", "head_params", "seed", "wall_s"}
    with Path(path).open() as f:
        return [
            Row(r["task"], r["method"], r["family"], r["impl"], int(r["adapter_params"]),
                int(r["head_params"]), int(r["seed"]),
                {k: float(v) for k, v in r.items() if k not in fixed}, float(r["wall_s"]))
            for r in csv.DictReader(f)
        ]


def write_summary_csv(summaries: Sequence[Summary], path: Path) -> None:
    """One row per method: mean/std of each metric and mean wall time per run."""
    metrics = list(summaries[0].mean) if summaries else []
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method", "family", "impl", "adapter_params", "head_params", "seeds",
                    *(f"{m}_{s}" for m in metrics for s in ("mean", "std")), "wall_s"])
        for s in summaries:
            vals = [f"{v:.6g}" for m in metrics for v in (s.mean[m], s.std[m])]
            w.writerow([s.method, s.family, s.impl, s.adapter_params, s.head_params, s.seeds,
                        *vals, f"{s.wall_s:.2f}"])


def markdown_table(summaries: Sequence[Summary], percent: Sequence[str] = ()) -> str:
    """A Markdown table; metrics named in ``percent`` are shown as percentages."""
    metrics = list(summaries[0].mean) if summaries else []
    head = ["method", "family", "adapter params", "head params", "seeds",
            *(f"{m} (mean ± std)" for m in metrics), "wall s/run"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summaries:
        cells = []
        for m in metrics:
            if m in percent:
                cells.append(f"{100 * s.mean[m]:.1f} ± {100 * s.std[m]:.1f}")
            else:
                cells.append(f"{s.mean[m]:.3g} ± {s.std[m]:.2g}")
        lines.append("| " + " | ".join([s.method, s.family, f"{s.adapter_params:,}",
                                         f"{s.head_params:,}", str(s.seeds), *cells,
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


def plot(
    summaries: Sequence[Summary], metric: str, path: Path, title: str, ylabel: str | None = None
) -> None:
    """Metric versus adapter parameters (log x), one curve per family, std as error bars;
    zero-shot and head-only as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    families: dict[str, list[Summary]] = {}
    for s in summaries:
        if s.method in REFERENCE_METHODS or s.adapter_params <= 0:
            continue
        families.setdefault(s.family, []).append(s)
    markers = "osD^v<>pP*Xh"
    colors = plt.get_cmap("tab20").colors
    for i, (family, group) in enumerate(families.items()):
        group = sorted(group, key=lambda s: s.adapter_params)
        x = [s.adapter_params for s in group]
        y = [s.mean[metric] for s in group]
        e = [s.std[metric] for s in group]
        label = family if family != "baseline" else ", ".join(s.method for s in group)
        ax.errorbar(x, y, yerr=e, marker=markers[i % len(markers)], capsize=3, label=label,
                    color=colors[(2 * i) % 20 if i < 10 else (2 * i + 1) % 20],
                    linestyle="-" if len(group) > 1 else "none")
    styles = {"zero-shot": ":", "head only": "--"}
    for s in summaries:
        if s.method in REFERENCE_METHODS:
            ax.axhline(s.mean[metric], color="grey", linestyle=styles[s.method],
                       label=f"{s.method} ({s.mean[metric]:.3g})")
    ax.set_xscale("log")
    ax.set_xlabel("trainable adapter parameters (log scale)")
    ax.set_ylabel(ylabel or metric)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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
