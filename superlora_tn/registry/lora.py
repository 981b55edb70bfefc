"""LoRA (Hu et al.): dW_t = (alpha / r) B_t A_t, as a variant entry.

>>> from superlora_tn.registry.lora import LORA
>>> spec = LORA.build({"w": (6, 5)}, 2)
>>> LORA.recognise(spec), LORA.num_params(spec)
(True, 22)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import reference as ref
from ..facade import SuperLoRA
from ..validate import as_positive_int
from .base import Targets, Variant, check_scale, getter, kernel_modes_identity, no_scale_given, shape_folded, single, weightwise

__all__ = ["LORA", "lora"]


def lora(targets: Targets, rank: int, *, alpha: float | None = None, seed: int = 0) -> SuperLoRA:
    """LoRA: dW_t = (alpha / r) B_t A_t, B_t = A0 (out, r), A_t = A1^T (r, in). P = r * sum_t (out_t + in_t)."""
    as_positive_int("rank", rank)
    return SuperLoRA(targets, rank=rank, structure="lora", alpha=alpha, seed=seed)


class LoRA(Variant):
    name, display, key, priority = "lora", "LoRA", "target", 1
    native_form, formula = "(A (r, in), B (out, r), scale)  (PEFT layout)", "lora_delta"
    build = staticmethod(lora)

    def recognise(self, spec: SuperLoRA) -> bool:
        f = single(spec)
        if f is None:
            return False
        if len(f.shape) == 2:
            return weightwise(spec)
        # Tucker LoCon (LyCORIS lora_mid): rank r in the (out, in*k) matrix view
        return shape_folded(spec) and all(kernel_modes_identity(g.factors[0]) for g in spec.groups)

    def num_params(self, spec: SuperLoRA) -> int:
        return sum(g.factors[0].ranks[0] * (g.fold[0] + g.fold[1]) for g in spec.groups)

    def to_native(self, spec: SuperLoRA, params: Mapping[str, Any]) -> dict[Any, tuple]:
        out = {}
        for g in spec.groups:
            f, t = g.factors[0], g.segments[0].target
            B, A = f.kind.as_lora(f, getter(params, g, 0))
            out[t] = (A, B, spec.target_scale(t))
        return out

    def from_native(self, spec: SuperLoRA, native: Mapping[Any, Any]) -> dict[str, Any]:
        out = {}
        for g in spec.groups:
            f, t = g.factors[0], g.segments[0].target
            A, B, scale = no_scale_given(tuple(native[t]), 3)
            check_scale(t, scale, spec.target_scale(t))
            for local, value in f.kind.from_lora(f, B, A, f"native[{t!r}]").items():
                out[g.param_name(0, local)] = value
        return out

    def reference(self, spec: SuperLoRA, native: Mapping[Any, tuple], backend: Any) -> dict[str, Any]:
        return {t: ref.lora_delta(*native[t]) for t in native}


LORA = LoRA()
