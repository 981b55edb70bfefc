"""Folding a group's generated entries into an M-mode tensor (docs/semantics.md, "Folds").

>>> natural_fold((768, 3072), 4)
(24, 32, 48, 64)
>>> balanced_fold(1000, 3)
(10, 10, 10)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .errors import SpecError
from .factorize import balanced_factors, ceil_root
from .layout import Segment
from .targets import Target
from .validate import is_positive_int

__all__ = ["FOLDS", "balanced_fold", "fold_shape", "natural_fold"]

FOLDS = ("natural", "balanced", "stack", "shape")


def natural_fold(matrix_shape: tuple[int, int], order: int) -> tuple[int, ...]:
    """Rows and columns factored separately: ceil(M/2) row modes, then floor(M/2) column modes.

    M = 1 is the flat vector, M = 2 is (out, in): the exact LoRA fold.
    """
    out, inp = matrix_shape
    if order == 1:
        return (out * inp,)
    rows = (order + 1) // 2
    return balanced_factors(out, rows) + balanced_factors(inp, order - rows)


def balanced_fold(generated: int, order: int) -> tuple[int, ...]:
    """Equal sides ceil(n'^(1/M)); the first n' of the prod >= n' entries are kept."""
    return (ceil_root(generated, order),) * order


def fold_shape(
    fold: str | Sequence[int],
    order: int,
    segments: tuple[Segment, ...],
    targets: dict[str, Target],
    generated: int,
    projected: bool,
    group: int,
) -> tuple[int, ...]:
    """The fold shape of one group, or a SpecError saying why this fold cannot hold it."""
    whole = all(s.start == 0 and s.stop == targets[s.target].size for s in segments)
    if fold == "natural":
        if len(segments) != 1 or not whole or projected:
            raise SpecError(
                "fold", fold,
                f'"balanced", "stack" or a shape: group {group} is not one whole target without projection '
                '(the natural fold needs groups="weight" and projection=None)',
            )
        return natural_fold(targets[segments[0].target].matrix_shape, order)
    if fold == "shape":  # the weight's own shape, e.g. a conv kernel (out, in, kh, kw)
        if len(segments) != 1 or not whole or projected:
            raise SpecError("fold", fold, f'"balanced", "stack" or a tuple: group {group} is not one whole target without '
                            'projection (the shape fold needs groups="weight" and projection=None)')
        return targets[segments[0].target].shape
    if fold == "balanced":
        return balanced_fold(generated, order)
    if fold == "stack":
        shapes = {targets[s.target].matrix_shape for s in segments}
        if not whole or len(shapes) != 1 or projected:
            raise SpecError(
                "fold", fold,
                f"groups of whole targets of one shape without projection (group {group} has "
                f"shapes {sorted(shapes)}{'' if whole else ' and partial targets'})",
            )
        if order != 3:
            raise SpecError("order", order, "3 (or None) with the stack fold (layers, out, in)")
        return (len(segments), *shapes.pop())
    if isinstance(fold, str) or not isinstance(fold, Sequence) or not all(is_positive_int(n) for n in fold) or not fold:
        raise SpecError("fold", fold, f'one of {FOLDS} or a tuple of positive mode sizes')
    shape = tuple(int(n) for n in fold)
    if math.prod(shape) < generated:
        raise SpecError("fold", fold, f"a shape holding at least {generated} entries (group {group})")
    return shape
