"""Independent textbook formulas for every named variant (the oracle of the reduction proofs,
docs/design.md §3).

Nothing here imports the contraction path (spec, network, plan, execute, backends): only
NumPy and the operators NumPy, PyTorch and JAX arrays share (``@``, ``*``, ``+``, indexing with
``None``, ``reshape``, ``sum``), so each formula runs unchanged on numpy, torch and jax arrays.
Kronecker products are written with broadcasting, the Tucker mode product as a batched matmul,
CP as a running Khatri-Rao product, a tensor train as a chain of matmuls: none of them calls ``einsum``.

>>> import numpy as np
>>> A, B = np.ones((2, 5)), np.ones((4, 2))
>>> lora_delta(A, B, 0.5).shape
(4, 5)
>>> bool((kron(np.eye(2), np.ones((2, 3))) == np.kron(np.eye(2), np.ones((2, 3)))).all())
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "cp_to_tensor",
    "dense_delta",
    "kron",
    "loha_delta",
    "lokr_delta",
    "lonkr_delta",
    "lora_delta",
    "lotr_deltas",
    "lowrank",
    "mode_product",
    "multilinear_ranks",
    "numerical_rank",
    "tt_to_tensor",
    "tucker_to_tensor",
    "unfold",
    "van_loan",
]


def dense_delta(W: Any, scale: float = 1.0) -> Any:
    """Dense fine-tuning: dW = scale * W."""
    return W * scale


def lora_delta(A: Any, B: Any, scale: float = 1.0) -> Any:
    """LoRA (Hu et al.): dW = scale * B @ A, A (r, in) and B (out, r) as PEFT stores them."""
    return (B @ A) * scale


def kron(X: Any, Y: Any) -> Any:
    """numpy.kron of two matrices (first factor coarse), by broadcasting: (a c, b d).

    Higher-order operands follow ``torch.kron`` as LyCORIS's ``make_kron`` calls it: X gets
    trailing unit modes up to Y's order, then mode m of the result is (X_m Y_m), X coarse.
    """
    if len(X.shape) != 2 or len(Y.shape) != 2:
        n = len(Y.shape)
        X = X.reshape(*X.shape, *(1,) * (n - len(X.shape)))
        xs = [s for d in X.shape for s in (d, 1)]
        ys = [s for d in Y.shape for s in (1, d)]
        return (X.reshape(*xs) * Y.reshape(*ys)).reshape(*(p * q for p, q in zip(X.shape, Y.shape)))
    a, b = X.shape
    c, d = Y.shape
    return (X[:, None, :, None] * Y[None, :, None, :]).reshape(a * c, b * d)


def lowrank(w: Any) -> Any:
    """A factor given as a matrix, or as a low-rank pair (w_a, w_b) meaning w_a @ w_b (LyCORIS naming)."""
    return w[0] @ w[1] if isinstance(w, tuple | list) else w


def lokr_delta(w1: Any, w2: Any, scale: float = 1.0) -> Any:
    """LoKr (LyCORIS / PEFT ``make_kron``): dW = scale * kron(w1, w2); w1, w2 matrices or (w_a, w_b) pairs."""
    return kron(lowrank(w1), lowrank(w2)) * scale


def loha_delta(w1: Any, w2: Any, scale: float = 1.0) -> Any:
    """LoHa (Hyeon-Woo et al., LyCORIS ``hada``): dW = scale * (w1_a @ w1_b) * (w2_a @ w2_b), entry-wise.

    Each of w1, w2 is a (w_a, w_b) pair, a matrix, or a tensor (LyCORIS's Tucker conv LoHa rebuilds
    each factor from its core ``hada_t``; pass the rebuilt (out, in, kh, kw) tensors).
    """
    return lowrank(w1) * lowrank(w2) * scale


def lonkr_delta(factors: Sequence[Any], scale: float = 1.0) -> Any:
    """LoNKr: dW = scale * kron(T_1, ..., T_K), T_1 the most significant; each a matrix or a pair."""
    out = lowrank(factors[0])
    for f in factors[1:]:
        out = kron(out, lowrank(f))
    return out * scale


def lotr_deltas(U: Any, cores: Any, V: Any, scale: float = 1.0) -> list[Any]:
    """LoTR (Bershatsky et al.): dW_l = scale * U @ C_l @ V^T for every layer l (U, V shared)."""
    return [(U @ cores[l] @ V.T) * scale for l in range(cores.shape[0])]


def mode_product(X: Any, A: Any, mode: int) -> Any:
    """Tucker mode product X x_mode A: Y[.., i, ..] = sum_j A[i, j] X[.., j, ..], as a batched matmul."""
    shape = tuple(X.shape)
    before = int(np.prod(shape[:mode], dtype=np.int64))
    after = int(np.prod(shape[mode + 1:], dtype=np.int64))
    Y = A @ X.reshape(before, shape[mode], after)  # (n, r) @ (before, r, after) -> (before, n, after)
    return Y.reshape(*shape[:mode], A.shape[0], *shape[mode + 1:])


def tucker_to_tensor(core: Any, factors: Sequence[Any | None]) -> Any:
    """C x_1 A_1 x_2 ... x_M A_M; a ``None`` factor is the identity (the mode is kept as is)."""
    X = core
    for m, A in enumerate(factors):
        if A is not None:
            X = mode_product(X, A, m)
    return X


def cp_to_tensor(factors: Sequence[Any], weights: Any = None) -> Any:
    """sum_r w_r a_1r o a_2r o ... o a_Mr (Khatri-Rao, written out), A_m (n_m, R)."""
    P = factors[0] if weights is None else factors[0] * weights
    for A in factors[1:]:
        P = (P[:, None, :] * A[None, :, :]).reshape(P.shape[0] * A.shape[0], A.shape[1])
    return P.sum(-1).reshape(*(A.shape[0] for A in factors))


def tt_to_tensor(cores: Sequence[Any]) -> Any:
    """Tensor train (TT-LoRA, LoRETTA; tensorly's ``tt_to_tensor``): X[i_1..i_M] = G_1[:, i_1, :] ... G_M[:, i_M, :].

    Cores G_m (r_{m-1}, n_m, r_m) with r_0 = r_M = 1, as tensorly stores them. The chain is
    multiplied left to right: a (n_1..n_m, r_m) matrix times the next core seen as (r_m, n_{m+1} r_{m+1}).
    """
    X = cores[0].reshape(cores[0].shape[1], cores[0].shape[2])  # r_0 = 1
    for G in cores[1:]:
        r, n, s = G.shape
        X = (X @ G.reshape(r, n * s)).reshape(-1, s)
    return X.reshape(*(G.shape[1] for G in cores))  # r_M = 1


# ------------------------------------------------------------------ structural (numpy only)
def numerical_rank(M: np.ndarray, rtol: float = 1e-9) -> int:
    """Number of singular values above rtol * the largest (0 for the zero matrix)."""
    s = np.linalg.svd(np.asarray(M, dtype=np.float64), compute_uv=False)
    if s.size == 0 or s[0] == 0:
        return 0
    return int((s > rtol * s[0]).sum())


def unfold(X: np.ndarray, mode: int) -> np.ndarray:
    """Mode-m unfolding (n_m, prod of the other modes)."""
    return np.moveaxis(np.asarray(X), mode, 0).reshape(X.shape[mode], -1)


def multilinear_ranks(X: np.ndarray, rtol: float = 1e-9) -> tuple[int, ...]:
    """Numerical ranks of every unfolding (the Tucker / multilinear rank)."""
    return tuple(numerical_rank(unfold(X, m), rtol) for m in range(np.ndim(X)))


def van_loan(W: np.ndarray, shape1: tuple[int, int], shape2: tuple[int, int]) -> np.ndarray:
    """Van Loan-Pitsianis rearrangement R(W), (a b, c d): R(kron(X, Y)) = vec(X) vec(Y)^T (rank 1).

    ``W`` is (a c, b d) with shape1 = (a, b) the coarse factor's shape, shape2 = (c, d).
    """
    a, b = shape1
    c, d = shape2
    return np.asarray(W).reshape(a, c, b, d).transpose(0, 2, 1, 3).reshape(a * b, c * d)
