"""LoTR (Bershatsky et al.): dW_l = (alpha / r) U C_l V^T within a group of same-shape targets, as a variant entry.

>>> from superlora_tn.registry.lotr import LOTR
>>> spec = LOTR.build({"q0": (8, 6), "q1": (8, 6)}, 2)
>>> LOTR.recognise(spec), LOTR.num_params(spec)
(True, 36)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .. import reference as ref
from ..backends import get_backend
from ..errors import SpecError
from ..facade import SuperLoRA
from ..structures import shape_check
from ..targets import normalize_targets
from ..validate import as_positive_int
from .base import Targets, Variant, array_backend, extra, group_natives, param, single, stacked

__all__ = ["LOTR", "lotr"]


def lotr(targets: Targets, rank: int, *, groups: Sequence[Sequence[str]] | None = None, alpha: float | None = None,
         seed: int = 0) -> SuperLoRA:
    """LoTR: dW_l = (alpha / r) U C_l V^T within each group of L same-shape targets (U (o, r), V (i, r) shared).

    ``groups=None``: one group per distinct shape, targets in order; or explicit lists (e.g. all
    queries, all values). P = sum_g (L_g r^2 + r (o_g + i_g)).
    """
    as_positive_int("rank", rank)
    if groups is None:
        by_shape: dict[tuple[int, int], list[str]] = {}
        for t in normalize_targets(targets):
            by_shape.setdefault(t.matrix_shape, []).append(t.name)
        groups = list(by_shape.values())
    if isinstance(groups, str) or not all(isinstance(g, Sequence) and not isinstance(g, str) for g in groups):
        raise SpecError("groups", groups, "None or a list of lists of target names")
    return SuperLoRA(targets, groups=[list(g) for g in groups], fold="stack", order=3, rank=rank, structure="tucker",
                     identity_modes=(0,), alpha=alpha, seed=seed)


class LoTR(Variant):
    name, display, key, priority = "lotr", "LoTR", "group", 3
    native_form, formula = "(U (o, r1), cores (L, r1, r2), V (i, r2), scale)", "lotr_deltas"
    build = staticmethod(lotr)

    def recognise(self, spec: SuperLoRA) -> bool:
        f = single(spec)
        return (f is not None and f.structure in ("tucker", "cp") and len(f.shape) == 3 and stacked(spec)
                and not ({1, 2} & set(f.identity_modes)))

    def num_params(self, spec: SuperLoRA) -> int:
        return sum(L * r1 * r2 + r1 * o + r2 * i for g in spec.groups
                   for (L, o, i), (_, r1, r2) in [(g.fold, g.factors[0].ranks)])

    def to_native(self, spec: SuperLoRA, params: Mapping[str, Any]) -> dict[Any, tuple]:
        out = {}
        for g in spec.groups:
            f = g.factors[0]
            U, V = param(params, g, 0, "A1"), param(params, g, 0, "A2")
            if f.structure == "cp":  # C_l = diag(A0[l]): the super-diagonal core times the layer factor
                A0 = param(params, g, 0, "A0")
                be = array_backend(params)
                eye = get_backend(be).asarray(np.eye(f.ranks[0]), dtype=be.dtype_of(A0), device=be.device_of(A0))
                cores = A0[:, :, None] * eye[None, :, :]
            else:
                core = param(params, g, 0, "core")
                cores = core if 0 in f.identity_modes else ref.mode_product(core, param(params, g, 0, "A0"), 0)
            out[g.index] = (U, cores, V, spec.scale_factor)
        return out

    def from_native(self, spec: SuperLoRA, native: Mapping[Any, Any]) -> dict[str, Any]:
        out = {}
        for g, (U, cores, V) in group_natives(spec, native, ("U", "cores", "V")):
            f = g.factors[0]
            if f.structure != "tucker" or 0 not in f.identity_modes:
                raise SpecError("identity_modes", f.identity_modes, "(0,) with a tucker structure (the LoTR spec of variants.lotr)")
            shapes = f.param_shapes()
            for local, x in (("core", cores), ("A1", U), ("A2", V)):
                shape_check(f"native[{g.index}].{local}", x, shapes[local])
                out[g.param_name(0, local)] = x
        return out

    def reference(self, spec: SuperLoRA, native: Mapping[Any, tuple], backend: Any) -> dict[str, Any]:
        mats = {}
        for g in spec.groups:
            for s, dW in zip(g.segments, ref.lotr_deltas(*native[g.index])):
                mats[s.target] = dW * extra(spec, s.target)
        return mats


LOTR = LoTR()
