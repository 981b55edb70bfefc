"""Small checks shared by the spec's constructors; each raises SpecError naming the field."""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from .errors import SpecError

__all__ = [
    "as_finite_float",
    "as_nonnegative_int",
    "as_positive_int",
    "check_projection_args",
    "is_integer",
    "is_positive_int",
    "plain",
]


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


def plain(value: Any) -> Any:
    """NumPy scalars become Python scalars and NumPy arrays tuples, recursively through lists,
    tuples and dicts, so a spec built from NumPy values is JSON-ready and compares equal to one
    built from Python values. Anything else is returned as it is."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return plain(value.tolist()) if value.ndim == 0 else tuple(plain(v) for v in value.tolist())
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    return value


def as_finite_float(field: str, value: Any, expected: str = "a finite number") -> float:
    """``float(value)`` for ints and floats (NumPy's too, not bools) that are finite as floats."""
    value = plain(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(field, value, expected)
    try:
        number = float(value)
    except OverflowError:  # an int beyond float range (10**400)
        raise SpecError(field, value, expected) from None
    if not math.isfinite(number):
        raise SpecError(field, value, expected)
    return number


def check_projection_args(ratio: Any, seed: Any) -> tuple[float, int | None]:
    """A projection's (ratio, seed) as Python numbers: ratio in (0, 1], seed None or >= 0."""
    expected = "a number in (0, 1]"
    rho = as_finite_float("projection.ratio", ratio, expected)
    if not 0 < rho <= 1:
        raise SpecError("projection.ratio", plain(ratio), expected)
    if seed is not None:
        seed = as_nonnegative_int("projection.seed", seed, "None or a non-negative integer")
    return (plain(ratio) if isinstance(plain(ratio), int) else rho), seed
