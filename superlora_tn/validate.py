"""Small checks shared by the spec's constructors; each raises SpecError naming the field."""

from __future__ import annotations

import operator
from typing import Any

from .errors import SpecError

__all__ = ["as_nonnegative_int", "as_positive_int", "is_integer", "is_positive_int"]


def is_integer(value: Any) -> bool:
    """True for ints and numpy ints (not bools)."""
    if isinstance(value, bool):
        return False
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


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


def as_nonnegative_int(field: str, value: Any, expected: str = "a non-negative integer") -> int:
    """``int(value)`` for ints (and numpy ints) >= 0, else a SpecError naming ``field``."""
    if not isinstance(value, bool):
        try:
            number = operator.index(value)
        except TypeError:
            pass
        else:
            if number >= 0:
                return number
    raise SpecError(field, value, expected)
