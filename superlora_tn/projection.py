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

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .hadamard import hadamard_blocks
from .validate import check_projection_args

__all__ = ["Fastfood", "Gaussian", "Projection", "projection_rng"]


def projection_rng(seed: int, group: int) -> np.random.Generator:
    """The generator that draws group ``group``'s projection (independent per group)."""
    return np.random.default_rng([seed, group, 0x50F])


GATHER_BUCKET = 4096  # entries per destination bucket of the two-pass gather (16 KiB of float32)
TWO_PASS_MIN = 1 << 18  # below this a plain gather stays in cache


def two_pass_gather(perm: np.ndarray) -> dict[str, np.ndarray]:
    """Split the gather ``y = x[perm]`` into a cache-friendly scatter and a local gather.

    ``t[scatter] = x`` reads x sequentially and writes into one stream per destination bucket;
    ``y = t[gather]`` then only reads inside a bucket (in cache). The result is exactly
    ``x[perm]`` (a permutation moves values, no arithmetic). Empty for small permutations.
    """
    T = perm.size
    if T < TWO_PASS_MIN:
        return {}
    dest = np.empty(T, dtype=np.int64)
    dest[perm] = np.arange(T)
    order = np.argsort(dest // GATHER_BUCKET, kind="stable")
    pos = np.empty(T, dtype=np.int64)
    pos[order] = np.arange(T)
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

    def apply(self, u: Any, consts: dict, backend: Any) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Fastfood(Projection):
    """Fastfood projection (Le, Sarlós, Smola 2013): O(n log n) time, no stored matrix."""

    @staticmethod
    def block_length(generated: int) -> int:
        return 1 << max(0, (generated - 1).bit_length())

    def constants(self, sizes: list[int], generated: list[int], seed: int, group_ids: list[int]) -> dict:
        """NumPy constants for a batch of same-size groups: signs, permutations, Gaussians."""
        n, n_gen = sizes[0], generated[0]
        L = self.block_length(n_gen)
        nb = -(-n // L)
        signs, perms, gauss = [], [], []
        for g in group_ids:
            rng = projection_rng(self.seed if self.seed is not None else seed, g)
            signs.append(rng.choice([-1.0, 1.0], size=(nb, L)))
            perms.append(np.stack([rng.permutation(L) for _ in range(nb)]))
            gauss.append(rng.standard_normal((nb, L)))
        B = len(group_ids)
        offsets = (np.arange(B * nb) * L).reshape(B, nb, 1)
        perm = (np.stack(perms) + offsets).reshape(-1)
        return {
            "signs": np.stack(signs),
            "perm": perm,
            **two_pass_gather(perm),
            "gauss": np.stack(gauss) / math.sqrt(n * L),
            "blocks": hadamard_blocks(L),
            "n": n,
            "L": L,
            "nb": nb,
        }

    def apply(self, u: Any, consts: dict, backend: Any) -> Any:
        """Map u (B, n') to (B, n) with the batch's constants (already on u's backend)."""
        as_numpy = getattr(backend, "numpy_view", None)
        if as_numpy is not None and backend.name != "numpy" and as_numpy(u) is not None:
            # no autograd needed, CPU memory: the NumPy path (two-pass gather, NumPy's BLAS) on the same bytes
            from .backends import get_backend

            view = {k: (as_numpy(v) if backend.is_array(v) else [as_numpy(b) for b in v] if isinstance(v, list) else v)
                    for k, v in consts.items()}
            return backend.from_numpy(self.apply(as_numpy(u), view, get_backend("numpy")))
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

    def apply(self, u: Any, consts: dict, backend: Any) -> Any:
        return backend.einsum("bij,bj->bi", consts["matrix"], u)
