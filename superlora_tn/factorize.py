"""Integer factorisations used to fold groups and split modes into Kronecker factors.

Pure integer arithmetic: nothing here allocates an array.

>>> balanced_factors(768, 2)
(24, 32)
>>> peft_factorization(768)
(24, 32)
>>> mode_split(7, 2, exact=False)
(3, 3)
"""

from __future__ import annotations

import math
from functools import lru_cache

__all__ = [
    "balanced_factors",
    "ceil_root",
    "divisors",
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
    """The split PEFT and LyCORIS use for LoKr, ``factor`` semantics included.

    A positive ``factor`` that divides ``dimension`` is returned first, as is, even when it is the
    larger one (PEFT/LyCORIS: ``factorization(12, 4) == (4, 3)``); any other positive ``factor``
    caps the smaller factor, and the result is (smaller, larger).
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
