"""Compiled CPU kernels (numba, optional): gathers and scatters by int32 permutations.

NumPy converts an int32 index array to int64 on every fancy-indexing call, which costs more
than the gather itself at Fastfood's sizes, and int64 permutations would double the constants'
memory. These one-pass loops read the int32 indices as they are. Without numba, ``gather``/``scatter`` return None and callers keep NumPy.
(A compiled butterfly Walsh–Hadamard transform was measured too: 2x slower than the block-GEMM
transform on NumPy's BLAS, so the transform stays on BLAS.)

>>> import numpy as np
>>> x, idx = np.arange(4.0), np.array([3, 0, 2, 1], dtype=np.int32)
>>> y = gather(x, idx)
>>> y is None or y.tolist() == [3.0, 0.0, 2.0, 1.0]
True
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any

import numpy as np

__all__ = ["available", "gather", "scatter"]

_moves: Any = None


@functools.cache
def available() -> bool:
    """True when numba is installed (the kernels compile on first use); looked up once."""
    return importlib.util.find_spec("numba") is not None


def _compile_moves() -> Any:
    import numba

    @numba.njit(cache=True, nogil=True)
    def gather_(x: Any, index: Any, out: Any) -> None:  # pragma: no cover - compiled
        for k in range(index.size):
            out[k] = x[index[k]]

    @numba.njit(cache=True, nogil=True)
    def scatter_(x: Any, index: Any, out: Any) -> None:  # pragma: no cover - compiled
        for k in range(index.size):
            out[index[k]] = x[k]

    return gather_, scatter_


def _moves_kernels() -> Any:
    global _moves
    if _moves is None:
        _moves = _compile_moves()
    return _moves


def _index_ok(x: Any, index: Any) -> bool:
    return available() and index.ndim == 1 and x.ndim == 1 and index.dtype.kind == "i" and x.flags.c_contiguous


def gather(x: Any, index: Any) -> Any:
    """``x[index]`` for 1-D NumPy arrays (None when the kernel does not apply)."""
    if not _index_ok(x, index):
        return None
    out = np.empty(index.size, dtype=x.dtype)
    _moves_kernels()[0](x, index, out)
    return out


def scatter(x: Any, index: Any) -> Any:
    """y with ``y[index] = x`` for a 1-D permutation ``index`` (None when the kernel does not apply)."""
    if not _index_ok(x, index) or index.size != x.size:
        return None
    out = np.empty_like(x)
    _moves_kernels()[1](x, index, out)
    return out
