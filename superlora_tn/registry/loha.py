"""LoHa (Hyeon-Woo et al., LyCORIS ``hada``): dW_t = (alpha / r) (w1_a w1_b) * (w2_a w2_b), as a variant entry.

>>> from superlora_tn.registry.loha import LOHA
>>> spec = LOHA.build({"w": (8, 12)}, 2)
>>> LOHA.recognise(spec), LOHA.num_params(spec)
(True, 80)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import reference as ref
from ..errors import SpecError
from ..facade import SuperLoRA
from ..validate import as_positive_int
from .base import Targets, conv_orders, kernel_modes_identity, shape_folded, uncut, weightwise
from .lokr import LoKr

__all__ = ["LOHA", "loha"]


def loha(targets: Targets, rank: int, *, alpha: float | None = None, seed: int = 0, conv_tucker: bool = False) -> SuperLoRA:
    """LoHa: dW_t = (alpha / r) (w1_a w1_b) * (w2_a w2_b), entry-wise; each pair of rank r.

    One network per weight with hyperedges: ``compose="hadamard"``, equation ``ac,bc,ad,bd->ab``
    (the row index a and the column index b are shared by two tensors each). P = 2 r sum_t (out_t + in_t).
    ``conv_tucker=True`` is LyCORIS's Tucker conv LoHa (``hada_t1``, ``hada_t2``): each factor is a
    core (r, r, kh, kw) with identity kernel modes times w_a^T, w_b^T, on the kernel's own shape.
    """
    as_positive_int("rank", rank)
    if not isinstance(conv_tucker, bool):
        raise SpecError("conv_tucker", conv_tucker, "True or False")
    if not conv_tucker:
        return SuperLoRA(targets, splits=2, compose="hadamard", rank=rank, structure="lora", alpha=alpha, seed=seed)
    order = conv_orders(targets)
    return SuperLoRA(targets, splits=2, compose="hadamard", rank=rank, structure="tucker", fold="shape",
                     identity_modes=tuple(range(2, order)), alpha=alpha, seed=seed)


class LoHa(LoKr):
    """LoKr's native form (w1, w2, scale), multiplied entry-wise instead of by Kronecker product."""

    name, display, key, priority = "loha", "LoHa", "target", 1
    native_form, formula = "(w1, w2, scale), each a (w_a, w_b) pair or a tensor", "loha_delta"
    build = staticmethod(loha)

    def recognise(self, spec: SuperLoRA) -> bool:
        """Two rank-r factors of each weight multiplied entry-wise (LyCORIS ``hada_*``), or its Tucker conv form."""
        if spec.config.compose != "hadamard" or any(len(g.factors) != 2 for g in spec.groups):
            return False
        fs = spec.groups[0].factors
        if len(spec.groups[0].fold) == 2:
            return weightwise(spec) and all(uncut(g) for g in spec.groups) and all(f.structure == "lora" for f in fs)
        return shape_folded(spec) and all(kernel_modes_identity(f) for f in fs)

    def reference(self, spec: SuperLoRA, native: Mapping[Any, tuple], backend: Any) -> dict[str, Any]:
        return {t: ref.loha_delta(*native[t]) for t in native}


LOHA = LoHa()
