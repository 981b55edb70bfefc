"""PyTorch backend (imported only when used). Keeps dtype and device; autograd flows through."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import Backend

__all__ = ["TorchBackend"]


class TorchBackend(Backend):
    name = "torch"
    framework = "torch"

    def __init__(self) -> None:
        import torch

        self.torch = torch

    def is_array(self, x: Any) -> bool:
        return isinstance(x, self.torch.Tensor)

    def asarray(self, a: np.ndarray, *, dtype: Any = None, device: Any = None) -> Any:
        t = self.torch.from_numpy(np.ascontiguousarray(a))
        return t.to(device=device, dtype=None if dtype is None else self.resolve_dtype(dtype))

    def to_numpy(self, x: Any) -> np.ndarray:
        x = x.detach().cpu()
        if x.dtype in (self.torch.bfloat16, self.torch.float16):
            x = x.float()
        return x.numpy()

    def resolve_dtype(self, dtype: Any) -> Any:
        if isinstance(dtype, self.torch.dtype):
            return dtype
        name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
        resolved = getattr(self.torch, name, None)
        if not isinstance(resolved, self.torch.dtype):
            raise TypeError(f"torch has no dtype {dtype!r}")
        return resolved

    def default_dtype(self) -> Any:
        return self.torch.get_default_dtype()

    def device_of(self, x: Any) -> Any:
        return x.device

    def stack(self, xs: Sequence[Any], axis: int = 0) -> Any:
        return self.torch.stack(list(xs), dim=axis)

    def concat(self, xs: Sequence[Any], axis: int = 0) -> Any:
        return self.torch.cat(list(xs), dim=axis)

    def zeros(self, shape: tuple[int, ...], *, like: Any) -> Any:
        return self.torch.zeros(shape, dtype=like.dtype, device=like.device)
