"""Fastfood on CPU NumPy arrays with the compiled kernels, in place where the math allows.

The portable path (``projection.Fastfood.forward``) allocates a fresh array per stage and
gathers with NumPy's fancy indexing, which converts the int32 permutation to int64 on every
call. Here the sign product writes one zero-padded buffer, the Gaussian and sign scalings are
in place, and the permutation is one compiled gather or scatter of the int32 indices (numba;
with numba installed the constants hold no two-pass arrays: ``projection.two_pass_gather``).
The transforms are the same block GEMMs on NumPy's BLAS. Exactly the same arithmetic as the
portable path.

>>> import numpy as np
>>> from superlora_tn import Fastfood
>>> from superlora_tn.backends import get_backend
>>> F = Fastfood(0.5)
>>> c = F.constants([40], [20], 0, [0])
>>> u = np.random.default_rng(0).standard_normal((1, 20))
>>> y = forward(u, c)
>>> y is None or np.allclose(y, F.forward(u, c, get_backend("numpy")))
True
"""

from __future__ import annotations

import numpy as np

from . import kernels
from .hadamard import fwht

__all__ = ["forward", "transpose"]


def forward(u: np.ndarray, c: dict) -> np.ndarray | None:
    """F u for u of shape (B, n'), or None when the kernels do not apply (no numba, odd dtype)."""
    if not kernels.available() or u.dtype not in (np.float32, np.float64):
        return None
    B, n_gen = u.shape
    L, nb, n = c["L"], c["nb"], c["n"]
    x = np.zeros((B, nb, L), dtype=u.dtype)
    np.multiply(u[:, None, :], c["signs"][:, :, :n_gen], out=x[:, :, :n_gen])
    flat = fwht(x, c["blocks"], rotate=True).reshape(-1)
    del x
    y = kernels.gather(flat, c["perm"])  # with numba, the constants hold no two-pass arrays
    del flat
    y = y.reshape(B, nb, L)
    y *= c["gauss"]
    return fwht(y, c["blocks"], rotate=True).reshape(B, nb * L)[:, :n]


def transpose(g: np.ndarray, c: dict) -> np.ndarray | None:
    """F^T g for g of shape (B, n), or None when the kernels do not apply."""
    if not kernels.available() or g.dtype not in (np.float32, np.float64):
        return None
    B = g.shape[0]
    L, nb, n = c["L"], c["nb"], c["n"]
    x = np.zeros((B, nb * L), dtype=g.dtype)
    x[:, :n] = g
    x = fwht(x.reshape(B, nb, L), c["blocks"], rotate=True)
    x *= c["gauss"]
    y = kernels.scatter(x.reshape(-1), c["perm"])
    del x
    y = fwht(y.reshape(B, nb, L), c["blocks"], rotate=True)
    y *= c["signs"]
    out = y.sum(axis=1) if nb > 1 else y.reshape(B, L)
    return out[:, : c["generated"]]
