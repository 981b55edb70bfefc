"""LoRTA: dW_group = (alpha / r) unfold(C x_1 A_1 ... x_M A_M) on a balanced fold, as a variant entry.

>>> from superlora_tn.registry.lorta import LORTA
>>> spec = LORTA.build({"w": (8, 8)}, 2)
>>> LORTA.recognise(spec), LORTA.num_params(spec)
(True, 32)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .. import reference as ref
from ..errors import SpecError
from ..facade import SuperLoRA
from ..structures import shape_check
from ..validate import as_positive_int
from .base import Targets, Variant, group_natives, param, place_group_tensors, single

__all__ = ["LORTA", "lorta"]


def lorta(targets: Targets, rank: int, order: int = 3, groups: Any = 1, *, alpha: float | None = None,
          seed: int = 0) -> SuperLoRA:
    """LoRTA: dW_group = (alpha / r) unfold(C x_1 A_1 ... x_M A_M) on the balanced fold (s,)*M.

    s_g = ceil(n_g ** (1/M)), C (r,)*M, A_m (s_g, r); the first n_g entries are kept.
    P = sum_g (r^M + M s_g r). ``order`` must be >= 3 (M = 2 is a grouped LoRA).
    """
    as_positive_int("rank", rank)
    M = as_positive_int("order", order)
    if M < 3:
        raise SpecError("order", order, "an integer >= 3 (a tensor fold; order 2 is LoRA)")
    return SuperLoRA(targets, groups=groups, fold="balanced", order=M, rank=rank, structure="tucker", alpha=alpha, seed=seed)


def put_factor_matrices(out: dict[str, Any], g: Any, factors: Any) -> None:
    """Factor matrices A_m (None or skipped for identity modes) into ``out``, shapes checked."""
    f = g.factors[0]
    for m, A in enumerate(factors):
        if m not in f.identity_modes:
            out[g.param_name(0, f"A{m}")] = A
    for local, shape in f.param_shapes().items():
        if g.param_name(0, local) in out:
            shape_check(f"native[{g.index}].{local}", out[g.param_name(0, local)], shape)


class LoRTA(Variant):
    name, display, key, priority = "lorta", "LoRTA", "group", 4
    native_form, formula = "(core, [A_m or None (identity)], scale)", "tucker_to_tensor"
    build = staticmethod(lorta)

    def recognise(self, spec: SuperLoRA) -> bool:
        f = single(spec)
        return f is not None and f.structure == "tucker" and len(f.shape) > 2

    def num_params(self, spec: SuperLoRA) -> int:
        return sum(math.prod(f.ranks) + sum(n * r for m, (n, r) in enumerate(zip(f.shape, f.ranks)) if m not in f.identity_modes)
                   for f in (g.factors[0] for g in spec.groups))

    def to_native(self, spec: SuperLoRA, params: Mapping[str, Any]) -> dict[Any, tuple]:
        out = {}
        for g in spec.groups:
            f = g.factors[0]
            factors = [None if m in f.identity_modes else param(params, g, 0, f"A{m}") for m in range(len(f.shape))]
            out[g.index] = (param(params, g, 0, "core"), factors, spec.scale_factor)
        return out

    def from_native(self, spec: SuperLoRA, native: Mapping[Any, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for g, (core, factors) in group_natives(spec, native, ("core", "factors")):
            out[g.param_name(0, "core")] = core
            put_factor_matrices(out, g, factors)
        return out

    def reference(self, spec: SuperLoRA, native: Mapping[Any, tuple], backend: Any) -> dict[str, Any]:
        return place_group_tensors(spec, native, backend, ref.tucker_to_tensor)


LORTA = LoRTA()
