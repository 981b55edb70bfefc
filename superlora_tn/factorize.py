"""Integer factorisations used to fold groups and split modes into Kronecker factors.

Pure integer arithmetic: nothing here allocates an array.

>>> balanced_factors(768, 2)
(24, 32)
>>> peft_factorization(768)
(24, 32)
>>> mode_split(7, 2, exact=False)
(3, 3)
>>> peft_factorization(320, 32), lycoris_factorization(320, 32)
((32, 10), (10, 32))
"""

from __future__ import annotations

import math
from functools import lru_cache

from .errors import SpecError

#: Conventions for splitting a weight's modes into the two LoKr factors (``SuperLoRA(factorization=...)``).
#: "peft": PEFT's ``factorization`` (a dividing factor first, as is). "lycoris": LyCORIS 4.x's (the pair
#: always sorted, smaller first; kernel modes whole in the second factor). "lycoris-unbalanced": LyCORIS
#: with ``unbalanced_factorization=True`` (the output pair reversed: larger first). "peft-conv": PEFT's
#: LoKr on a whole weight, convolutions included (out and in split by PEFT's ``factorization``, kernel
#: modes whole in the second factor, as PEFT's ``lokr_w2`` / ``lokr_t2`` hold them).
FACTORIZATIONS = ("peft", "lycoris", "lycoris-unbalanced", "peft-conv")
#: The LyCORIS conventions among them (what a LyCORIS file can have been written with).
LYCORIS_FACTORIZATIONS = ("lycoris", "lycoris-unbalanced")

__all__ = [
    "FACTORIZATIONS",
    "LYCORIS_FACTORIZATIONS",
    "balanced_factors",
    "ceil_root",
    "divisors",
    "lycoris_factorization",
    "lycoris_splits",
    "mode_split",
    "peft_factorization",
]


def ceil_root(n: int, k: int) -> int:
    """Smallest integer s with s**k >= n (exact, no float round-off)."""
    if n <= 1:
        return 1
    s = max(1, round(n ** (1.0 / k)))
    while s**k < n:
        s += 1
    while s > 1 and (s - 1) ** k >= n:
        s -= 1
    return s


@lru_cache(maxsize=4096)
def divisors(n: int) -> tuple[int, ...]:
    """All positive divisors of n in ascending order."""
    small, large = [], []
    for d in range(1, math.isqrt(n) + 1):
        if n % d == 0:
            small.append(d)
            if d != n // d:
                large.append(n // d)
    return tuple(small + large[::-1])


@lru_cache(maxsize=4096)
def balanced_factors(n: int, k: int) -> tuple[int, ...]:
    """Exact factorisation n = f_1 * ... * f_k, ascending, with the smallest sum of factors.

    The smallest sum is the most balanced split (for k = 2 it is PEFT's and LyCORIS'
    ``factorization`` with ``factor=-1``). Factors of 1 appear only when n has too few divisors.
    """
    if k == 1:
        return (n,)
    best: tuple[int, ...] | None = None
    for d in divisors(n):
        if d**k > n:
            break
        rest = balanced_factors(n // d, k - 1)
        if rest[0] < d:
            continue
        candidate = (d, *rest)
        if best is None or sum(candidate) < sum(best):
            best = candidate
    return best if best is not None else (1,) * (k - 1) + (n,)


def peft_factorization(dimension: int, factor: int = -1) -> tuple[int, int]:
    """The split PEFT uses for LoKr, ``factor`` semantics included (LyCORIS 4.x: :func:`lycoris_factorization`).

    A positive ``factor`` that divides ``dimension`` is returned first, as is, even when it is the
    larger one (PEFT: ``factorization(12, 4) == (4, 3)``; LyCORIS 4.x sorts it); any other positive
    ``factor`` caps the smaller factor, and the result is (smaller, larger).
    """
    if factor > 0 and dimension % factor == 0:
        return (factor, dimension // factor)
    cap = dimension if factor < 0 else factor
    best = (1, dimension)
    for d in divisors(dimension):
        if d > cap or d * d > dimension:
            break
        if d + dimension // d <= sum(best):
            best = (d, dimension // d)
    return best


def mode_split(n: int, k: int, *, exact: bool, factor: int = -1) -> tuple[int, ...]:
    """Split one mode of size n into k Kronecker factor sizes, first (coarse) factor smallest.

    Exact divisors closest to balanced are used when they are useful: every factor > 1 (or n is
    too small for that) and the largest factor at most twice the balanced side. Otherwise each
    factor is ``ceil(n ** (1/k))`` and the surplus is truncated by the caller. ``exact=True``
    always takes the exact divisors (PEFT/LyCORIS behaviour, factors of 1 allowed).
    """
    if k == 1:
        return (n,)
    if k == 2 and factor != -1:
        return peft_factorization(n, factor)
    split = balanced_factors(n, k)
    if exact:
        return split
    side = ceil_root(n, k)
    useful = (min(split) > 1 or n < 2**k) and max(split) <= 2 * side
    return split if useful else (side,) * k


def lycoris_factorization(dimension: int, factor: int = -1) -> tuple[int, int]:
    """LyCORIS 4.x ``lycoris.functional.factorization``: like PEFT's, but the pair is always sorted.

    A positive ``factor`` dividing ``dimension`` gives ``(factor, dimension // factor)`` sorted
    (smaller first); otherwise the most balanced divisor pair whose smaller factor is at most
    ``factor`` (``-1``: no cap), smaller first.

    >>> lycoris_factorization(320, 32), lycoris_factorization(768, -1), lycoris_factorization(127, 8)
    ((10, 32), (24, 32), (1, 127))
    """
    if factor > 0 and dimension % factor == 0:
        m, n = factor, dimension // factor
        return (m, n) if m <= n else (n, m)
    return peft_factorization(dimension, factor)


def lycoris_splits(shape: tuple[int, ...], fold: tuple[int, ...], convention: str, factor: int = -1) -> list[tuple[int, int]]:
    """Per fold mode, the (first, second) Kronecker factor sizes LyCORIS's (or PEFT's) LoKr uses for a weight.

    ``shape`` is the weight (out, in, *kernel), ``fold`` one of its folds: the natural
    (out, in * k), (out, in, k) with k = prod(kernel), or the weight shape itself. out and in
    are split by :func:`lycoris_factorization` (out reversed for ``"lycoris-unbalanced"``), or by
    :func:`peft_factorization` for ``"peft-conv"``; kernel sizes go whole to the second factor, as
    LyCORIS's and PEFT's w2 (or its Tucker core ``lokr_t2``) hold them.

    >>> lycoris_splits((320, 640, 3, 3), (320, 640 * 9), "lycoris")
    [(16, 20), (20, 288)]
    >>> lycoris_splits((320, 640, 3, 3), (320, 640, 3, 3), "lycoris-unbalanced")
    [(20, 16), (20, 32), (1, 3), (1, 3)]
    >>> lycoris_splits((320, 640, 3, 3), (320, 640, 3, 3), "peft-conv", 32)
    [(32, 10), (32, 20), (1, 3), (1, 3)]
    """
    if convention not in FACTORIZATIONS[1:]:
        raise SpecError("factorization", convention, f"one of {FACTORIZATIONS[1:]} for lycoris_splits")
    out, inp, kernel = shape[0], (shape[1] if len(shape) > 1 else 1), math.prod(shape[2:])
    split = peft_factorization if convention == "peft-conv" else lycoris_factorization
    a, b = split(out, factor)
    if convention == "lycoris-unbalanced":
        a, b = b, a
    c, d = split(inp, factor)
    if fold == (out, inp * kernel):
        return [(a, b), (c, d * kernel)]
    if fold == (out, inp, kernel):
        return [(a, b), (c, d), (1, kernel)]
    if fold == tuple(shape) and len(shape) >= 2:
        return [(a, b), (c, d), *((1, k) for k in shape[2:])]
    expected = f"(out, in*k) = {(out, inp * kernel)}, (out, in, k) = {(out, inp, kernel)} or the weight shape {tuple(shape)}"
    raise SpecError("fold", fold, f"a LyCORIS LoKr fold of a weight {tuple(shape)}: {expected}")
