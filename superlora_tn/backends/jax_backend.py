"""JAX backend (imported only when used). Works under ``jax.jit`` and ``jax.grad``.

float64 needs ``jax.config.update("jax_enable_x64", True)``; the library never flips that
global switch itself and refuses float64 when it is off instead of silently downcasting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import SpecError
from .base import Backend

__all__ = ["JaxBackend"]


class JaxBackend(Backend):
    name = "jax"
    einsum_backend = "jax"
    supports_out = False  # jax arrays are immutable: contract(out=...) is refused with a SpecError

    def __init__(self) -> None:
        import jax
        import jax.numpy as jnp

        self.jax = jax
        self.jnp = jnp

    def is_array(self, x: Any) -> bool:
        return isinstance(x, self.jax.Array)

    def asarray(self, a: np.ndarray, *, dtype: Any = None, device: Any = None) -> Any:
        if dtype is None and np.asarray(a).dtype.kind == "f":
            dtype = np.asarray(a).dtype
        if dtype is not None:
            self._check_x64(dtype)
        # constants converted while a jit trace is running must stay concrete (not leak as tracers)
        with self.jax.ensure_compile_time_eval():
            out = self.jnp.asarray(a, dtype=None if dtype is None else self.resolve_dtype(dtype))
        return out if device is None else self.jax.device_put(out, device)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x, dtype=np.float32 if x.dtype == self.jnp.bfloat16 else None)

    def resolve_dtype(self, dtype: Any) -> Any:
        return self.jnp.dtype(dtype)

    def default_dtype(self) -> Any:
        return self.jnp.dtype(self.jnp.float64 if self.jax.config.jax_enable_x64 else self.jnp.float32)

    def _check_x64(self, dtype: Any) -> None:
        if np.dtype(dtype).itemsize == 8 and not self.jax.config.jax_enable_x64:
            raise SpecError(
                "dtype", str(np.dtype(dtype)),
                'float32 on jax, or call jax.config.update("jax_enable_x64", True) first for 64-bit',
            )

    def stack(self, xs: Sequence[Any], axis: int = 0) -> Any:
        return self.jnp.stack(list(xs), axis=axis)

    def concat(self, xs: Sequence[Any], axis: int = 0) -> Any:
        return self.jnp.concatenate(list(xs), axis=axis)

    def zeros(self, shape: tuple[int, ...], *, like: Any) -> Any:
        return self.jnp.zeros(shape, dtype=like.dtype)

    def fwht(self, x: Any, blocks: Sequence[Any]) -> Any:
        """On CPU: NumPy's BLAS block GEMMs through ``host_call`` (about 4x XLA's own lowering of
        the same GEMMs; no autodiff is needed: projections differentiate through ``linear_map``).
        Elsewhere the block GEMMs in XLA, rotating (about 2x the other order)."""
        from ..hadamard import fwht

        host = [np.asarray(b, dtype=x.dtype) for b in blocks]
        y = self.host_call(lambda v: fwht(v, host, rotate=True), x, x.shape)
        return y if y is not None else fwht(x, list(blocks), rotate=True)

    def host_call(self, fn: Any, x: Any, shape: tuple[int, ...]) -> Any:
        """When JAX runs on CPU: ``fn`` through ``jax.pure_callback`` (works under jit and vmap;
        not differentiable, so a caller differentiates around it, as ``linear_map`` does)."""
        if self.jax.default_backend() != "cpu" or x.dtype not in (np.float32, np.float64):
            return None

        def run(v: Any) -> Any:
            return np.ascontiguousarray(fn(np.asarray(v)), dtype=v.dtype)

        return self.jax.pure_callback(run, self.jax.ShapeDtypeStruct(shape, x.dtype), x, vmap_method="sequential")

    def linear_map(self, forward: Any, transpose: Any, x: Any) -> Any:
        """A custom VJP: the gradient is ``transpose`` (a gather stays a gather, never a scatter-add)."""
        jax = self.jax

        @jax.custom_vjp
        def f(v: Any) -> Any:
            return forward(v)

        def fwd(v: Any) -> Any:
            return forward(v), None

        def bwd(_: Any, g: Any) -> Any:
            return (transpose(g),)

        f.defvjp(fwd, bwd)
        return f(x)

    def scatter(self, x: Any, index: Any) -> Any:
        return self.jnp.zeros_like(x).at[index].set(x, unique_indices=True)
