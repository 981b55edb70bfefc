"""PyTorch backend (imported only when used). Keeps dtype and device; autograd flows through."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import Backend

__all__ = ["TorchBackend"]

THIN_K = 16  # GEMMs with at most this inner dimension ...
BLAS_MIN_OUTPUT = 1 << 16  # ... and at least this many output entries may run on NumPy's BLAS
MMAP_THRESHOLD = 32 << 20  # glibc's largest dynamic mmap threshold (bytes)


class TorchBackend(Backend):
    name = "torch"
    einsum_backend = "torch"
    framework = "torch"

    def __init__(self) -> None:
        import torch

        self.torch = torch
        self._np_floats = (torch.float32, torch.float64)
        self._np_dtype = {torch.float32: np.float32, torch.float64: np.float64}
        self._fwht_fn: Any = None
        self._linear_fn: Any = None
        vf = getattr(torch, "_VF", None)
        self._vf_einsum = getattr(vf, "einsum", None) if vf is not None else None
        if self._vf_einsum is None:
            self.einsum_flat = None  # type: ignore[assignment]

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
        if (x.device.type != "cpu" or x.dtype not in self._np_floats
                or (x.requires_grad and self.torch.is_grad_enabled())):
            return None
        return self.torch.from_numpy(np.ascontiguousarray(fn(x.detach().numpy())))

    def fwht(self, x: Any, blocks: Sequence[Any]) -> Any:
        """On CPU float tensors: NumPy's rotating-GEMM transform on the same memory (torch's MKL
        runs these 16-32-wide GEMMs 2-3x slower), wrapped in an autograd Function (the transform
        is symmetric, so its backward is the same transform of the gradient)."""
        if x.device.type != "cpu" or x.dtype not in self._np_floats:
            return super().fwht(x, blocks)
        if self._fwht_fn is None:
            self._fwht_fn = _numpy_fwht_function(self.torch)
        return self._fwht_fn.apply(x, tuple(np.asarray(b.detach().cpu().numpy(), dtype=self._np_dtype[x.dtype]) for b in blocks))

    #: a batch of identical groups whose fresh result is at least this large runs one program per
    #: group: torch's allocator recycles blocks under glibc's 32 MiB mmap threshold between calls,
    #: while one big fresh block is mmapped and page-faulted on every call
    split_bytes = MMAP_THRESHOLD

    def fresh_out(self, shape: tuple[int, ...], operands: Sequence[Any]) -> Any:
        """A new CPU result buffer when no autograd is needed (so GEMMs can write it through
        NumPy's BLAS): under 32 MiB torch.empty (recycled by the allocator); above, allocated by
        NumPy, which madvises huge pages (a fresh 64 MB block costs ~7 ms instead of ~30 ms of
        4 KiB page faults with torch's default CPU allocator)."""
        like = operands[0]
        if (like.device.type != "cpu" or like.dtype not in self._np_floats or math.prod(shape) < BLAS_MIN_OUTPUT
                or (self.torch.is_grad_enabled() and any(x.requires_grad for x in operands))):
            return None
        if math.prod(shape) * like.element_size() < MMAP_THRESHOLD:
            return self.torch.empty(shape, dtype=like.dtype)
        return self.torch.from_numpy(np.empty(shape, dtype=self._np_dtype[like.dtype]))

    def _blas_gemm(self, a: Any, b: Any, out: Any) -> bool:
        """True for a thin-K, large-output CPU GEMM that needs no autograd: NumPy's BLAS runs it
        on the same memory 1.5-3x faster than torch's MKL sgemm (which is inefficient for K <= 16)."""
        t = self.torch
        if (a.dim() != 3 or b.dim() != 3 or a.shape[-1] > THIN_K or a.dtype != b.dtype or a.dtype not in self._np_floats
                or a.device.type != "cpu" or b.device.type != "cpu"
                or a.shape[0] * a.shape[1] * b.shape[2] < BLAS_MIN_OUTPUT or a.shape[0] != b.shape[0]):
            return False
        if t.is_grad_enabled() and (a.requires_grad or b.requires_grad):
            return False
        if out is not None and (out.dtype != a.dtype or not out.is_contiguous() or out.requires_grad):
            return False
        return all(x.stride(-1) == 1 or x.stride(-2) == 1 for x in (a, b))

    def matmul(self, a: Any, b: Any, out: Any = None) -> Any:
        if self._blas_gemm(a, b, out):
            if out is None:
                out = self.torch.empty((a.shape[0], a.shape[1], b.shape[2]), dtype=a.dtype)
            np.matmul(a.detach().numpy(), b.detach().numpy(), out=out.detach().numpy())
            return out
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
        if self._linear_fn is None:
            self._linear_fn = _linear_map_function(self.torch)
        return self._linear_fn.apply(x, forward, transpose)


def _numpy_fwht_function(torch: Any) -> Any:
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
