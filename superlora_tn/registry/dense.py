"""Dense fine-tuning: dW free, as a variant entry.

>>> from superlora_tn.registry.dense import DENSE
>>> DENSE.num_params(DENSE.build({"w": (6, 5)}))
30
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .. import reference as ref
from ..backends import backend_for
from ..errors import SpecError
from ..facade import SuperLoRA
from ..structures import shape_check
from .base import Targets, Variant, array_backend, check_scale, factor_native, free, group_vectors_to_targets

__all__ = ["DENSE", "dense"]


def dense(targets: Targets, *, seed: int = 0) -> SuperLoRA:
    """Dense fine-tuning: dW free. P = sum_t out_t * in_t."""
    return SuperLoRA(targets, structure="dense", seed=seed)


class Dense(Variant):
    name, display, key, priority = "dense", "dense", "target", 0
    ranked = False
    native_form, formula = "(W (out, in), scale)", "dense_delta"
    build = staticmethod(dense)

    def recognise(self, spec: SuperLoRA) -> bool:
        return free(spec)

    def num_params(self, spec: SuperLoRA) -> int:
        return sum(t.size for t in spec.targets)

    def to_native(self, spec: SuperLoRA, params: Mapping[str, Any]) -> dict[Any, tuple]:
        vectors = {g.index: ref.lowrank(factor_native(params, g, 0)).reshape(-1)[: g.size] for g in spec.groups}
        mats = group_vectors_to_targets(spec, vectors, array_backend(params))
        return {t: (W, spec.target_scale(t)) for t, W in mats.items()}

    def from_native(self, spec: SuperLoRA, native: Mapping[Any, Any]) -> dict[str, Any]:
        out = {}
        for g in spec.groups:
            f = g.factors[0]
            if f.structure != "dense":
                raise SpecError("structure", f.structure, "dense (the spec of variants.dense) for from_dense")
            if math.prod(f.shape) != g.size:
                raise SpecError("fold", g.fold, f"a fold of exactly {g.size} entries for from_dense")
            parts = []
            for s in g.segments:
                item = native[s.target]
                W, scale = item if isinstance(item, tuple) else (item, None)
                check_scale(s.target, scale, spec.target_scale(s.target))
                shape_check(f"native[{s.target!r}]", W, spec._by_name[s.target].matrix_shape)
                parts.append(W.reshape(-1)[s.start:s.stop])
            vec = parts[0] if len(parts) == 1 else backend_for(parts[0]).concat(parts)
            out[g.param_name(0, "dense")] = vec.reshape(*f.shape)
        return out

    def reference(self, spec: SuperLoRA, native: Mapping[Any, tuple], backend: Any) -> dict[str, Any]:
        return {t: ref.dense_delta(*native[t]) for t in native}


DENSE = Dense()
