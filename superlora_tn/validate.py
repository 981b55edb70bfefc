"""Small checks shared by the spec's constructors; each raises SpecError naming the field."""

from __future__ import annotations

import operator
from typing import Any

from .errors import SpecError

__all__ = ["as_positive_int", "is_positive_int"]


def is_positive_int(value: Any) -> bool:
    """True for ints (and numpy ints) > 0; False for bools, floats and everything else."""
    if isinstance(value, bool):
        return False
    try:
        return operator.index(value) > 0
    except TypeError:
        return False


def as_positive_int(field: str, value: Any) -> int:
    """``int(value)`` if it is a positive integer, else a SpecError naming ``field``."""
    if not is_positive_int(value):
        raise SpecError(field, value, "a positive integer")
    return operator.index(value)
