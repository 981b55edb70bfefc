"""LoNKr: dW_group = (alpha / r) kron(T_1, ..., T_K), as a variant entry.

>>> from superlora_tn.registry.lonkr import LONKR
>>> spec = LONKR.build({"w": (8, 27)}, 2)
>>> LONKR.recognise(spec), LONKR.num_params(spec)
(True, 30)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import reference as ref
from ..errors import SpecError
from ..facade import SuperLoRA
from ..validate import as_positive_int
from .base import (
    Targets,
    Variant,
    factor_native,
    group_natives,
    kron_pairs,
    matrix_factor_count,
    place_folds,
    put_factor,
)

__all__ = ["LONKR", "lonkr"]


def lonkr(targets: Targets, rank: int, splits: int = 3, *, groups: Any = "weight", alpha: float | None = None,
          seed: int = 0) -> SuperLoRA:
    """LoNKr: dW_group = (alpha / r) kron(T_1, ..., T_K), every T_k = A0 A1^T of rank r, K = splits >= 3.

    ``groups="weight"``: natural fold (out, in); otherwise the balanced fold (s, s), s = ceil(sqrt(n_g)).
    Each mode N splits into K sizes (core ``mode_split``). P = sum_g sum_k r (n_gk1 + n_gk2).
    """
    K = as_positive_int("splits", splits)
    if K < 3:
        raise SpecError("splits", splits, "an integer >= 3 (splits=2 on a weight is LoKr: use variants.lokr)")
    as_positive_int("rank", rank)
    fold = "natural" if groups == "weight" else "balanced"
    return SuperLoRA(targets, groups=groups, fold=fold, splits=K, rank=rank, structure="lora", alpha=alpha, seed=seed)


class LoNKr(Variant):
    name, display, key, priority = "lonkr", "LoNKr", "group", 2
    native_form, formula = "([T_1 .. T_K] matrices or (w_a, w_b) pairs, scale)", "lonkr_delta"
    build = staticmethod(lonkr)

    def recognise(self, spec: SuperLoRA) -> bool:
        return kron_pairs(spec) and len(spec.groups[0].fold) == 2

    def num_params(self, spec: SuperLoRA) -> int:
        return sum(matrix_factor_count(f) for g in spec.groups for f in g.factors)

    def to_native(self, spec: SuperLoRA, params: Mapping[str, Any]) -> dict[Any, tuple]:
        return {g.index: ([factor_native(params, g, k) for k in range(len(g.factors))], spec.scale_factor)
                for g in spec.groups}

    def from_native(self, spec: SuperLoRA, native: Mapping[Any, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for g, (factors,) in group_natives(spec, native, ("factors",)):
            for k, (_, x) in enumerate(zip(g.factors, factors)):
                put_factor(out, g, k, x, f"native[{g.index}].factors[{k}]")
        return out

    def reference(self, spec: SuperLoRA, native: Mapping[Any, tuple], backend: Any) -> dict[str, Any]:
        folds = {g.index: ref.lonkr_delta(*native[g.index]) for g in spec.groups}
        return place_folds(spec, folds, backend)


LONKR = LoNKr()
