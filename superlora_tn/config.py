"""The spec's configuration as a frozen, typed value: ``SpecConfig``, and the canonical spellings.

A ``SuperLoRA`` keeps its arguments (everything but the targets) in one ``SpecConfig``: a frozen
dataclass that is also a read-only mapping, so ``spec.config.rank`` and ``spec.config["rank"]``
read the same value and neither can be assigned. The spec stores the *canonical* configuration:
of the spellings that build the same adapter, one (docs/design.md §2, "One value, one spelling").

- ``PerFactor``: a value given once per Kronecker factor (the list form of ``rank`` and
  ``structure``), immutable and hashable, distinct from a per-mode tuple.
- ``FrozenMap``: an immutable, hashable mapping (``scale``).
- ``canonical_groups``, ``guess_rank``, ``guess_structure``: the simplest spelling of a field,
  read off the built networks. The spec adopts a guess only after rebuilding with it and finding
  the same networks, so a guess never changes what a spec builds.

>>> c = SpecConfig(rank=PerFactor([4, (2, 2)]), scale=FrozenMap({"q": 2.0}))
>>> c.rank, c["rank"] == [4, (2, 2)], dict(c)["scale"]
([4, (2, 2)], True, {'q': 2.0})
>>> c.rank = 8
Traceback (most recent call last):
...
dataclasses.FrozenInstanceError: cannot assign to field 'rank'
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from .layout import Segment, group_segments
from .targets import Target

if TYPE_CHECKING:
    from .network import GroupNetwork
    from .projection import Projection

__all__ = ["DEFAULT_RANK", "FrozenMap", "PerFactor", "SpecConfig", "canonical_groups", "guess_rank", "guess_structure"]

DEFAULT_RANK = 8  # SuperLoRA's rank when none is given; also the canonical rank of a spec whose ranks do nothing


class PerFactor(Sequence[Any]):
    """One value per Kronecker factor (``rank=[4, 8]``): a frozen sequence that prints like the list.

    Unlike a tuple it is never read as a per-mode value: ``rank=(4, 8)`` gives each mode its rank,
    ``rank=[4, 8]`` each factor.

    >>> PerFactor([4, 8]) == [4, 8], PerFactor([4, 8]) == (4, 8), hash(PerFactor([4, 8])) == hash(PerFactor([4, 8]))
    (True, False, True)
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[Any]) -> None:
        object.__setattr__(self, "_items", tuple(items))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"PerFactor is immutable (cannot set {name!r})")

    def __getitem__(self, index: Any) -> Any:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PerFactor):
            return self._items == other._items
        if isinstance(other, list):
            return list(self._items) == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash((PerFactor, self._items))

    def __repr__(self) -> str:
        return repr(list(self._items))

    def __reduce__(self) -> tuple[Any, ...]:
        return (PerFactor, (self._items,))


class FrozenMap(Mapping[str, Any]):
    """An immutable, hashable mapping that keeps its insertion order and prints like a dict.

    >>> m = FrozenMap({"q": 2.0}); m == {"q": 2.0}, m.get("v", 1.0), hash(m) == hash(FrozenMap({"q": 2.0}))
    (True, 1.0, True)
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> None:
        object.__setattr__(self, "_items", dict(items))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"FrozenMap is immutable (cannot set {name!r})")

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        return repr(self._items)

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenMap, (tuple(self._items.items()),))


@dataclass(frozen=True)
class SpecConfig(Mapping[str, Any]):
    """Every argument of a ``SuperLoRA`` but the targets, canonical, frozen (see ``SuperLoRA``).

    Read a field as an attribute (``config.rank``) or by key (``config["rank"]``); ``dict(config)``
    gives the keyword arguments that rebuild the spec. Equality and hash cover every field.
    """

    groups: str | int | tuple[tuple[str, ...], ...] = "weight"
    fold: str | tuple[int, ...] = "natural"
    order: int | None = None
    splits: int = 1
    rank: int | tuple[int, ...] | PerFactor = DEFAULT_RANK
    structure: str | PerFactor | None = None
    projection: Projection | None = None
    shuffle: int | None = None
    alpha: float | None = None
    seed: int = 0
    identity_modes: tuple[int, ...] = ()
    exact_splits: bool = False
    split_factor: int = -1
    scale: FrozenMap | None = None
    factorization: str = "peft"
    compose: str = "kron"

    def __getitem__(self, key: str) -> Any:
        try:
            return self.__dict__[key]  # the fields, and nothing else, live in the instance dict
        except KeyError:
            raise KeyError(key) from None

    def __iter__(self) -> Iterator[str]:
        return iter(_FIELDS)

    def __len__(self) -> int:
        return len(_FIELDS)

    def __contains__(self, key: object) -> bool:
        return key in _FIELDS

    def __setitem__(self, key: str, value: Any) -> None:
        raise TypeError(f"a spec's configuration is immutable (cannot set {key!r}); spec.replace({key}=...) returns a changed spec")

    def __delitem__(self, key: str) -> None:
        raise TypeError(f"a spec's configuration is immutable (cannot delete {key!r})")


_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(SpecConfig))


def canonical_groups(targets: tuple[Target, ...], segments: tuple[tuple[Segment, ...], ...],
                     given: str | int | tuple[tuple[str, ...], ...]) -> str | int | tuple[tuple[str, ...], ...]:
    """The simplest ``groups`` that cuts ``targets`` into ``segments``.

    ``"weight"`` when each group is one whole target in target order; else the number of groups
    when that many balanced chunks are these segments; else the groups as tuples of target names.

    >>> from superlora_tn.targets import normalize_targets
    >>> t = normalize_targets({"a": (4, 4), "b": (4, 4), "c": (4, 4)})
    >>> spellings = ((("a",), ("b",), ("c",)), 3, (("a", "b", "c"),), (("a", "c"), ("b",)))
    >>> tuple(canonical_groups(t, group_segments(t, g), g) for g in spellings)
    ('weight', 'weight', 1, (('a', 'c'), ('b',)))
    """
    if len(segments) == len(targets) and segments == group_segments(targets, "weight"):
        return "weight"
    if isinstance(given, int) or segments == group_segments(targets, len(segments)):
        return len(segments)  # a count G cuts G balanced chunks
    by_name = {t.name: t for t in targets}
    if all(s.start == 0 and s.stop == by_name[s.target].size for g in segments for s in g):
        return tuple(tuple(s.target for s in g) for g in segments)
    return given


def _per_factor_value(value: Any, k: int) -> Any:
    return value[k] if isinstance(value, PerFactor) else value


def guess_rank(config: SpecConfig, groups: tuple[GroupNetwork, ...]) -> int | tuple[int, ...] | PerFactor:
    """The simplest ``rank`` that may build ``groups`` (the spec checks it by rebuilding).

    Per factor: nothing when no rank of that factor is used (dense, or every mode an identity mode);
    an int when every used mode has the same rank. Then one value when every used factor agrees
    (``DEFAULT_RANK`` when none is used), else one per factor, an unused factor taking the first
    used factor's value.
    """
    values: list[Any] = []
    for k in range(config.splits):
        used = [f for f in (g.factors[k] for g in groups)
                if f.structure != "dense" and len(set(f.identity_modes)) < len(f.shape)]
        if not used:
            values.append(None)
            continue
        value = _per_factor_value(config.rank, k)
        if isinstance(value, tuple):
            identity = set().union(*(f.identity_modes for f in used))
            free = {r for m, r in enumerate(value) if m not in identity}
            if len(free) == 1:
                value = free.pop()
        values.append(value)
    chosen = [v for v in values if v is not None]
    if not chosen:
        return DEFAULT_RANK
    if all(v == chosen[0] for v in chosen):
        return chosen[0]
    return PerFactor(chosen[0] if v is None else v for v in values)


def guess_structure(config: SpecConfig, groups: tuple[GroupNetwork, ...]) -> str | PerFactor | None:
    """The structure each factor was built with: one name, or one per factor. Unchanged when a factor's
    default resolves differently per group (``fold="shape"`` over weights of different orders)."""
    names = []
    for k in range(config.splits):
        built = {g.factors[k].structure for g in groups}
        if len(built) != 1:
            return config.structure
        names.append(built.pop())
    return names[0] if len(set(names)) == 1 else PerFactor(names)
