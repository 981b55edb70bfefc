"""The protocol every backend implements: a handful of array operations, nothing more.

Everything else (reshape, slicing, ``*``, ``@``, integer-array indexing) uses the operators
NumPy, PyTorch and JAX arrays share, so a backend adapter stays a page long.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import opt_einsum

__all__ = ["Backend"]


class Backend(ABC):
    """One array library. Subclasses import their framework lazily, inside methods."""

    #: name used by ``backend="..."`` and by opt_einsum
    name: str = ""
    #: the opt_einsum backend that runs this backend's einsums (a third party may reuse one)
    einsum_backend: str = ""

    @abstractmethod
    def is_array(self, x: Any) -> bool:
        """True if ``x`` is an array of this backend."""

    @abstractmethod
    def asarray(self, a: np.ndarray, *, dtype: Any = None, device: Any = None) -> Any:
        """Convert a NumPy array (keeping integer dtypes unless ``dtype`` is given)."""

    @abstractmethod
    def to_numpy(self, x: Any) -> np.ndarray:
        """Copy an array of this backend to NumPy (detached from any autograd graph)."""

    @abstractmethod
    def resolve_dtype(self, dtype: Any) -> Any:
        """The backend's dtype object for ``dtype`` (a string, NumPy dtype or native dtype)."""

    @abstractmethod
    def default_dtype(self) -> Any:
        """The float dtype used when none is asked for."""

    @abstractmethod
    def stack(self, xs: Sequence[Any], axis: int = 0) -> Any: ...

    @abstractmethod
    def concat(self, xs: Sequence[Any], axis: int = 0) -> Any: ...

    @abstractmethod
    def zeros(self, shape: tuple[int, ...], *, like: Any) -> Any:
        """Zeros of ``like``'s dtype and device."""

    def device_of(self, x: Any) -> Any:
        """The device an array lives on (None where the backend has one device)."""
        return None

    def dtype_of(self, x: Any) -> Any:
        return x.dtype

    def dtype_name(self, dtype: Any) -> str:
        """A backend-neutral name such as "float32"."""
        return str(dtype).rsplit(".", 1)[-1]

    # ---- fast-path operations (execute.py, hadamard.py); defaults use the shared array API
    #: True when ``matmul``/``multiply``/``copy_into`` can write into a caller's buffer
    supports_out: bool = True

    def transpose(self, x: Any, axes: Sequence[int]) -> Any:
        """A permuted view of ``x`` (no copy where the library allows)."""
        return x.transpose(tuple(axes))

    def matmul(self, a: Any, b: Any, out: Any = None) -> Any:
        """``a @ b`` (batched), written into ``out`` when given."""
        if out is None:
            return a @ b
        raise NotImplementedError(f"{self.name} cannot write into an out= buffer")

    def multiply(self, a: Any, b: Any, out: Any = None) -> Any:
        """Broadcast ``a * b``, written into ``out`` when given."""
        if out is None:
            return a * b
        raise NotImplementedError(f"{self.name} cannot write into an out= buffer")

    def copy_into(self, dst: Any, src: Any) -> Any:
        """Copy ``src`` into the buffer ``dst`` (same shape) and return ``dst``."""
        raise NotImplementedError(f"{self.name} cannot write into an out= buffer")

    def scale_(self, x: Any, factor: float) -> Any:
        """Multiply the buffer ``x`` by ``factor`` in place and return it."""
        raise NotImplementedError(f"{self.name} cannot write into an out= buffer")

    def fwht(self, x: Any, blocks: Sequence[Any]) -> Any:
        """Unnormalised Walsh–Hadamard transform of x's last axis (``hadamard.fwht``)."""
        from ..hadamard import fwht

        return fwht(x, list(blocks))

    #: fresh results of a batch at least this many bytes run one program per group (None: never)
    split_bytes: int | None = None

    def fresh_out(self, shape: tuple[int, ...], operands: Sequence[Any]) -> Any:
        """A new buffer for a program's result when writing into one is cheaper than letting the
        library allocate (None: let it allocate; the default)."""
        return None

    def is_contiguous(self, x: Any) -> bool:
        """True when ``x`` is C-contiguous (so ``reshape`` of it is a view)."""
        return True

    def split(self, x: Any, sizes: Sequence[int]) -> list[Any]:
        """``x`` cut along its first axis into consecutive pieces of ``sizes`` (which sum to its length).

        Autograd backends override it with one multi-output op, whose backward writes ONE gradient
        buffer; a slice per piece would zero-fill a whole-size gradient per piece (O(pieces x n)).
        """
        pieces, start = [], 0
        for n in sizes:
            pieces.append(x[start : start + n])
            start += n
        return pieces

    def linear_map(self, forward: Any, transpose: Any, x: Any) -> Any:
        """``forward(x)`` for a FIXED linear map whose gradient is ``transpose(grad)``.

        Autograd backends run it as one op that saves nothing (no intermediate of ``forward`` is
        kept for the backward); without autograd it is just ``forward(x)``.
        """
        return forward(x)

    def host_call(self, fn: Any, x: Any, shape: tuple[int, ...]) -> Any:
        """``fn`` (a NumPy array in, a NumPy array of ``shape`` out) run on ``x``'s bytes in host
        memory, the result as this backend's array; None where that is not possible (an array on
        a device, or one that needs autograd). Lets a stage run its NumPy implementation
        (compiled kernels, NumPy's BLAS) from every backend on CPU."""
        return None

    def unbind(self, x: Any) -> list[Any]:
        """The rows of ``x`` (its first axis removed); one op on autograd backends, as ``split``."""
        return [x[i] for i in range(x.shape[0])]

    def take(self, x: Any, index: Any) -> Any:
        """``x[index]`` along the first axis (an integer array of this backend)."""
        return x[index]

    def scatter(self, x: Any, index: Any) -> Any:
        """y with ``y[index] = x`` (``index`` a permutation, an integer array of this backend)."""
        raise NotImplementedError

    def einsum_path(self, equation: str, operands: Sequence[Any], path: Sequence[tuple[int, ...]]) -> Any:
        """einsum along a precomputed opt_einsum contraction path (no path search per call)."""
        return opt_einsum.contract(equation, *operands, optimize=list(path), backend=self.einsum_backend)

    def no_autocast(self, like: Any) -> Any:
        """A context manager that disables mixed-precision autocasting for the adapter math, or
        None when nothing needs disabling (the default: no autocast in this library)."""
        return None

    #: True when ``einsum_flat`` runs the library's own einsum along a flattened path (the
    #: runner's one-call path for tiny networks); False: the runner uses the lowered program
    flat_einsum: bool = False

    def einsum_flat(self, equation: str, operands: list[Any], flat: list[int]) -> Any:
        """The library's einsum along a flattened precomputed pairwise path (``flat_einsum``)."""
        raise NotImplementedError(f"{self.name} has no flat-path einsum (flat_einsum is False)")

    def einsum(self, equation: str, *operands: Any) -> Any:
        """Plain einsum through opt_einsum (no cached expression)."""
        return opt_einsum.contract(equation, *operands, backend=self.einsum_backend)

    def __repr__(self) -> str:
        return f"<superlora_tn backend {self.name!r}>"
