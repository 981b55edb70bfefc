"""Compiled CPU kernels (numba, optional): the in-place fast Walsh–Hadamard transform, and
gathers/scatters by int32 permutations (NumPy converts an int32 index array to int64 on every
fancy-indexing call, which costs more than the gather itself).

The portable transform (``hadamard.fwht``) applies 32 x 32 Hadamard blocks as GEMMs: BLAS-fast,
but 64 flops per entry per block pass. The butterfly does one add and one subtract per entry per
bit. This kernel runs the butterflies cache-blocked: the first 12 bits inside 4096-entry blocks
(in L1), the rest 4 bits per pass over 256-wide column chunks, so a 2^23 transform reads memory
3 times instead of 23. Results equal the portable path up to float summation order.

Used by the NumPy and torch CPU backends when numba is installed (``superlora-tn[fast]``);
without numba, ``fwht_`` returns False and callers keep the portable path.

>>> import numpy as np
>>> from superlora_tn.hadamard import sylvester
>>> x = np.arange(16.0).reshape(2, 8)
>>> y = x.copy()
>>> if fwht_(y): np.testing.assert_allclose(y, x @ sylvester(8))
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

__all__ = ["available", "fwht_", "gather", "scatter"]

IN_CACHE = 4096  # entries transformed entirely inside L1 before the strided passes
CHUNK = 256  # contiguous columns per strided butterfly
RADIX_BITS = 4  # bits per strided pass

_kernel: Any = None
_moves: Any = None


def available() -> bool:
    """True when numba is installed (the kernel compiles on first use)."""
    return importlib.util.find_spec("numba") is not None


def _compile() -> Any:
    import numba

    @numba.njit(cache=True, nogil=True)
    def wht_rows(x: Any) -> None:  # pragma: no cover - compiled
        rows, n = x.shape
        block = min(n, IN_CACHE)
        for r in range(rows):
            row = x[r]
            if n >= 8:  # bits 0-2: an unrolled 8-point transform per 8 consecutive entries
                for i in range(0, n, 8):
                    a0 = row[i] + row[i + 1]
                    a1 = row[i] - row[i + 1]
                    a2 = row[i + 2] + row[i + 3]
                    a3 = row[i + 2] - row[i + 3]
                    a4 = row[i + 4] + row[i + 5]
                    a5 = row[i + 4] - row[i + 5]
                    a6 = row[i + 6] + row[i + 7]
                    a7 = row[i + 6] - row[i + 7]
                    b0 = a0 + a2
                    b1 = a1 + a3
                    b2 = a0 - a2
                    b3 = a1 - a3
                    b4 = a4 + a6
                    b5 = a5 + a7
                    b6 = a4 - a6
                    b7 = a5 - a7
                    row[i] = b0 + b4
                    row[i + 1] = b1 + b5
                    row[i + 2] = b2 + b6
                    row[i + 3] = b3 + b7
                    row[i + 4] = b0 - b4
                    row[i + 5] = b1 - b5
                    row[i + 6] = b2 - b6
                    row[i + 7] = b3 - b7
            first = 8 if n >= 8 else 1
            for base in range(0, n, block):
                h = first
                while h < block:
                    for i in range(base, base + block, 2 * h):
                        for j in range(i, i + h):
                            a = row[j]
                            b = row[j + h]
                            row[j] = a + b
                            row[j + h] = a - b
                    h *= 2
            h = block
            while h < n:
                span, k = h, 0
                while k < RADIX_BITS and span < n:
                    span *= 2
                    k += 1
                for i in range(0, n, span):
                    for jc in range(0, h, CHUNK):
                        width = min(CHUNK, h - jc)
                        hh = h
                        while hh < span:
                            for t0 in range(i, i + span, 2 * hh):
                                for t in range(t0, t0 + hh, h):
                                    p = t + jc
                                    q = p + hh
                                    for c in range(width):
                                        a = row[p + c]
                                        b = row[q + c]
                                        row[p + c] = a + b
                                        row[q + c] = a - b
                            hh *= 2
                h = span

    return wht_rows


def fwht_(x: Any) -> bool:
    """Transform the last axis of the C-contiguous float NumPy array ``x`` in place (unnormalised).

    Returns False (x untouched) when numba is missing or x does not qualify.
    """
    global _kernel
    if not available() or x.dtype.kind != "f" or x.dtype.itemsize not in (4, 8) or not x.flags.c_contiguous or x.ndim == 0:
        return False
    n = x.shape[-1]
    if n < 2 or n & (n - 1):
        return False
    if _kernel is None:
        _kernel = _compile()
    _kernel(x.reshape(-1, n))
    return True


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
