"""NumPy backend."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import Backend

__all__ = ["NumpyBackend"]


class NumpyBackend(Backend):
    name = "numpy"
    framework = "numpy"

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
