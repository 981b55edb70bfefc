"""PyTorch backend (imported only when used). Keeps dtype and device; autograd flows through.

A thin adapter: each method maps the protocol onto one torch call. Where NumPy is faster on CPU
memory (thin GEMMs, fresh buffers, the FWHT), it calls the kernels in ``torch_cpu``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

from . import torch_cpu
from .base import Backend

__all__ = ["TorchBackend"]


class TorchBackend(Backend):
    name = "torch"
    einsum_backend = "torch"
    #: a batch whose fresh result is at least this large runs one program per group: torch's
    #: allocator recycles blocks under glibc's 32 MiB mmap threshold between calls, while one big
    #: fresh block is mmapped and page-faulted on every call
    split_bytes = torch_cpu.MMAP_THRESHOLD

    def __init__(self) -> None:
        import torch

        self.torch = torch
        vf = getattr(torch, "_VF", None)
        self._vf_einsum = getattr(vf, "einsum", None) if vf is not None else None
        self.flat_einsum = self._vf_einsum is not None

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

    def einsum_flat(self, equation: str, operands: list[Any], flat: list[int]) -> Any:
        """torch's C++ einsum along a flattened precomputed path (the runner's tiny-network call)."""
        return self._vf_einsum(equation, operands, path=flat)

    def no_autocast(self, like: Any) -> Any:
        """A context that turns autocast off for the adapter math (None when it is off already):
        torch autocasts matmul but not mul/tensordot, so a mixed program would mix dtypes."""
        kind = like.device.type
        if self.torch.is_autocast_enabled(kind):
            return self.torch.autocast(kind, enabled=False)
        return None

    def host_call(self, fn: Any, x: Any, shape: tuple[int, ...]) -> Any:
        """On a float32/float64 CPU tensor that needs no autograd: ``fn`` on its memory as NumPy."""
        if not torch_cpu.numpy_view_ok(self.torch, x):
            return None
        return self.torch.from_numpy(np.ascontiguousarray(fn(x.detach().numpy())))

    def fwht(self, x: Any, blocks: Sequence[Any]) -> Any:
        """On CPU float tensors NumPy's rotating-GEMM transform (``torch_cpu.numpy_fwht``)."""
        y = torch_cpu.numpy_fwht(self.torch, x, blocks)
        return y if y is not None else super().fwht(x, blocks)

    def fresh_out(self, shape: tuple[int, ...], operands: Sequence[Any]) -> Any:
        return torch_cpu.fresh_buffer(self.torch, shape, operands)

    def matmul(self, a: Any, b: Any, out: Any = None) -> Any:
        y = torch_cpu.blas_matmul(self.torch, a, b, out)
        if y is not None:
            return y
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

    def split(self, x: Any, sizes: Sequence[int]) -> list[Any]:
        return list(self.torch.split(x, list(sizes)))

    def unbind(self, x: Any) -> list[Any]:
        return list(self.torch.unbind(x))

    def take(self, x: Any, index: Any) -> Any:
        return self.torch.index_select(x, 0, index)

    def scatter(self, x: Any, index: Any) -> Any:
        return self.torch.empty_like(x).index_put_((index,), x)

    def linear_map(self, forward: Any, transpose: Any, x: Any) -> Any:
        if not (self.torch.is_grad_enabled() and x.requires_grad):
            with self.torch.no_grad():
                return forward(x)
        return _linear_map_function(self.torch).apply(x, forward, transpose)


@cache
def _linear_map_function(torch: Any) -> Any:
    class LinearMap(torch.autograd.Function):
        """A fixed linear map: forward and backward run without autograd and save no tensor."""

        @staticmethod
        def forward(ctx: Any, x: Any, forward: Any, transpose: Any) -> Any:
            ctx.transpose = transpose
            return forward(x)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            return ctx.transpose(grad.contiguous()), None, None

    return LinearMap
