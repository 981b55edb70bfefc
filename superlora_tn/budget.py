"""Parameter-budget planner: which SuperLoRA settings fit a budget, found symbolically.

For every structural setting (grouping, fold, order M, splits K, structure, projection ratio)
the largest rank whose exact ``spec.num_params`` fits the budget is found by bisection (the
count grows with the rank); nothing is allocated. Results are ranked by the stated criterion:

1. closest to the budget from below (fewest unused parameters), then
2. highest rank, then
3. fewest groups (then the setting's text, for a deterministic order).

Settings that are one of the paper's named variants (LoRA, LoKr, LoNKr, LoTR, LoRTA) are marked.

>>> targets = {f"l{i}.{k}": (64, 64) for i in range(4) for k in ("q", "v")}
>>> best = fit_budget(targets, 2000, top=3)
>>> all(c.params <= 2000 for c in best), best[0].params >= best[-1].params
(True, True)
>>> fit_budget(targets, 2000, orders=(2,), splits=(1,), ratios=(None,), group_counts=())[0].variant
'LoRA'
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import SpecError
from .facade import SuperLoRA
from .factored import factored_targets
from .presets import group_by_kind
from .projection import Fastfood
from .registry import VARIANT_REGISTRY
from .validate import is_positive_int

__all__ = ["RANK_BY", "Candidate", "best_per_variant", "fit_budget", "measured_family", "settings_grid", "variant_of"]

MAX_RANK = 4096
ARGUMENT_ORDER = ("groups", "fold", "order", "splits", "structure", "rank", "identity_modes", "projection")
#: orderings of ``fit_budget(rank_by=...)``: each a sort key of (budget, candidate)
RANK_BY: dict[str, Callable[[int, Candidate], tuple]] = {}


@dataclass(frozen=True)
class Candidate:
    """One setting that fits: its ``SuperLoRA`` arguments (``kwargs``, rank included), exact count and variant."""

    params: int
    rank: int
    kwargs: dict[str, Any] = field(hash=False)
    variant: str
    num_groups: int
    #: targets that train factored (x joins the network, no dW built); see ``factored_targets``
    factored: int = 0

    def spec(self, targets: Mapping[str, Sequence[int]]) -> SuperLoRA:
        """The SuperLoRA this candidate describes, over ``targets``."""
        return SuperLoRA(targets, **self.kwargs)

    def describe(self) -> str:
        """Short text of the setting, e.g. ``groups=weight fold=natural M=2 K=1 lora r=8``."""
        kw = self.kwargs
        groups = kw["groups"] if isinstance(kw["groups"], str | int) else f"kind({len(kw['groups'])})"
        structure = kw["structure"] if isinstance(kw["structure"], str) else "+".join(kw["structure"])
        proj = kw.get("projection")
        text = f"groups={groups} fold={kw['fold']} M={kw['order']} K={kw['splits']} {structure} r={self.rank}"
        return text + (f" fastfood={proj.ratio:g}" if proj is not None else "")

    def spec_arguments(self) -> dict[str, Any]:
        """The setting as a JSON-ready mapping that ``--spec FILE`` accepts (``groups="kind"`` for
        a grouping by kind, ``projection="fastfood:RATIO"``)."""
        out: dict[str, Any] = {}
        for key, value in sorted(self.kwargs.items(), key=lambda kv: ARGUMENT_ORDER.index(kv[0])):
            if key == "projection":
                if value is not None:
                    out[key] = f"fastfood:{value.ratio:g}"
            elif key == "groups" and not isinstance(value, str | int):
                out[key] = "kind"
            else:
                out[key] = list(value) if isinstance(value, tuple) else value
        return out

    def python(self) -> str:
        """The exact ``SuperLoRA(targets, ...)`` arguments, to paste into Python.

        >>> found = fit_budget({"w": (64, 64)}, 600, orders=(3,), splits=(1,), ratios=(0.5,), group_counts=(1,))
        >>> next(c.python() for c in found if c.kwargs["fold"] == "balanced")
        'groups=1, fold="balanced", order=3, splits=1, structure="tucker", rank=6, projection=Fastfood(0.5)'
        """
        parts = []
        for key, value in sorted(self.kwargs.items(), key=lambda kv: ARGUMENT_ORDER.index(kv[0])):
            if key == "projection":
                if value is not None:
                    parts.append(f"projection=Fastfood({value.ratio:g})")
            elif key == "groups" and not isinstance(value, str | int):
                parts.append("groups=group_by_kind(targets)")
            else:
                parts.append(f"{key}={_python_literal(value)}")
        return ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        kw = self.kwargs
        proj = kw.get("projection")
        return {
            "params": self.params, "rank": self.rank, "variant": self.variant, "groups": self.num_groups,
            "grouping": kw["groups"], "fold": kw["fold"], "order": kw["order"], "splits": kw["splits"],
            "structure": kw["structure"], "identity_modes": list(kw.get("identity_modes", ())),
            "projection_ratio": None if proj is None else proj.ratio, "setting": self.describe(),
            "python": self.python(), "spec": self.spec_arguments(),
        }


def _python_literal(value: Any) -> str:
    if isinstance(value, tuple):
        inner = ", ".join(_python_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(_python_literal(v) for v in value) + "]"
    return json.dumps(value) if isinstance(value, str) else repr(value)


def variant_of(kwargs: Mapping[str, Any], targets: Mapping[str, Sequence[int]]) -> str:
    """The paper's name of a setting over ``targets``: ``spec.identify()`` in display case (the registry's ``display``)."""
    name = SuperLoRA(targets, **{"rank": 1, **kwargs}).identify()
    return VARIANT_REGISTRY[name].display if name in VARIANT_REGISTRY else "SuperLoRA"


def settings_grid(
    targets: Mapping[str, Sequence[int]],
    *,
    orders: Sequence[int] = (2, 3, 4),
    splits: Sequence[int] = (1, 2, 3),
    ratios: Sequence[float | None] = (None, 0.5, 0.25, 0.1),
    group_counts: Sequence[int] | None = None,
) -> Iterator[dict[str, Any]]:
    """Every structural setting (all arguments but the rank) the planner tries."""
    n = len(targets)
    if group_counts is None:
        group_counts = sorted({1, *(2**i for i in range(1, 7) if 2**i < n)})
    for name, values in (("orders", orders), ("splits", splits), ("group_counts", group_counts)):
        for v in values:
            if not is_positive_int(v):
                raise SpecError(name, v, "positive integers")
    for rho in ratios:
        if rho is not None and (isinstance(rho, bool) or not isinstance(rho, int | float) or not 0 < rho <= 1):
            raise SpecError("ratios", rho, "None or numbers in (0, 1]")
    for M in orders:
        for K in splits:
            structures: list[Any] = ["lora" if M == 2 else "tucker"]
            if K > 1:
                structures.append(["dense"] + [structures[0]] * (K - 1))  # LyCORIS LoKr: first factor dense
            for structure in structures:
                base = dict(order=M, splits=K, structure=structure)
                yield dict(groups="weight", fold="natural", **base)
                for ratio in ratios:
                    proj = None if ratio is None else Fastfood(ratio)
                    for G in group_counts:
                        yield dict(groups=G, fold="balanced", projection=proj, **base)
                    if ratio is not None:
                        yield dict(groups="weight", fold="balanced", projection=proj, **base)
    if 3 in orders:
        yield dict(groups=group_by_kind(targets), fold="stack", order=3, splits=1, structure="tucker", identity_modes=(0,))


def _counter(targets: Mapping[str, Sequence[int]], kwargs: dict[str, Any]) -> Callable[[int], int]:
    """rank -> spec.num_params, on an equivalent smaller spec (the full spec is checked at the end).

    Weight-wise groups are independent: one target per distinct shape, times its multiplicity.
    G balanced chunks with a balanced fold depend only on the total size N: one target (N,).
    """
    if isinstance(kwargs["groups"], int) and kwargs["fold"] == "balanced":
        flat = {"all": (sum(math.prod(s) for s in targets.values()),)}
        return lambda r: SuperLoRA(flat, rank=r, **kwargs).num_params
    if kwargs["groups"] != "weight":
        return lambda r: SuperLoRA(targets, rank=r, **kwargs).num_params
    shapes = Counter(tuple(s) for s in targets.values())
    reps = {f"t{i}": s for i, s in enumerate(shapes)}
    mult = {f"t{i}": m for i, m in enumerate(shapes.values())}

    def count(r: int) -> int:
        spec = SuperLoRA(reps, rank=r, **kwargs)
        return sum(g.num_params * mult[g.segments[0].target] for g in spec.groups)

    return count


def _largest_rank(targets: Mapping[str, Sequence[int]], kwargs: dict[str, Any], budget: int) -> tuple[int, int] | None:
    """(rank, params) of the largest useful rank fitting ``budget``, or None."""
    count = _counter(targets, kwargs)
    try:
        low = count(1)
        sides = SuperLoRA(targets if kwargs["groups"] != "weight" else dict(list(targets.items())[:1]), rank=1, **kwargs)
    except SpecError:
        return None
    if low > budget:
        return None
    # a rank beyond the largest factor side adds nothing: bisect in [1, that side]
    cap = min(MAX_RANK, max(max(f.shape) for g in sides.groups for f in g.factors))
    best = (1, low)
    lo, hi = 2, cap
    while lo <= hi:
        mid = (lo + hi) // 2
        p = count(mid)
        if p <= budget:
            best, lo = (mid, p), mid + 1
        else:
            hi = mid - 1
    return best


RANK_BY.update({
    "params": lambda budget, c: (budget - c.params, -c.rank, c.num_groups, c.describe()),
    "rank": lambda budget, c: (-c.rank, budget - c.params, c.num_groups, c.describe()),
    "fewest-groups": lambda budget, c: (c.num_groups, budget - c.params, -c.rank, c.describe()),
})


def fit_budget(targets: Mapping[str, Sequence[int]], budget: int | float, *, top: int | None = 20,
               rank_by: str = "params", **grid: Any) -> list[Candidate]:
    """Settings with ``num_params <= budget``, ranked; ``grid`` goes to ``settings_grid``.

    ``rank_by``: ``params`` (the module docstring's order: closest to the budget first),
    ``rank`` (highest rank first) or ``fewest-groups`` (fewest groups first, then closest).
    """
    if rank_by not in RANK_BY:
        raise SpecError("rank_by", rank_by, " | ".join(RANK_BY))
    if isinstance(budget, bool) or not isinstance(budget, int | float) or not math.isfinite(budget) or budget < 1:
        raise SpecError("budget", budget, "a positive number of parameters")
    if top is not None and not is_positive_int(top):
        raise SpecError("top", top, "None or a positive number of settings to list")
    budget = int(budget)
    found: list[Candidate] = []
    for kwargs in settings_grid(targets, **grid):
        fit = _largest_rank(targets, kwargs, budget)
        if fit is not None:
            g = kwargs["groups"]
            groups = len(targets) if g == "weight" else (g if isinstance(g, int) else len(g))
            found.append(Candidate(fit[1], fit[0], {**kwargs, "rank": fit[0]}, variant_of(kwargs, targets), groups))
    found.sort(key=lambda c: RANK_BY[rank_by](budget, c))
    found = found if top is None else found[:top]
    result = []
    for c in found:  # the shortcut for weight-wise groups must agree with the full spec's count
        spec = c.spec(targets)
        if spec.num_params != c.params:
            raise RuntimeError(f"internal error: budget count mismatch for {c.describe()}")
        result.append(replace(c, factored=factored_targets(spec)))
    return result


def best_per_variant(candidates: Sequence[Candidate]) -> dict[str, Candidate]:
    """The first (best-ranked) candidate of each named variant, in ranking order."""
    best: dict[str, Candidate] = {}
    for c in candidates:
        best.setdefault(c.variant, c)
    return best


def measured_family(candidate: Candidate, targets: Mapping[str, Sequence[int]]) -> str | None:
    """The experiments' family this setting belongs to (same grouping, fold, order, splits and
    structure, any rank or projection ratio; see docs/experiments.md), or None.

    >>> t = {f"l{i}.{k}": (64, 64) for i in range(4) for k in ("q", "v")}
    >>> found = fit_budget(t, 800, orders=(2,), splits=(1,), ratios=(None,), group_counts=(1, 4))
    >>> ", ".join(measured_family(c, t) for c in found)
    'SuperLoRA 2-D G=1, SuperLoRA 2-D G=L'
    """
    kw = candidate.kwargs
    groups, fold, order, splits, structure = kw["groups"], kw["fold"], kw["order"], kw["splits"], kw["structure"]
    layers = max(len(names) for names in group_by_kind(targets))
    if groups == "weight" and fold == "natural" and order == 2:
        return {1: "LoRA", 2: "LoKr", 3: "LoNKr"}.get(splits) if structure != "tucker" else None
    if fold == "stack" and kw.get("identity_modes") == (0,):
        return "LoTR"
    if fold != "balanced" or splits != 1 or groups not in (1, layers):
        return None
    proj = kw.get("projection")
    name = f"SuperLoRA {order}-D" + (" Tucker" if order > 2 else "") + f" G={'1' if groups == 1 else 'L'}"
    if proj is not None:
        return f"{name} + fastfood" if groups == 1 and order in (2, 3, 4) else None
    return name if order in (2, 3, 4) else None
