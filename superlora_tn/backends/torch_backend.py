"""PyTorch backend (imported only when used). Keeps dtype and device; autograd flows through."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import Backend

__all__ = ["TorchBackend"]


class TorchBackend(Backend):
    name = "torch"
    einsum_backend = "torch"
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

    def transpose(self, x: Any, axes: Sequence[int]) -> Any:
        return x.permute(*axes)

    def einsum_path(self, equation: str, operands: Sequence[Any], path: Sequence[tuple[int, ...]]) -> Any:
        # torch.einsum minus its per-call path search: its C++ kernel takes the flattened path
        flat = [i for pair in path for i in pair]
        try:
            return self.torch._VF.einsum(equation, list(operands), path=flat)
        except (AttributeError, TypeError, RuntimeError):
            return self.torch.einsum(equation, *operands)

    def matmul(self, a: Any, b: Any, out: Any = None) -> Any:
        if out is None:
            return self.torch.matmul(a, b)
        with self.torch.no_grad():
            return self.torch.matmul(a, b, out=out)

    def multiply(self, a: Any, b: Any, out: Any = None) -> Any:
        if out is None:
            return self.torch.mul(a, b)
        with self.torch.no_grad():
            return self.torch.mul(a, b, out=out)

    def copy_into(self, dst: Any, src: Any) -> Any:
        with self.torch.no_grad():
            return dst.copy_(src)

    def scale_(self, x: Any, factor: float) -> Any:
        with self.torch.no_grad():
            return x.mul_(factor)

    def is_contiguous(self, x: Any) -> bool:
        return bool(x.is_contiguous())

    def sum(self, x: Any, axes: Sequence[int]) -> Any:
        return x.sum(dim=tuple(axes))

    def take(self, x: Any, index: Any) -> Any:
        return self.torch.index_select(x, 0, index)

    def scatter(self, x: Any, index: Any) -> Any:
        return self.torch.empty_like(x).index_copy_(0, index, x)
