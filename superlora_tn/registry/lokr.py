"""LoKr (LyCORIS / PEFT): dW_t = (alpha / r) kron(W1_t, W2_t), as a variant entry.

>>> from superlora_tn.registry.lokr import LOKR
>>> spec = LOKR.build({"w": (8, 12)}, 2)
>>> LOKR.recognise(spec), LOKR.num_params(spec) == spec.num_params
(True, True)
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
    check_scale,
    conv_orders,
    factor_native,
    kernel_modes_identity,
    kron_pairs,
    matrix_factor_count,
    no_scale_given,
    put_factor,
    shape_folded,
    uncut,
    weightwise,
)

__all__ = ["LOKR", "lokr"]


def lokr(targets: Targets, rank: int, factor: int = -1, decompose_both: bool = False, *,
         alpha: float | None = None, seed: int = 0, factorization: str = "peft", conv_tucker: bool = False) -> SuperLoRA:
    """LoKr: dW_t = (alpha / r) kron(W1_t, W2_t), W2 = w2_a w2_b of rank r, W1 dense or (decompose_both) rank r.

    Each mode is split exactly as PEFT/LyCORIS ``factorization(dim, factor)`` does:
    out = a * b, in = c * d, W1 (a, c), W2 (b, d). P = sum_t [a c (or r (a + c)) + r (b + d)].
    Unlike PEFT, W1/W2 do not switch to dense when r is large: the structure is the one asked for
    (``interop.peft`` handles PEFT's per-layer switch). ``factorization``: ``"peft"``, ``"lycoris"``
    or ``"lycoris-unbalanced"`` (see ``factorize.FACTORIZATIONS``).

    ``conv_tucker=True`` is LyCORIS's Tucker conv LoKr (``use_tucker``, ``lokr_t2``) for conv
    kernels (out, in, kh, kw) of one order: the fold is the kernel's own shape, W1 (a, c, 1, 1),
    W2 (b, d, kh, kw) = t2 x_1 w2_a^T x_2 w2_b^T with a core t2 (r, r, kh, kw) whose kernel modes
    use the identity. P = sum_t [a c (or r^2 + r (a + c)) + r^2 kh kw + r (b + d)].

    >>> lokr({"conv": (320, 640, 3, 3)}, 4, factorization="lycoris", conv_tucker=True).identify()
    'lokr'
    """
    as_positive_int("rank", rank)
    if not isinstance(decompose_both, bool):
        raise SpecError("decompose_both", decompose_both, "True or False")
    if not isinstance(conv_tucker, bool):
        raise SpecError("conv_tucker", conv_tucker, "True or False")
    if not conv_tucker:
        return SuperLoRA(targets, splits=2, exact_splits=True, split_factor=factor, rank=rank, factorization=factorization,
                         structure=["lora" if decompose_both else "dense", "lora"], alpha=alpha, seed=seed)
    if factorization == "peft":
        raise SpecError("factorization", factorization, '"lycoris" or "lycoris-unbalanced" with conv_tucker=True '
                        "(LyCORIS's Tucker conv LoKr keeps the kernel modes whole in w2)")
    order = conv_orders(targets)
    return SuperLoRA(targets, splits=2, split_factor=factor, rank=rank, factorization=factorization, fold="shape",
                     structure=["tucker" if decompose_both else "dense", "tucker"], identity_modes=tuple(range(2, order)),
                     alpha=alpha, seed=seed)


def _tucker_conv_lokr(spec: SuperLoRA) -> bool:
    """LoKr of conv kernels folded as (out, in, kh, kw): w1 (a, c) without kernel modes, w2 (b, d, kh, kw),
    w2 dense or a Tucker core with identity kernel modes (LyCORIS ``lokr_t2``, ``use_tucker``)."""
    if any(len(g.factors) != 2 for g in spec.groups) or not shape_folded(spec):
        return False
    for g in spec.groups:
        f1, f2 = g.factors
        if any(n != 1 for n in f1.shape[2:]) or f1.structure not in ("dense", "tucker"):
            return False
        if f2.structure not in ("dense", "tucker") or (f2.structure == "tucker" and not kernel_modes_identity(f2)):
            return False
    return True


class LoKr(Variant):
    name, display, key, priority = "lokr", "LoKr", "target", 1
    native_form, formula = "(w1, w2, scale), each a matrix or a (w_a, w_b) pair", "lokr_delta"
    build = staticmethod(lokr)

    def recognise(self, spec: SuperLoRA) -> bool:
        if not kron_pairs(spec) or len(spec.groups[0].factors) != 2:
            return False
        if len(spec.groups[0].fold) != 2:
            return _tucker_conv_lokr(spec)
        return weightwise(spec) and all(uncut(g) for g in spec.groups)

    def num_params(self, spec: SuperLoRA) -> int:
        return sum(matrix_factor_count(f) for g in spec.groups for f in g.factors)

    def to_native(self, spec: SuperLoRA, params: Mapping[str, Any]) -> dict[Any, tuple]:
        return {g.segments[0].target: (factor_native(params, g, 0), factor_native(params, g, 1),
                                       spec.target_scale(g.segments[0].target)) for g in spec.groups}

    def from_native(self, spec: SuperLoRA, native: Mapping[Any, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for g in spec.groups:
            t = g.segments[0].target
            w1, w2, scale = no_scale_given(tuple(native[t]), 3)
            check_scale(t, scale, spec.target_scale(t))
            put_factor(out, g, 0, w1, f"native[{t!r}].w1")
            put_factor(out, g, 1, w2, f"native[{t!r}].w2")
        return out

    def reference(self, spec: SuperLoRA, native: Mapping[Any, tuple], backend: Any) -> dict[str, Any]:
        return {t: ref.lokr_delta(*native[t]) for t in native}


LOKR = LoKr()
