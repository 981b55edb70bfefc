"""Conversions to LoRA: exact where the algebra allows (LoKr, LoTR), truncated SVD otherwise.

>>> import superlora_tn as slt
>>> from superlora_tn import variants
>>> spec = variants.lokr({"w": (8, 12)}, rank=2)
>>> conv = lokr_to_lora(spec, spec.init(zero_init=False))
>>> conv.exact, conv.max_error < 1e-12
(True, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .identify import reduces_to
from .native import _require, to_native
from .registry.base import array_backend, extra

if TYPE_CHECKING:
    from .facade import SuperLoRA

__all__ = ["Conversion", "lokr_to_lora", "lotr_to_lora", "svd_to_lora", "to_lora_spec"]


@dataclass(frozen=True)
class Conversion:
    """A converted adapter: the new spec, its parameters (NumPy float64) and how exact it is.

    ``exact`` says whether the algebra makes the conversion exact (up to round-off);
    ``max_error`` is the measured max |dW_new - dW_old| over all targets.
    """

    spec: Any
    params: dict[str, np.ndarray]
    exact: bool
    max_error: float
    note: str


def _np(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    be = array_backend(params)
    return {k: np.asarray(be.to_numpy(v), dtype=np.float64) for k, v in params.items()}


def _np_deltas(spec: SuperLoRA, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v).reshape(spec._by_name[k].matrix_shape) for k, v in spec.contract(params).items()}


def _lora_from_pairs(spec: SuperLoRA, pairs: dict[str, tuple[np.ndarray, np.ndarray]], exact: bool, note: str) -> Conversion:
    """A LoRA spec (scale 1) holding B_t A_t for every target; ranks padded with zeros to the largest."""
    from .variants import lora

    R = max(A.shape[0] for A, _ in pairs.values())
    new = lora([(t.name, t.shape) for t in spec.targets], R)
    params = {}
    for g, t in zip(new.groups, new.targets):
        A, B = pairs[t.name]
        r = A.shape[0]
        A0 = np.zeros((B.shape[0], R))
        A1 = np.zeros((A.shape[1], R))
        A0[:, :r], A1[:, :r] = B, A.T
        params[g.param_name(0, "A0")], params[g.param_name(0, "A1")] = A0, A1
    return Conversion(new, params, exact, 0.0, note)


def _finish(spec: SuperLoRA, params: Mapping[str, Any], conv: Conversion) -> Conversion:
    before = _np_deltas(spec, _np(params))
    after = _np_deltas(conv.spec, conv.params)
    err = max(float(np.abs(before[t] - after[t]).max()) for t in before)
    return Conversion(conv.spec, conv.params, conv.exact, err, conv.note)


def _split_lowrank(x: Any) -> tuple[np.ndarray, np.ndarray]:
    """A factor as (P, Q) with P @ Q equal to it: the pair itself, or (M, I) / (I, M) at the smaller rank."""
    if isinstance(x, tuple):
        return np.asarray(x[0]), np.asarray(x[1])
    M = np.asarray(x)
    return (M, np.eye(M.shape[1])) if M.shape[1] <= M.shape[0] else (np.eye(M.shape[0]), M)


def lokr_to_lora(spec: SuperLoRA, params: Mapping[str, Any]) -> Conversion:
    """Exact: kron(P1 Q1, P2 Q2) = kron(P1, P2) kron(Q1, Q2), a LoRA of rank r1 * r2 per target.

    A dense factor contributes its smaller side as rank (kron(w1, B A) = kron(w1, B) kron(I, A)).
    """
    _require(spec, "lokr")
    native = to_native(spec, _np(params), "lokr")
    pairs = {}
    for t, (w1, w2, scale) in native.items():
        P1, Q1 = _split_lowrank(w1)
        P2, Q2 = _split_lowrank(w2)
        pairs[t] = (np.kron(Q1, Q2), np.kron(P1, P2) * scale)
    conv = _lora_from_pairs(spec, pairs, True, "exact: kron(P1 Q1, P2 Q2) = kron(P1, P2) kron(Q1, Q2)")
    return _finish(spec, params, conv)


def lotr_to_lora(spec: SuperLoRA, params: Mapping[str, Any]) -> Conversion:
    """Exact, per layer: dW_l = (U C_l) V^T (rank r2) or U (C_l V^T) (rank r1), the smaller."""
    _require(spec, "lotr")
    native = to_native(spec, _np(params), "lotr")
    pairs = {}
    for g in spec.groups:
        U, cores, V, scale = native[g.index]
        for l, s in enumerate(g.segments):
            C = cores[l] * scale * extra(spec, s.target)
            pairs[s.target] = (V.T, U @ C) if C.shape[1] <= C.shape[0] else (C @ V.T, U)
    conv = _lora_from_pairs(spec, pairs, True, "exact: dW_l = (U C_l) V^T per layer")
    return _finish(spec, params, conv)


def svd_to_lora(spec: SuperLoRA, params: Mapping[str, Any], rank: int | None = None, rtol: float = 1e-12) -> Conversion:
    """Any spec -> LoRA by truncated SVD of each dW_t; exact iff every discarded singular value <= rtol * s_max.

    ``rank=None`` keeps each target's numerical rank (exact by construction).
    """
    if rank is not None:
        from .validate import as_positive_int

        as_positive_int("rank", rank)
    deltas = _np_deltas(spec, _np(params))
    pairs, exact = {}, True
    for t, W in deltas.items():
        U, S, Vt = np.linalg.svd(W, full_matrices=False)
        keep = int((S > rtol * S[0]).sum()) if S.size and S[0] > 0 else 1
        r = max(1, keep if rank is None else min(rank, S.size))
        if S.size and S[0] > 0 and (S[r:] > rtol * S[0]).any():
            exact = False
        pairs[t] = (Vt[:r], U[:, :r] * S[:r])
    note = "exact (no singular value discarded)" if exact else f"truncated SVD to rank {rank}: best rank-{rank} approximation per target"
    return _finish(spec, params, _lora_from_pairs(spec, pairs, exact, note))


def to_lora_spec(spec: SuperLoRA, params: Mapping[str, Any], rank: int | None = None) -> Conversion:
    """Convert any adapter to LoRA: exactly for LoRA, LoKr and LoTR, else by truncated SVD (error reported)."""
    names = reduces_to(spec)
    if rank is None:
        if "lora" in names:
            native = to_native(spec, _np(params), "lora")
            pairs = {t: (A, B * s) for t, (A, B, s) in native.items()}
            return _finish(spec, params, _lora_from_pairs(spec, pairs, True, "exact: already LoRA"))
        if "lokr" in names and all(len(g.fold) == 2 for g in spec.groups):  # a Tucker conv LoKr goes by SVD
            return lokr_to_lora(spec, params)
        if "lotr" in names:
            return lotr_to_lora(spec, params)
    return svd_to_lora(spec, params, rank)
