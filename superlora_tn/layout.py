"""Grouping: which entries of dW_all each group generates.

A group is a list of segments (target, start, stop) over the row-major flattened targets. z is
the groups' outputs concatenated in group order. Without shuffling each group's entries go to its
own segments; with shuffling dW_all (targets in spec order) = z[perm] (docs/design.md §2).

>>> from superlora_tn.targets import normalize_targets
>>> t = normalize_targets({"a": (2, 3), "b": (2, 2)})
>>> [[(s.target, s.start, s.stop) for s in g] for g in group_segments(t, 3)]
[[('a', 0, 4)], [('a', 4, 6), ('b', 0, 1)], [('b', 1, 4)]]
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import SpecError
from .targets import Target
from .validate import is_integer

__all__ = ["GroupingArg", "Segment", "group_segments"]

GroupingArg = str | int | Sequence[Sequence[str]]


@dataclass(frozen=True)
class Segment:
    """Entries [start, stop) of the row-major flattened target ``target``."""

    target: str
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start


def group_segments(targets: tuple[Target, ...], groups: GroupingArg) -> tuple[tuple[Segment, ...], ...]:
    """Cut the targets into groups: "weight", an integer G, or explicit lists of target names."""
    if isinstance(groups, str):
        if groups != "weight":
            raise SpecError("groups", groups, '"weight", a positive integer, or a list of lists of target names')
        return tuple((Segment(t.name, 0, t.size),) for t in targets)
    if is_integer(groups):
        return _balanced_chunks(targets, operator.index(groups))
    return _explicit(targets, groups)


def _balanced_chunks(targets: tuple[Target, ...], count: int) -> tuple[tuple[Segment, ...], ...]:
    total = sum(t.size for t in targets)
    if count < 1 or count > total:
        raise SpecError("groups", count, f"an integer between 1 and the number of adapted entries ({total})")
    base, extra = divmod(total, count)
    bounds = [0]
    for g in range(count):
        bounds.append(bounds[-1] + base + (1 if g < extra else 0))
    result: list[tuple[Segment, ...]] = []
    t = 0  # first target that can overlap the current chunk: one pass over chunks and targets
    for lo, hi in itertools.pairwise(bounds):
        while targets[t].offset + targets[t].size <= lo:
            t += 1
        segs, j = [], t
        while j < len(targets) and targets[j].offset < hi:
            a, b = max(lo, targets[j].offset), min(hi, targets[j].offset + targets[j].size)
            segs.append(Segment(targets[j].name, a - targets[j].offset, b - targets[j].offset))
            j += 1
        result.append(tuple(segs))
    return tuple(result)


def _explicit(targets: tuple[Target, ...], groups: Sequence[Sequence[str]]) -> tuple[tuple[Segment, ...], ...]:
    by_name = {t.name: t for t in targets}
    if isinstance(groups, str | bytes) or not isinstance(groups, Sequence) or not groups:
        raise SpecError("groups", groups, '"weight", a positive integer, or a non-empty list of lists of target names')
    seen: set[str] = set()
    result = []
    for members in groups:
        if isinstance(members, str) or not isinstance(members, Sequence) or not members:
            raise SpecError("groups", members, "each group a non-empty list of target names")
        segs = []
        for name in members:
            if not isinstance(name, str) or name not in by_name:
                raise SpecError("groups", name, f"names of targets ({', '.join(list(by_name)[:6])}{', ...' if len(by_name) > 6 else ''})")
            if name in seen:
                raise SpecError("groups", name, "each target in exactly one group (this one is in two)")
            seen.add(name)
            segs.append(Segment(name, 0, by_name[name].size))
        result.append(tuple(segs))
    missing = [name for name in by_name if name not in seen]
    if missing:
        raise SpecError("groups", groups, f"every target in a group; missing: {missing[:6]}")
    return tuple(result)
