"""Targets: the ordered weights a spec adapts, each seen as an (out, in) matrix.

>>> t = normalize_targets({"conv": (8, 3, 3, 3), "bias": (8,)})
>>> [(x.name, x.shape, x.matrix_shape, x.size) for x in t]
[('conv', (8, 3, 3, 3), (8, 27), 216), ('bias', (8,), (8, 1), 8)]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .errors import SpecError
from .validate import is_positive_int

__all__ = ["Target", "normalize_targets"]


@dataclass(frozen=True)
class Target:
    """One adapted weight: its name, its own shape and its (out, in) matrix view.

    A higher-order weight (out, in, kh, kw) is the matrix (out, in*kh*kw); a vector (n,) is (n, 1).
    Row-major flattening of the matrix equals row-major flattening of the weight itself.
    """

    name: str
    shape: tuple[int, ...]
    offset: int  # start of this target in dW_all (target order)

    @property
    def matrix_shape(self) -> tuple[int, int]:
        if len(self.shape) == 1:
            return (self.shape[0], 1)
        return (self.shape[0], math.prod(self.shape[1:]))

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def normalize_targets(
    targets: Mapping[str, Sequence[int]] | Sequence[tuple[str, Sequence[int]]],
) -> tuple[Target, ...]:
    """Check a name -> shape mapping (or a list of pairs) and lay the targets out in order."""
    if isinstance(targets, Mapping):
        items = list(targets.items())
    elif isinstance(targets, Sequence) and not isinstance(targets, str | bytes):
        items = list(targets)
    else:
        raise SpecError("targets", targets, "a non-empty mapping of name -> weight shape (or a list of (name, shape) pairs)")
    if not items:
        raise SpecError("targets", targets, "a non-empty mapping of name -> weight shape")
    seen: set[str] = set()
    out: list[Target] = []
    offset = 0
    for item in items:
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise SpecError("targets", item, "(name, shape) pairs")
        name, shape = item
        if not isinstance(name, str) or not name:
            raise SpecError("targets", name, "non-empty string names")
        if name in seen:
            raise SpecError("targets", name, "unique target names (this one appears twice)")
        seen.add(name)
        try:
            dims = tuple(shape)
        except TypeError:
            raise SpecError(f"targets[{name!r}]", shape, "a shape tuple such as (768, 768)") from None
        if not dims or not all(is_positive_int(d) for d in dims):
            raise SpecError(f"targets[{name!r}]", shape, "a non-empty tuple of positive integers")
        target = Target(name, tuple(int(d) for d in dims), offset)
        out.append(target)
        offset += target.size
    return tuple(out)

