"""Tensor-train LoRA (TT-LoRA, LoRETTA): each weight as an M-mode tensor train, as a variant entry.

>>> from superlora_tn.registry.tt import TT
>>> spec = TT.build({"w": (64, 48)}, 3)
>>> spec.groups[0].fold, spec.groups[0].equation
((8, 8, 6, 8), 'ae,ebf,fcg,gd->abcd')
>>> TT.recognise(spec), TT.num_params(spec) == spec.num_params == 8 * 3 + 3 * 8 * 3 + 3 * 6 * 3 + 3 * 8
(True, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import reference as ref
from ..errors import SpecError
from ..facade import SuperLoRA
from ..validate import as_positive_int
from .base import Targets, Variant, getter, group_natives, place_group_tensors, single

__all__ = ["TT", "tt"]


def tt(targets: Targets, rank: int | tuple[int, ...], order: int = 4, *, alpha: float | None = None,
       seed: int = 0) -> SuperLoRA:
    """TT-LoRA: each weight (out, in) reshaped to M modes (the natural fold: ceil(M/2) row modes, then
    floor(M/2) column modes, each mode size an exact factor) and dW = (alpha / r) TT(G_0, ..., G_{M-1}).

    ``rank``: an int (every one of the M - 1 bonds) or a tuple of the M - 1 bond ranks; r is the
    largest. G_m (r_m, n_m, r_{m+1}) with r_0 = r_M = 1. P = sum_t sum_m r_m n_m r_{m+1}.
    ``order`` must be >= 3 (M = 2 is LoRA: G_0 = B, G_1 = A).
    """
    if not isinstance(rank, tuple):
        as_positive_int("rank", rank)
    M = as_positive_int("order", order)
    if M < 3:
        raise SpecError("order", order, "an integer >= 3 (a tensor train of 2 cores is LoRA: use variants.lora)")
    return SuperLoRA(targets, fold="natural", order=M, rank=rank, structure="tt", alpha=alpha, seed=seed)


class TensorTrain(Variant):
    name, display, key, priority = "tt", "TT-LoRA", "group", 5
    native_form, formula = "([G_m (r_m, n_m, r_{m+1})], scale), r_0 = r_M = 1 (tensorly's cores)", "tt_to_tensor"
    build = staticmethod(tt)

    def recognise(self, spec: SuperLoRA) -> bool:
        f = single(spec)
        return f is not None and f.structure == "tt"

    def num_params(self, spec: SuperLoRA) -> int:
        total = 0
        for g in spec.groups:
            r = (1, *g.factors[0].ranks, 1)
            total += sum(r[m] * n * r[m + 1] for m, n in enumerate(g.factors[0].shape))
        return total

    def to_native(self, spec: SuperLoRA, params: Mapping[str, Any]) -> dict[Any, tuple]:
        return {g.index: (g.factors[0].kind.cores(g.factors[0], getter(params, g, 0)), spec.scale_factor)
                for g in spec.groups}

    def from_native(self, spec: SuperLoRA, native: Mapping[Any, Any]) -> dict[str, Any]:
        out = {}
        for g, (cores,) in group_natives(spec, native, ("cores",)):
            f = g.factors[0]
            for local, x in f.kind.from_cores(f, cores, f"native[{g.index}].cores").items():
                out[g.param_name(0, local)] = x
        return out

    def reference(self, spec: SuperLoRA, native: Mapping[Any, tuple], backend: Any) -> dict[str, Any]:
        return place_group_tensors(spec, native, backend, ref.tt_to_tensor)


TT = TensorTrain()
