"""The fast Walsh–Hadamard transform as a tensor network.

The Sylvester Hadamard matrix of size L = 2^p is a Kronecker product of small Hadamard
matrices, H_L = H_h1 (x) H_h2 (x) ... So the transform of a vector is a chain of small dense
mode products over its folded (h1, h2, ...) view: O(L log L) work in a few vectorised passes,
never a dense L x L matrix and never a Python loop over elements.

>>> import numpy as np
>>> x = np.arange(8.0)
>>> blocks = hadamard_blocks(8, max_block=4)
>>> [b.shape for b in blocks]
[(4, 4), (2, 2)]
>>> np.allclose(fwht(x, blocks), sylvester(8) @ x)
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["MAX_BLOCK", "fwht", "hadamard_blocks", "sylvester"]

MAX_BLOCK = 64


def sylvester(h: int) -> np.ndarray:
    """The unnormalised h x h Sylvester Hadamard matrix, H[i, j] = (-1)^popcount(i & j)."""
    if h < 1 or h & (h - 1):
        raise ValueError(f"Hadamard size must be a power of two, got {h}")
    idx = np.arange(h)
    bits = np.bitwise_and(idx[:, None], idx[None, :])
    parity = np.zeros((h, h), dtype=np.int64)
    while bits.any():
        parity ^= bits & 1
        bits = bits >> 1
    return (1 - 2 * parity).astype(np.float64)


def hadamard_blocks(length: int, max_block: int = MAX_BLOCK) -> list[np.ndarray]:
    """The small Sylvester matrices whose Kronecker product is H_length (largest first)."""
    if length < 1 or length & (length - 1):
        raise ValueError(f"Hadamard length must be a power of two, got {length}")
    blocks, rest = [], length
    while rest > 1:
        h = min(max_block, rest)
        blocks.append(sylvester(h))
        rest //= h
    return blocks or [np.ones((1, 1))]


def fwht(x: Any, blocks: list[Any], rotate: bool | None = None) -> Any:
    """Unnormalised Walsh–Hadamard transform of the last axis of ``x``.

    ``blocks`` are the small Hadamard matrices (arrays of x's backend and dtype) from
    ``hadamard_blocks(x.shape[-1])``. Works on any array type with reshape, swapaxes and ``@``.

    Two lowerings of the same Kronecker chain (identical results up to float summation order):
    ``rotate=True`` applies each block as ONE GEMM per batch row whose left operand is read
    transposed (``x.reshape(h, rest).T @ H``), which also rotates the folded axes so that after
    all blocks they are back in order (best with NumPy's BLAS dispatch); ``rotate=False`` applies
    each block in place along its own axis (first axis: one GEMM ``H @ X``; last axis:
    ``X @ H``; middle axes: a batched GEMM), best for PyTorch. Default: rotate on NumPy arrays.
    """
    shape = x.shape
    if rotate is None:
        rotate = type(x).__module__ == "numpy"
    rows = 1
    for n in shape[:-1]:
        rows *= n
    y = x.reshape(rows, shape[-1])
    if rotate:
        for H in blocks:
            y = y.reshape(rows, H.shape[0], -1).swapaxes(-1, -2) @ H  # H is symmetric
        return y.reshape(shape)
    pre = 1
    post = shape[-1]
    for H in blocks:
        h = H.shape[0]
        post //= h
        if post == 1:
            y = y.reshape(-1, h) @ H
        else:
            y = H @ y.reshape(rows * pre, h, post)
        pre *= h
    return y.reshape(shape)
