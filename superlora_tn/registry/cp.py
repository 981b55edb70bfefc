"""CP of a balanced fold: dW_group = (alpha / r) sum_j a_1j o ... o a_Mj, as a variant entry.

>>> from superlora_tn.registry.cp import CP
>>> spec = CP.build({"w": (8, 8)}, 2)
>>> CP.recognise(spec), CP.num_params(spec)
(True, 24)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import reference as ref
from ..errors import SpecError
from ..facade import SuperLoRA
from ..validate import as_positive_int
from .base import Targets, Variant, group_natives, param, place_group_tensors, single
from .lorta import put_factor_matrices

__all__ = ["CP", "cp"]


def cp(targets: Targets, rank: int, order: int = 3, groups: Any = 1, *, alpha: float | None = None,
       seed: int = 0) -> SuperLoRA:
    """CP of the balanced fold: dW_group = (alpha / r) sum_j a_1j o ... o a_Mj. P = sum_g M s_g r."""
    as_positive_int("rank", rank)
    M = as_positive_int("order", order)
    if M < 3:
        raise SpecError("order", order, "an integer >= 3 (a tensor fold; order 2 is LoRA)")
    return SuperLoRA(targets, groups=groups, fold="balanced", order=M, rank=rank, structure="cp", alpha=alpha, seed=seed)


class CPVariant(Variant):
    name, display, key, priority = "cp", "CP", "group", 2
    native_form, formula = "([A_m (n_m, r)], scale)", "cp_to_tensor"
    build = staticmethod(cp)

    def recognise(self, spec: SuperLoRA) -> bool:
        f = single(spec)
        return f is not None and f.structure == "cp"

    def num_params(self, spec: SuperLoRA) -> int:
        return sum(sum(g.factors[0].shape) * g.factors[0].ranks[0] for g in spec.groups)

    def to_native(self, spec: SuperLoRA, params: Mapping[str, Any]) -> dict[Any, tuple]:
        return {g.index: ([param(params, g, 0, f"A{m}") for m in range(len(g.factors[0].shape))], spec.scale_factor)
                for g in spec.groups}

    def from_native(self, spec: SuperLoRA, native: Mapping[Any, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for g, (factors,) in group_natives(spec, native, ("factors",)):
            put_factor_matrices(out, g, factors)
        return out

    def reference(self, spec: SuperLoRA, native: Mapping[Any, tuple], backend: Any) -> dict[str, Any]:
        return place_group_tensors(spec, native, backend, ref.cp_to_tensor)


CP = CPVariant()
