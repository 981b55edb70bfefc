"""The fixed projection F mapping a group's n' generated entries onto its n entries.

``Fastfood(ratio)``: stacked blocks y_b = H G_b P_b H B_b pad(u) of size L = 2^ceil(log2 n'),
concatenated, cut to n and scaled by 1/sqrt(n L) so that E||F u||^2 = ||u||^2.
``Gaussian(ratio)``: a dense seeded Gaussian matrix with N(0, 1/n) entries, the O(n n')
reference for small sizes. Both draw every random number from NumPy, so F is identical on
every backend; each group gets its own independent projection.

>>> import numpy as np
>>> from superlora_tn.backends import get_backend
>>> F = Fastfood(ratio=0.5)
>>> F.generated_size(100)
50
>>> c = F.constants([100], [50], seed=0, group_ids=[0])
>>> y = F.apply(np.ones((1, 50)), c, get_backend("numpy"))
>>> y.shape
(1, 100)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import fastfood_cpu, kernels
from .hadamard import hadamard_blocks
from .validate import check_projection_args

if TYPE_CHECKING:
    from .backends import Backend

__all__ = ["Fastfood", "Gaussian", "Projection", "projection_rng"]


def projection_rng(seed: int, group: int) -> np.random.Generator:
    """The generator that draws group ``group``'s projection (independent per group)."""
    return np.random.default_rng([seed, group, 0x50F])


GATHER_BUCKET = 4096  # entries per destination bucket of the two-pass gather (16 KiB of float32)
TWO_PASS_MIN = 1 << 18  # below this a plain gather stays in cache


def index_dtype(size: int) -> type:
    """The narrowest index dtype for arrays of ``size`` entries (int32 halves the constants' memory)."""
    return np.int32 if size < 2**31 else np.int64


def two_pass_gather(perm: np.ndarray) -> dict[str, np.ndarray]:
    """Split the gather ``y = x[perm]`` into a cache-friendly scatter and a local gather.

    ``t[scatter] = x`` reads x sequentially and writes into one stream per destination bucket;
    ``y = t[gather]`` then only reads inside a bucket (in cache). The result is exactly
    ``x[perm]`` (a permutation moves values, no arithmetic). Empty for small permutations.
    Built in O(T): the inverse permutation is a scatter, and the stable bucket order a radix
    sort of 16-bit bucket numbers. Not used where the compiled kernels are installed: their
    one-pass gather of int32 indices is faster, and the two index arrays cost 2x dW's memory.
    """
    T = perm.size
    if T < TWO_PASS_MIN or kernels.available():  # the compiled one-pass gather is faster (and 2 arrays smaller)
        return {}
    itype = index_dtype(T)
    dest = np.empty(T, dtype=itype)
    dest[perm] = np.arange(T, dtype=itype)
    bucket = dest // GATHER_BUCKET
    if T // GATHER_BUCKET < 2**16:
        bucket = bucket.astype(np.uint16)  # NumPy's stable sort of 16-bit keys is a radix sort
    order = np.argsort(bucket, kind="stable")
    pos = np.empty(T, dtype=itype)
    pos[order] = np.arange(T, dtype=itype)
    return {"scatter": pos, "gather": pos[perm]}


@dataclass(frozen=True)
class Projection:
    """Base of the fixed linear projections: ``ratio`` rho in (0, 1], optional own ``seed``."""

    ratio: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        ratio, seed = check_projection_args(self.ratio, self.seed)  # NumPy numbers become Python ones
        object.__setattr__(self, "ratio", ratio)
        object.__setattr__(self, "seed", seed)

    def generated_size(self, n: int) -> int:
        """n' = ceil(rho * n): how many entries the network generates for a group of n."""
        return max(1, math.ceil(self.ratio * n - 1e-9))

    def constants(self, sizes: list[int], generated: list[int], seed: int, group_ids: list[int]) -> dict:
        raise NotImplementedError

    def apply(self, u: Any, consts: dict, backend: Backend) -> Any:
        """Map u (B, n') to (B, n) with the batch's constants (already on u's backend).

        On autograd backends this is one op whose backward is the adjoint (``transpose``) and
        which saves nothing: F is fixed, so no intermediate of the transform is kept.
        """
        return backend.linear_map(lambda v: self.forward(v, consts, backend), lambda g: self.transpose(g, consts, backend), u)

    def forward(self, u: Any, consts: dict, backend: Backend) -> Any:
        """F u for u of shape (B, n'), without autograd bookkeeping."""
        raise NotImplementedError

    def transpose(self, g: Any, consts: dict, backend: Backend) -> Any:
        """F^T g for g of shape (B, n): the gradient of ``apply``."""
        raise NotImplementedError

    def apply_range(self, u: Any, consts: dict, index: int, start: int, stop: int, backend: Backend) -> Any:
        """Entries [start, stop) of F u for the batch's group ``index`` (u of shape (n',)), computing
        only what those entries need (differentiable through the backend's own ops)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Fastfood(Projection):
    """Fastfood projection (Le, Sarlós, Smola 2013): O(n log n) time, no stored matrix."""

    @staticmethod
    def block_length(generated: int) -> int:
        return 1 << max(0, (generated - 1).bit_length())

    def constants(self, sizes: list[int], generated: list[int], seed: int, group_ids: list[int]) -> dict:
        """NumPy constants for a batch of same-size groups: signs (int8), permutations (int32 where
        they fit), Gaussians. Built in O(n) and cached by the plan per backend/dtype/device."""
        n, n_gen = sizes[0], generated[0]
        L = self.block_length(n_gen)
        nb = -(-n // L)
        B = len(group_ids)
        itype = index_dtype(B * nb * L)
        signs = np.empty((B, nb, L), dtype=np.int8)
        perm = np.empty((B, nb, L), dtype=itype)
        gauss = np.empty((B, nb, L))
        for b, g in enumerate(group_ids):
            rng = projection_rng(self.seed if self.seed is not None else seed, g)
            signs[b] = rng.choice([-1.0, 1.0], size=(nb, L))
            for j in range(nb):
                perm[b, j] = rng.permutation(L)
                perm[b, j] += (b * nb + j) * L
            gauss[b] = rng.standard_normal((nb, L))
        gauss /= math.sqrt(n * L)
        perm = perm.reshape(-1)
        return {
            "signs": signs,
            "perm": perm,
            **two_pass_gather(perm),
            "gauss": gauss,
            "blocks": hadamard_blocks(L),
            "n": n,
            "generated": n_gen,
            "L": L,
            "nb": nb,
        }

    def forward(self, u: Any, consts: dict, backend: Backend) -> Any:
        # in host memory (NumPy, torch CPU, JAX CPU): the NumPy stage on the same bytes
        host = _numpy_consts(consts, backend)
        y = backend.host_call(lambda v: _on_numpy(self._forward, fastfood_cpu.forward, v, host()), u, (u.shape[0], consts["n"]))
        return y if y is not None else self._forward(u, consts, backend)

    def _forward(self, u: Any, consts: dict, backend: Backend) -> Any:
        """The portable F u: the backend's own operations."""
        B, n_gen = u.shape
        L, nb, n = consts["L"], consts["nb"], consts["n"]
        if n_gen < L:
            u = backend.concat([u, backend.zeros((B, L - n_gen), like=u)], axis=1)
        x = u.reshape(B, 1, L) * consts["signs"]
        x = backend.fwht(x, consts["blocks"])
        x = x.reshape(-1)
        if "scatter" in consts and backend.name == "numpy":
            x = backend.take(backend.scatter(x, consts["scatter"]), consts["gather"])
        else:
            x = backend.take(x, consts["perm"])
        x = x.reshape(B, nb, L) * consts["gauss"]
        x = backend.fwht(x, consts["blocks"])
        return x.reshape(B, nb * L)[:, :n]

    def transpose(self, g: Any, consts: dict, backend: Backend) -> Any:
        host = _numpy_consts(consts, backend)
        x = backend.host_call(lambda v: _on_numpy(self._transpose, fastfood_cpu.transpose, v, host()), g, (g.shape[0], consts["generated"]))
        return x if x is not None else self._transpose(g, consts, backend)

    def _transpose(self, g: Any, consts: dict, backend: Backend) -> Any:
        """The portable F^T g: the backend's own operations."""
        B = g.shape[0]
        L, nb, n = consts["L"], consts["nb"], consts["n"]
        if n < nb * L:
            g = backend.concat([g, backend.zeros((B, nb * L - n), like=g)], axis=1)
        x = backend.fwht(g.reshape(B, nb, L), consts["blocks"]) * consts["gauss"]
        x = x.reshape(-1)
        if "scatter" in consts and backend.name == "numpy":  # the two passes reversed: scatter, then gather
            x = backend.take(backend.scatter(x, consts["gather"]), consts["scatter"])
        else:
            x = backend.scatter(x, consts["perm"])
        x = backend.fwht(x.reshape(B, nb, L), consts["blocks"]) * consts["signs"]
        x = x.sum(axis=1) if nb > 1 else x.reshape(B, L)
        return x[:, : consts["generated"]]

    def apply_range(self, u: Any, consts: dict, index: int, start: int, stop: int, backend: Backend) -> Any:
        L, nb = consts["L"], consts["nb"]
        j0, j1 = start // L, -(-stop // L)
        n_gen = u.shape[0]
        if n_gen < L:
            u = backend.concat([u, backend.zeros((L - n_gen,), like=u)])
        x = u.reshape(1, L) * consts["signs"][index, j0:j1]
        x = backend.fwht(x, consts["blocks"])
        first = (index * nb + j0) * L
        local = consts["perm"][first : first + (j1 - j0) * L] - first
        x = backend.take(x.reshape(-1), local).reshape(j1 - j0, L) * consts["gauss"][index, j0:j1]
        x = backend.fwht(x, consts["blocks"]).reshape(-1)
        return x[start - j0 * L : stop - j0 * L]


def _numpy_consts(consts: dict, backend: Backend) -> Any:
    """The constants as NumPy arrays, converted on first call and then kept: under ``jax.jit`` the
    host callback built at trace time runs every step with the same conversion."""
    return functools.cache(lambda: {
        k: (backend.to_numpy(v) if backend.is_array(v) else [backend.to_numpy(b) for b in v] if isinstance(v, list) else v)
        for k, v in consts.items()})


def _on_numpy(portable: Any, compiled: Any, x: np.ndarray, c: dict) -> np.ndarray:
    """A Fastfood stage on NumPy arrays: the compiled one (numba kernels, in place) where it
    applies, else the portable one on the NumPy backend."""
    from .backends import get_backend

    y = compiled(x, c)
    return y if y is not None else portable(x, c, get_backend("numpy"))


@dataclass(frozen=True)
class Gaussian(Projection):
    """Dense seeded Gaussian projection, the O(n n') reference for the fast one."""

    def constants(self, sizes: list[int], generated: list[int], seed: int, group_ids: list[int]) -> dict:
        n, n_gen = sizes[0], generated[0]
        mats = [
            projection_rng(self.seed if self.seed is not None else seed, g).standard_normal((n, n_gen))
            for g in group_ids
        ]
        return {"matrix": np.stack(mats) / math.sqrt(n)}

    def forward(self, u: Any, consts: dict, backend: Backend) -> Any:
        return backend.einsum("bij,bj->bi", consts["matrix"], u)

    def transpose(self, g: Any, consts: dict, backend: Backend) -> Any:
        return backend.einsum("bij,bi->bj", consts["matrix"], g)

    def apply_range(self, u: Any, consts: dict, index: int, start: int, stop: int, backend: Backend) -> Any:
        return backend.einsum("ij,j->i", consts["matrix"][index, start:stop], u)
