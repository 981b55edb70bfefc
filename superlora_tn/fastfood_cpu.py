"""Fastfood on CPU NumPy arrays with the compiled kernels, in place where the math allows.

The portable path (``projection.Fastfood.forward``) allocates a fresh array per stage; at
n = 75M float32 entries each fresh 300 MB array costs page faults comparable to the stage
itself. Here the sign product writes one buffer, both transforms run in place on it (numba
butterfly), the Gaussian scaling is in place, and the permutation is one gather or scatter
(two-pass when its arrays are present). Exactly the same arithmetic as the portable path.

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

__all__ = ["forward", "transpose"]


def forward(u: np.ndarray, c: dict) -> np.ndarray | None:
    """F u for u of shape (B, n'), or None when the kernels do not apply (no numba, odd dtype)."""
    if not kernels.available() or u.dtype not in (np.float32, np.float64):
        return None
    B, n_gen = u.shape
    L, nb, n = c["L"], c["nb"], c["n"]
    x = np.zeros((B, nb, L), dtype=u.dtype)
    np.multiply(u[:, None, :], c["signs"][:, :, :n_gen], out=x[:, :, :n_gen])
    if not kernels.fwht_(x):
        return None
    flat = x.reshape(-1)
    if "scatter" in c:
        y = kernels.gather(kernels.scatter(flat, c["scatter"]), c["gather"])
    else:
        y = kernels.gather(flat, c["perm"])
    del x, flat
    y = y.reshape(B, nb, L)
    y *= c["gauss"]
    kernels.fwht_(y)
    return y.reshape(B, nb * L)[:, :n]


def transpose(g: np.ndarray, c: dict) -> np.ndarray | None:
    """F^T g for g of shape (B, n), or None when the kernels do not apply."""
    if not kernels.available() or g.dtype not in (np.float32, np.float64):
        return None
    B = g.shape[0]
    L, nb, n = c["L"], c["nb"], c["n"]
    x = np.zeros((B, nb * L), dtype=g.dtype)
    x[:, :n] = g
    x = x.reshape(B, nb, L)
    if not kernels.fwht_(x):
        return None
    x *= c["gauss"]
    flat = x.reshape(-1)
    if "scatter" in c:  # the two passes reversed: scatter, then gather
        y = kernels.gather(kernels.scatter(flat, c["gather"]), c["scatter"])
    else:
        y = kernels.scatter(flat, c["perm"])
    del x, flat
    y = y.reshape(B, nb, L)
    kernels.fwht_(y)
    y *= c["signs"]
    out = y.sum(axis=1) if nb > 1 else y.reshape(B, L)
    return out[:, : c["generated"]]
