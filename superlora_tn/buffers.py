"""Caller buffers for ``contract(out=...)`` must not overlap: two targets writing into one buffer
would leave one target's dW in both (a silently wrong result for the other).

Overlap is judged on the memory each buffer spans (pointer, strides, itemsize), so two views
of one tensor that do not touch (``buf[:4]`` and ``buf[4:]``) are fine and two interleaved ones
(``buf[::2]`` and ``buf[1::2]``) are refused too (conservative: the span is what is checked).

>>> import numpy as np
>>> a = np.zeros((4, 4))
>>> check_disjoint({"x": a[:2], "y": a[2:]})
>>> check_disjoint({"x": a, "y": a})
Traceback (most recent call last):
...
superlora_tn.errors.SpecError: out=['x', 'y'] is invalid: expected one buffer per target, none sharing memory with another
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import SpecError

__all__ = ["check_disjoint", "memory_span"]


def memory_span(buf: Any) -> tuple[Any, int, int] | None:
    """(device, first byte, one past the last byte) a buffer can touch; None if unknown."""
    if isinstance(buf, np.ndarray):
        lo, hi = np.lib.array_utils.byte_bounds(buf) if hasattr(np.lib, "array_utils") else np.byte_bounds(buf)
        return ("cpu", int(lo), int(hi))
    data_ptr = getattr(buf, "data_ptr", None)
    if callable(data_ptr) and hasattr(buf, "stride") and hasattr(buf, "element_size"):  # torch
        if buf.numel() == 0:
            return None
        start = int(data_ptr())
        low = sum((n - 1) * s for n, s in zip(buf.shape, buf.stride()) if s < 0)
        high = sum((n - 1) * s for n, s in zip(buf.shape, buf.stride()) if s > 0)
        size = int(buf.element_size())
        return (str(buf.device), start + low * size, start + (high + 1) * size)
    return None


def check_disjoint(views: Mapping[str, Any]) -> None:
    """SpecError naming the targets whose ``out`` buffers share memory."""
    spans = sorted((span, name) for name, buf in views.items() if (span := memory_span(buf)) is not None)
    for (a, name_a), (b, name_b) in itertools.pairwise(spans):
        if a[0] == b[0] and b[1] < a[2]:
            raise SpecError("out", [name_a, name_b], "one buffer per target, none sharing memory with another")
