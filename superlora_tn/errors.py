"""The one exception the library raises for bad input (docs/design.md §5)."""

from __future__ import annotations

from typing import Any

__all__ = ["SpecError"]


class SpecError(ValueError):
    """A spec, its parameters or a saved adapter does not fit.

    The message always names the offending field, the value given and what would be valid.

    >>> raise SpecError("rank", -1, "a positive integer")
    Traceback (most recent call last):
    ...
    superlora_tn.errors.SpecError: rank=-1 is invalid: expected a positive integer
    """

    def __init__(self, field: str, value: Any, expected: str) -> None:
        self.field = field
        self.value = value
        self.expected = expected
        super().__init__(f"{field}={value!r} is invalid: expected {expected}")
