"""What a spec may ask for: limits checked at construction, before anything is folded or allocated.

- ``MAX_ENTRIES``: dW_all may hold at most 2**40 entries (about 1.1e12, fifteen times every
  weight of a 70B-parameter model). Beyond it integer factorisations take minutes and any
  contraction would not fit in memory anyway.
- ``MAX_INDICES``: a group's network may use at most 50 einsum indices. ``torch.einsum`` and
  ``numpy.einsum`` accept the 52 letters a-z, A-Z only; the planner keeps two back for the batch
  index of batched groups and the activation of the factored path.
- ``MAX_FOLD_SLACK``: a fold (with its Kronecker splits) may hold at most 16 times the entries
  it generates, plus 2**22 (small groups split in many factors legitimately overshoot a lot in
  relative terms, never in bytes); a larger one (``order=40`` on 16,384 entries makes 2**40) is
  a mistake, not a setting, and would allocate the surplus.

>>> check_indices(0, "ab,cb->ac", order=2, splits=1)
>>> check_fold_size(0, 64, (10**6, 10**6), "fold", (10**6, 10**6))
Traceback (most recent call last):
...
superlora_tn.errors.SpecError: fold=(1000000, 1000000) is invalid: expected a fold holding at most ... entries ...
"""

from __future__ import annotations

import math
from typing import Any

from .errors import SpecError

__all__ = ["MAX_ENTRIES", "MAX_FOLD_SLACK", "MAX_INDICES", "check_entries", "check_fold_size", "check_indices", "check_modes"]

MAX_ENTRIES = 2**40
MAX_INDICES = 50
MAX_FOLD_SLACK = (16, 2**22)  # (factor, extra entries)


def check_modes(order: int, splits: int) -> None:
    """order x splits output indices alone must fit the einsum alphabet (checked before folding)."""
    if order * splits > MAX_INDICES:
        raise SpecError("order x splits", f"{order} x {splits}",
                        f"at most {MAX_INDICES} output indices per group (einsum backends accept 52 letters)")


def check_indices(group: int, equation: str, *, order: int, splits: int) -> None:
    """A group's einsum must use at most ``MAX_INDICES`` distinct indices."""
    used = len(set(equation) - {",", "-", ">"})
    if used > MAX_INDICES:
        raise SpecError(
            "order x splits", f"{order} x {splits}",
            f"a network of at most {MAX_INDICES} einsum indices (group {group} needs {used}: torch and numpy "
            "einsum accept 52 letters, 2 are kept for batching); lower order, splits, or use dense/lora factors",
        )


def check_fold_size(group: int, generated: int, shape: tuple[int, ...], field: str, value: Any) -> None:
    """The fold (or its Kronecker product) must not be far larger than the entries generated."""
    factor, extra = MAX_FOLD_SLACK
    limit = factor * generated + extra
    held = math.prod(shape)
    if held > limit:
        raise SpecError(field, value, f"a fold holding at most {factor} x {generated} + {extra} = {limit} entries "
                                      f"(group {group} generates {generated}, this fold holds {held})")


def check_entries(total: int) -> None:
    """dW_all must hold at most ``MAX_ENTRIES`` entries."""
    if total > MAX_ENTRIES:
        raise SpecError("targets", f"{total} entries", f"at most 2**40 = {MAX_ENTRIES} adapted entries in all")
