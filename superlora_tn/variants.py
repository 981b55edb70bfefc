"""Named LoRA variants as SuperLoRA specs (docs/reductions.md), each with its parameter count.

Every builder returns a plain :class:`~superlora_tn.SuperLoRA`; ``spec.identify()`` gives the
variant's name back, and ``spec.num_params`` equals the formula in the builder's docstring
(targets seen as (out, in) matrices, sums over targets t or groups g).

>>> from superlora_tn import variants
>>> vit = {f"l{i}.{p}": (768, 768) for i in range(12) for p in "qv"}
>>> variants.lora(vit, 8).num_params, variants.lokr(vit, 8).num_params, variants.lotr(vit, 8).num_params
(294912, 26112, 13824)
>>> variants.lokr(vit, 8).identify(), variants.loha(vit, 8).identify(), variants.loha(vit, 8).num_params
('lokr', 'loha', 589824)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .errors import SpecError
from .spec import SuperLoRA
from .targets import normalize_targets
from .validate import as_positive_int

__all__ = ["VARIANTS", "cp", "dense", "loha", "lokr", "lonkr", "lora", "lorta", "lotr"]

VARIANTS = ("dense", "lora", "lokr", "lonkr", "lotr", "lorta", "cp", "loha")

Targets = Mapping[str, Sequence[int]] | Sequence[tuple[str, Sequence[int]]]


def dense(targets: Targets, *, seed: int = 0) -> SuperLoRA:
    """Dense fine-tuning: dW free. P = sum_t out_t * in_t."""
    return SuperLoRA(targets, structure="dense", seed=seed)


def lora(targets: Targets, rank: int, *, alpha: float | None = None, seed: int = 0) -> SuperLoRA:
    """LoRA: dW_t = (alpha / r) B_t A_t, B_t = A0 (out, r), A_t = A1^T (r, in). P = r * sum_t (out_t + in_t)."""
    as_positive_int("rank", rank)
    return SuperLoRA(targets, rank=rank, structure="lora", alpha=alpha, seed=seed)


def lokr(targets: Targets, rank: int, factor: int = -1, decompose_both: bool = False, *,
         alpha: float | None = None, seed: int = 0, factorization: str = "peft", conv_tucker: bool = False) -> SuperLoRA:
    """LoKr: dW_t = (alpha / r) kron(W1_t, W2_t), W2 = w2_a w2_b of rank r, W1 dense or (decompose_both) rank r.

    Each mode is split exactly as PEFT/LyCORIS ``factorization(dim, factor)`` does:
    out = a * b, in = c * d, W1 (a, c), W2 (b, d). P = sum_t [a c (or r (a + c)) + r (b + d)].
    Unlike PEFT, W1/W2 do not switch to dense when r is large: the structure is the one asked for
    (``interop.peft`` handles PEFT's per-layer switch). ``factorization``: ``"peft"``, ``"lycoris"``
    or ``"lycoris-unbalanced"`` (see ``factorize.FACTORIZATIONS``).

    ``conv_tucker=True`` is LyCORIS's Tucker conv LoKr (``use_tucker``, ``lokr_t2``) for conv
    kernels (out, in, kh, kw) of one order: the fold is the kernel's own shape, W1 (a, c, 1, 1),
    W2 (b, d, kh, kw) = t2 x_1 w2_a^T x_2 w2_b^T with a core t2 (r, r, kh, kw) whose kernel modes
    use the identity. P = sum_t [a c (or r^2 + r (a + c)) + r^2 kh kw + r (b + d)].

    >>> lokr({"conv": (320, 640, 3, 3)}, 4, factorization="lycoris", conv_tucker=True).identify()
    'lokr'
    """
    as_positive_int("rank", rank)
    if not isinstance(decompose_both, bool):
        raise SpecError("decompose_both", decompose_both, "True or False")
    if not isinstance(conv_tucker, bool):
        raise SpecError("conv_tucker", conv_tucker, "True or False")
    if not conv_tucker:
        return SuperLoRA(targets, splits=2, exact_splits=True, split_factor=factor, rank=rank, factorization=factorization,
                         structure=["lora" if decompose_both else "dense", "lora"], alpha=alpha, seed=seed)
    if factorization == "peft":
        raise SpecError("factorization", factorization, '"lycoris" or "lycoris-unbalanced" with conv_tucker=True '
                        "(LyCORIS's Tucker conv LoKr keeps the kernel modes whole in w2)")
    orders = {len(t.shape) for t in normalize_targets(targets)}
    if len(orders) != 1 or min(orders) < 3:
        raise SpecError("targets", sorted(orders), "conv kernels (out, in, k...) of one order (3 or more) for conv_tucker=True")
    return SuperLoRA(targets, splits=2, split_factor=factor, rank=rank, factorization=factorization, fold="shape",
                     structure=["tucker" if decompose_both else "dense", "tucker"], identity_modes=tuple(range(2, orders.pop())),
                     alpha=alpha, seed=seed)


def loha(targets: Targets, rank: int, *, alpha: float | None = None, seed: int = 0, conv_tucker: bool = False) -> SuperLoRA:
    """LoHa: dW_t = (alpha / r) (w1_a w1_b) * (w2_a w2_b), entry-wise; each pair of rank r.

    One network per weight with hyperedges: ``compose="hadamard"``, equation ``ac,bc,ad,bd->ab``
    (the row index a and the column index b are shared by two tensors each). P = 2 r sum_t (out_t + in_t).
    ``conv_tucker=True`` is LyCORIS's Tucker conv LoHa (``hada_t1``, ``hada_t2``): each factor is a
    core (r, r, kh, kw) with identity kernel modes times w_a^T, w_b^T, on the kernel's own shape.
    """
    as_positive_int("rank", rank)
    if not isinstance(conv_tucker, bool):
        raise SpecError("conv_tucker", conv_tucker, "True or False")
    if not conv_tucker:
        return SuperLoRA(targets, splits=2, compose="hadamard", rank=rank, structure="lora", alpha=alpha, seed=seed)
    orders = {len(t.shape) for t in normalize_targets(targets)}
    if len(orders) != 1 or min(orders) < 3:
        raise SpecError("targets", sorted(orders), "conv kernels (out, in, k...) of one order (3 or more) for conv_tucker=True")
    return SuperLoRA(targets, splits=2, compose="hadamard", rank=rank, structure="tucker", fold="shape",
                     identity_modes=tuple(range(2, orders.pop())), alpha=alpha, seed=seed)


def lonkr(targets: Targets, rank: int, splits: int = 3, *, groups: Any = "weight", alpha: float | None = None,
          seed: int = 0) -> SuperLoRA:
    """LoNKr: dW_group = (alpha / r) kron(T_1, ..., T_K), every T_k = A0 A1^T of rank r, K = splits >= 3.

    ``groups="weight"``: natural fold (out, in); otherwise the balanced fold (s, s), s = ceil(sqrt(n_g)).
    Each mode N splits into K sizes (core ``mode_split``). P = sum_g sum_k r (n_gk1 + n_gk2).
    """
    K = as_positive_int("splits", splits)
    if K < 3:
        raise SpecError("splits", splits, "an integer >= 3 (splits=2 on a weight is LoKr: use variants.lokr)")
    as_positive_int("rank", rank)
    fold = "natural" if groups == "weight" else "balanced"
    return SuperLoRA(targets, groups=groups, fold=fold, splits=K, rank=rank, structure="lora", alpha=alpha, seed=seed)


def lotr(targets: Targets, rank: int, *, groups: Sequence[Sequence[str]] | None = None, alpha: float | None = None,
         seed: int = 0) -> SuperLoRA:
    """LoTR: dW_l = (alpha / r) U C_l V^T within each group of L same-shape targets (U (o, r), V (i, r) shared).

    ``groups=None``: one group per distinct shape, targets in order; or explicit lists (e.g. all
    queries, all values). P = sum_g (L_g r^2 + r (o_g + i_g)).
    """
    as_positive_int("rank", rank)
    if groups is None:
        by_shape: dict[tuple[int, int], list[str]] = {}
        for t in normalize_targets(targets):
            by_shape.setdefault(t.matrix_shape, []).append(t.name)
        groups = list(by_shape.values())
    if isinstance(groups, str) or not all(isinstance(g, Sequence) and not isinstance(g, str) for g in groups):
        raise SpecError("groups", groups, "None or a list of lists of target names")
    return SuperLoRA(targets, groups=[list(g) for g in groups], fold="stack", order=3, rank=rank, structure="tucker",
                     identity_modes=(0,), alpha=alpha, seed=seed)


def lorta(targets: Targets, rank: int, order: int = 3, groups: Any = 1, *, alpha: float | None = None,
          seed: int = 0) -> SuperLoRA:
    """LoRTA: dW_group = (alpha / r) unfold(C x_1 A_1 ... x_M A_M) on the balanced fold (s,)*M.

    s_g = ceil(n_g ** (1/M)), C (r,)*M, A_m (s_g, r); the first n_g entries are kept.
    P = sum_g (r^M + M s_g r). ``order`` must be >= 3 (M = 2 is a grouped LoRA).
    """
    as_positive_int("rank", rank)
    M = as_positive_int("order", order)
    if M < 3:
        raise SpecError("order", order, "an integer >= 3 (a tensor fold; order 2 is LoRA)")
    return SuperLoRA(targets, groups=groups, fold="balanced", order=M, rank=rank, structure="tucker", alpha=alpha, seed=seed)


def cp(targets: Targets, rank: int, order: int = 3, groups: Any = 1, *, alpha: float | None = None,
       seed: int = 0) -> SuperLoRA:
    """CP of the balanced fold: dW_group = (alpha / r) sum_j a_1j o ... o a_Mj. P = sum_g M s_g r."""
    as_positive_int("rank", rank)
    M = as_positive_int("order", order)
    if M < 3:
        raise SpecError("order", order, "an integer >= 3 (a tensor fold; order 2 is LoRA)")
    return SuperLoRA(targets, groups=groups, fold="balanced", order=M, rank=rank, structure="cp", alpha=alpha, seed=seed)


def build(name: str, targets: Targets, rank: int = 8, **kwargs: Any) -> SuperLoRA:
    """The variant called ``name`` (one of ``VARIANTS``)."""
    if name not in VARIANTS:
        raise SpecError("variant", name, f"one of {VARIANTS}")
    if name == "dense":
        return dense(targets, **kwargs)
    return globals()[name](targets, rank, **kwargs)
