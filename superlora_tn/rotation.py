"""Tucker networks lowered to a chain of rotating GEMMs: every step is ONE (batched) GEMM whose
left operand is read transposed (a free view), and the last one writes dW in C order.

A Tucker group is a core G[r_0, ..., r_{M-1}] with one factor U_m[n_m, r_m] per mode. Viewing
the running tensor as (r_m, rest) and multiplying ``(rest, r_m) @ U_m^T`` contracts mode m and
moves its new axis n_m to the end; after M steps the axes are back in order (n_0, ..., n_{M-1}).
No intermediate is ever permuted or copied, and the last GEMM has the big dimension as M and
n_{M-1} as N (the shape BLAS runs best for a thin K = r).

>>> import numpy as np
>>> from superlora_tn.backends import get_backend
>>> rot = detect("def,ad,be,cf->abc")
>>> G, A, B, C = (np.random.default_rng(i).standard_normal(s) for i, s in enumerate([(2, 3, 4), (5, 2), (6, 3), (7, 4)]))
>>> np.allclose(run_rotation(rot, [G, A, B, C], get_backend("numpy"), (5, 6, 7)), np.einsum("def,ad,be,cf->abc", G, A, B, C))
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backends import Backend

__all__ = ["Rotation", "detect", "run_rotation"]


@dataclass(frozen=True)
class Rotation:
    """core: operand position; factors[m] = (operand position, True when stored (r, n))."""

    core: int
    factors: tuple[tuple[int, bool], ...]
    batched: bool


def detect(equation: str) -> Rotation | None:
    """The Tucker structure of ``equation`` (optionally with a leading batch index), else None."""
    lhs, out = equation.split("->")
    terms = lhs.split(",")
    batch = ""
    if all(t and t[0] == out[0] for t in terms) and len(terms) > 1:
        batch = out[0]
    terms_nb = [t[len(batch):] for t in terms]
    out_nb = out[len(batch):]
    if any(batch and batch in t for t in terms_nb) or len(out_nb) < 2:
        return None
    cores = [i for i, t in enumerate(terms_nb) if not set(t) & set(out_nb)]
    if len(cores) != 1 or len(terms) != len(out_nb) + 1:
        return None
    core = terms_nb[cores[0]]
    if len(core) != len(out_nb) or len(set(core)) != len(core):
        return None
    factors = []
    for r, n in zip(core, out_nb):
        hits = [i for i, t in enumerate(terms_nb) if i != cores[0] and set(t) == {r, n} and len(t) == 2]
        if len(hits) != 1:
            return None
        factors.append((hits[0], terms_nb[hits[0]] == r + n))
    if len({f[0] for f in factors}) != len(factors):
        return None
    return Rotation(cores[0], tuple(factors), bool(batch))


def run_rotation(rot: Rotation, operands: list[Any], be: Backend, out_shape: tuple[int, ...], out: Any = None) -> Any:
    """Execute the chain; the result has ``out_shape`` in C order (written into ``out`` if given)."""
    t = operands[rot.core]
    if not rot.batched:
        t = t.reshape(1, *t.shape)
    z = t.shape[0]
    M = len(rot.factors)
    if out is None:
        out = be.fresh_out(out_shape, operands)
    for m, (pos, rn) in enumerate(rot.factors):
        u = operands[pos]
        if not rot.batched:
            u = u.reshape(1, *u.shape)
        right = u if rn else be.transpose(u, (0, 2, 1))  # (z, r_m, n_m)
        r = right.shape[1]
        left = be.transpose(t.reshape(z, r, -1), (0, 2, 1))  # (z, rest, r_m): a transposed view
        if m == M - 1 and out is not None:
            be.matmul(left, right, out=out.reshape(z, left.shape[1], right.shape[2]))
            return out
        t = be.matmul(left, right)
    return t.reshape(out_shape)
