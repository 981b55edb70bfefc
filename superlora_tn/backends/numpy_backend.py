"""NumPy backend."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import Backend

__all__ = ["NumpyBackend"]


class NumpyBackend(Backend):
    name = "numpy"
    einsum_backend = "numpy"

    def is_array(self, x: Any) -> bool:
        return isinstance(x, np.ndarray)

    def asarray(self, a: np.ndarray, *, dtype: Any = None, device: Any = None) -> Any:
        return np.asarray(a, dtype=None if dtype is None else self.resolve_dtype(dtype))

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def resolve_dtype(self, dtype: Any) -> Any:
        return np.dtype(dtype)

    def default_dtype(self) -> Any:
        return np.dtype(np.float64)

    def stack(self, xs: Sequence[Any], axis: int = 0) -> Any:
        return np.stack(xs, axis=axis)

    def concat(self, xs: Sequence[Any], axis: int = 0) -> Any:
        return np.concatenate(xs, axis=axis)

    def zeros(self, shape: tuple[int, ...], *, like: Any) -> Any:
        return np.zeros(shape, dtype=like.dtype)

    def matmul(self, a: Any, b: Any, out: Any = None) -> Any:
        return np.matmul(a, b, out=out)

    def multiply(self, a: Any, b: Any, out: Any = None) -> Any:
        return np.multiply(a, b, out=out)

    def copy_into(self, dst: Any, src: Any) -> Any:
        np.copyto(dst, src)
        return dst

    def scale_(self, x: Any, factor: float) -> Any:
        return np.multiply(x, factor, out=x)

    def is_contiguous(self, x: Any) -> bool:
        return bool(x.flags.c_contiguous)

    def host_call(self, fn: Any, x: Any, shape: tuple[int, ...]) -> Any:
        return fn(x)

    def take(self, x: Any, index: Any) -> Any:
        from ..kernels import gather

        out = gather(x, index)
        if out is not None:
            return out
        return np.take(x, index, axis=0)

    def scatter(self, x: Any, index: Any) -> Any:
        from ..kernels import scatter

        out = scatter(x, index)
        if out is not None:
            return out
        y = np.empty_like(x)
        y[index] = x
        return y
