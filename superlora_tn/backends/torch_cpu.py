"""CPU kernels the torch adapter calls: NumPy's BLAS and allocator on torch memory.

The torch adapter (``torch_backend.py``) maps the backend protocol onto torch; this module holds
the platform-specific detours it takes on CPU, each one measured (docs/performance.md, "What
makes it fast"):

- ``blas_matmul``: a thin-K batched GEMM (K <= ``THIN_K``) with a large output and no autograd
  runs through NumPy's BLAS on the same memory; torch's MKL sgemm is 1.5-3x slower for K <= 16.
- ``fresh_buffer``: a new result buffer for a program that needs no autograd: ``torch.empty``
  under glibc's 32 MiB mmap threshold (the allocator recycles it), NumPy's allocator above
  (it madvises huge pages: a fresh 64 MB block costs ~7 ms instead of ~30 ms of page faults).
- ``NumpyFWHT``: the Walsh-Hadamard transform as NumPy's rotating GEMMs on the tensor's memory,
  as one autograd op (the transform is symmetric: its backward is the same transform).

Every function returns None (or False) when its case does not apply; the adapter then uses
torch's own operation. Only float32/float64 CPU tensors qualify.

>>> import torch
>>> a, b = torch.ones(2, 300, 4), torch.ones(2, 4, 300)
>>> blas_matmul(torch, a, b, None).shape
torch.Size([2, 300, 300])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

__all__ = ["BLAS_MIN_OUTPUT", "MMAP_THRESHOLD", "THIN_K", "blas_matmul", "fresh_buffer", "numpy_fwht", "numpy_view_ok"]

THIN_K = 16  # GEMMs with at most this inner dimension ...
BLAS_MIN_OUTPUT = 1 << 16  # ... and at least this many output entries run on NumPy's BLAS
MMAP_THRESHOLD = 32 << 20  # glibc's largest dynamic mmap threshold (bytes)


@cache
def _np_dtypes(torch: Any) -> dict[Any, Any]:
    return {torch.float32: np.float32, torch.float64: np.float64}


def _np_dtype(torch: Any, dtype: Any) -> Any:
    """The NumPy dtype of a float32/float64 torch dtype, else None (checked on every GEMM: no dict built per call)."""
    return _np_dtypes(torch).get(dtype)


def numpy_view_ok(torch: Any, x: Any) -> bool:
    """True when ``x`` may be handed to NumPy as a view: a float32/float64 CPU tensor that needs
    no autograd (NumPy would not record the operation)."""
    return (x.device.type == "cpu" and _np_dtype(torch, x.dtype) is not None
            and not (x.requires_grad and torch.is_grad_enabled()))


def blas_matmul(torch: Any, a: Any, b: Any, out: Any) -> Any:
    """``a @ b`` for 3-D thin-K CPU operands through NumPy's BLAS (written into ``out`` when
    given), or None when the case does not apply."""
    if (a.dim() != 3 or b.dim() != 3 or a.shape[-1] > THIN_K or a.dtype != b.dtype or a.shape[0] != b.shape[0]
            or a.shape[0] * a.shape[1] * b.shape[2] < BLAS_MIN_OUTPUT
            or not (numpy_view_ok(torch, a) and numpy_view_ok(torch, b))):
        return None
    if out is not None and (out.dtype != a.dtype or not out.is_contiguous() or out.requires_grad):
        return None
    if not all(x.stride(-1) == 1 or x.stride(-2) == 1 for x in (a, b)):
        return None
    if out is None:
        out = torch.empty((a.shape[0], a.shape[1], b.shape[2]), dtype=a.dtype)
    np.matmul(a.detach().numpy(), b.detach().numpy(), out=out.detach().numpy())
    return out


def fresh_buffer(torch: Any, shape: tuple[int, ...], operands: Sequence[Any]) -> Any:
    """A new CPU result buffer when no operand needs autograd (so GEMMs can write it through
    NumPy's BLAS), or None: under 32 MiB ``torch.empty``, above it NumPy's allocator."""
    like = operands[0]
    if (math.prod(shape) < BLAS_MIN_OUTPUT or not all(numpy_view_ok(torch, x) for x in operands)):
        return None
    if math.prod(shape) * like.element_size() < MMAP_THRESHOLD:
        return torch.empty(shape, dtype=like.dtype)
    return torch.from_numpy(np.empty(shape, dtype=_np_dtype(torch, like.dtype)))


def numpy_fwht(torch: Any, x: Any, blocks: Sequence[Any]) -> Any:
    """The unnormalised FWHT of x's last axis on NumPy (one autograd op), or None when ``x`` is
    not a float32/float64 CPU tensor."""
    dtype = _np_dtype(torch, x.dtype)
    if x.device.type != "cpu" or dtype is None:
        return None
    consts = tuple(np.asarray(b.detach().cpu().numpy(), dtype=dtype) for b in blocks)
    return _fwht_function(torch).apply(x, consts)


@cache
def _fwht_function(torch: Any) -> Any:
    from ..hadamard import fwht

    def run(t: Any, blocks: tuple) -> Any:
        return torch.from_numpy(np.ascontiguousarray(fwht(t.detach().contiguous().numpy(), list(blocks), rotate=True)))

    class NumpyFWHT(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Any, blocks: tuple) -> Any:
            ctx.blocks = blocks
            return run(x, blocks)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            return run(grad, ctx.blocks), None

    return NumpyFWHT
