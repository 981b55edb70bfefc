"""The contraction plan: groups of identical structure batched, one cached opt_einsum
expression per batch, and the fixed constants (projections, shuffle) per backend/dtype/device.

A plan is built once per spec (``spec.plan()``); expressions are shared across specs through a
cache keyed on (equation, shapes).

>>> import superlora_tn as slt
>>> spec = slt.SuperLoRA({f"l{i}": (32, 32) for i in range(4)}, rank=2)
>>> plan = spec.plan()
>>> [(len(b.groups), b.equation) for b in plan.batches]
[(4, 'zac,zbc->zab')]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import opt_einsum

from .network import GroupNetwork

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .backends import Backend
    from .spec import SpecValue
    from .targets import Target

__all__ = ["Batch", "BatchLayout", "Plan", "expression"]

BATCH_INDEX = "z"  # never produced by opt_einsum.get_symbol for the first 25 symbols


@lru_cache(maxsize=1024)
def expression(equation: str, shapes: tuple[tuple[int, ...], ...]) -> Any:
    """A cached opt_einsum ContractExpression (backend chosen at call time)."""
    return opt_einsum.contract_expression(equation, *shapes, optimize="auto-hq")


@dataclass(frozen=True)
class Batch:
    """Groups with identical networks, contracted together with a leading batch index."""

    groups: tuple[GroupNetwork, ...]

    @property
    def template(self) -> GroupNetwork:
        return self.groups[0]

    @property
    def batched(self) -> bool:
        return len(self.groups) > 1

    @property
    def equation(self) -> str:
        eq = self.template.equation
        if not self.batched:
            return eq
        lhs, rhs = eq.split("->")
        z = _free_symbol(eq)
        return ",".join(z + t for t in lhs.split(",")) + "->" + z + rhs

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        B = len(self.groups)
        return tuple(((B, *s) if self.batched else s) for s in self.template.shapes)

    @property
    def expression(self) -> Any:
        return expression(self.equation, self.shapes)

    @property
    def program(self) -> Any:
        """The lowered program (GEMMs and broadcast products, output in C order)."""
        from .lowering import program

        return program(self.equation, self.shapes)

    @property
    def needs_cut(self) -> bool:
        """True when the Kronecker product has surplus rows or the fold surplus entries."""
        t = self.template
        return t.kron_shape != t.fold or math.prod(t.fold) != t.generated


@dataclass(frozen=True)
class BatchLayout:
    """How one batch's result becomes dW, computed once per plan; every executor reads it.

    ``names[i]``: operand i's parameter name in each group; ``kron``: the result's shape as
    (groups, N_1..N_M); ``cut``: the slices keeping the fold's rows (None: no surplus Kronecker
    rows); ``trunc``: entries kept of a fold larger than the group (None: the fold is exact);
    ``plain``: each group is ONE target's whole output, with no Kronecker cut and no projection
    (a truncated fold is fine), so the target is a view of the group's row; ``targets`` and
    ``offsets``: for a plain batch, each group's target and its start in dW_all; ``consecutive``:
    a plain batch whose targets follow each other in dW_all (one batched write into a flat buffer).
    """

    batch: Batch
    names: tuple[tuple[str, ...], ...]
    kron: tuple[int, ...]
    cut: tuple[slice, ...] | None
    trunc: int | None
    indices: tuple[int, ...]
    plain: bool
    targets: tuple[str, ...]
    offsets: tuple[int, ...]
    consecutive: bool

    @classmethod
    def of(cls, batch: Batch, by_name: Mapping[str, Target]) -> BatchLayout:
        """The layout of ``batch``; ``by_name``: the spec's targets by name."""
        t = batch.template
        names = tuple(tuple(g.tensors[i].name for g in batch.groups) for i in range(len(t.tensors)))
        cut = tuple(slice(0, n) for n in t.fold) if t.kron_shape != t.fold else None
        trunc = t.generated if math.prod(t.fold) != t.generated else None
        whole = all(len(g.segments) == 1 and g.segments[0].size == g.size == by_name[g.segments[0].target].size
                    for g in batch.groups)
        plain = cut is None and t.projection is None and whole
        targets = tuple(g.segments[0].target for g in batch.groups) if plain else ()
        offsets = tuple(by_name[n].offset for n in targets)
        consecutive = plain and all(o == offsets[0] + b * t.size for b, o in enumerate(offsets))
        return cls(batch, names, (len(batch.groups), *t.kron_shape), cut, trunc, tuple(g.index for g in batch.groups),
                   plain, targets, offsets, consecutive)


def _free_symbol(equation: str) -> str:
    if BATCH_INDEX not in equation:
        return BATCH_INDEX
    used = set(equation)
    return next(opt_einsum.get_symbol(i) for i in range(1000) if opt_einsum.get_symbol(i) not in used)


class Plan:
    """Everything needed to contract a spec, built from shapes only."""

    def __init__(self, spec: SpecValue) -> None:
        self.spec = spec
        by_key: dict[tuple, list[GroupNetwork]] = {}
        for g in spec.groups:
            by_key.setdefault(g.structure_key, []).append(g)
        self.batches = tuple(Batch(tuple(gs)) for gs in by_key.values())
        #: per batch, how its result becomes dW (one computation, read by every executor)
        by_name = {t.name: t for t in spec.targets}
        self.layouts = tuple(BatchLayout.of(b, by_name) for b in self.batches)
        #: every target is one group's whole output and nothing is shuffled: the runner's case
        self.plain = spec.config.shuffle is None and all(lay.plain for lay in self.layouts)
        self.pieces = self._target_pieces()
        #: (source -> consecutive piece sizes covering it, target -> [(source, piece number)])
        self.piece_layout = self._piece_layout()
        #: parameter name -> shape (cached: checked on every contract call)
        self.param_shapes = spec.param_shapes
        self._constants: dict[tuple, Any] = {}

    def _target_pieces(self) -> dict[str, list[tuple[int, int, int]]]:
        """target -> [(source, start, stop)]: source is a group index, or -1 for the shuffled z.

        Unshuffled, a target's entries come from the groups holding its segments. Shuffled,
        dW_all (targets in spec order, row-major) = z[perm], so a target is one slice of z[perm].
        """
        if self.spec.config.shuffle is not None:
            return {t.name: [(-1, t.offset, t.offset + t.size)] for t in self.spec.targets}
        pieces: dict[str, list[tuple[int, int, int, int]]] = {t.name: [] for t in self.spec.targets}
        for g in self.spec.groups:
            local = 0
            for s in g.segments:
                pieces[s.target].append((s.start, g.index, local, local + s.size))
                local += s.size
        return {name: [p[1:] for p in sorted(ps)] for name, ps in pieces.items()}

    def _piece_layout(self) -> tuple[dict[int, list[int]], dict[str, list[tuple[int, int]]]]:
        """How the sources (group outputs, or -1: the shuffled z[perm]) split into target pieces.

        Splitting each source ONCE keeps the backward O(n): a slice per piece would give each
        piece its own zero-filled gradient the size of the whole source.
        """
        by_source: dict[int, list[tuple[int, int, str, int]]] = {}
        for name, pieces in self.pieces.items():
            for k, (src, a, b) in enumerate(pieces):
                by_source.setdefault(src, []).append((a, b, name, k))
        sizes: dict[int, list[int]] = {}
        where: dict[str, list[tuple[int, int]]] = {name: [(0, 0)] * len(p) for name, p in self.pieces.items()}
        for src, items in by_source.items():  # a source's pieces tile it from 0: its segments, or z[perm]
            items.sort()
            sizes[src] = [b - a for a, b, _, _ in items]
            for i, (_, _, name, k) in enumerate(items):
                where[name][k] = (src, i)
        return sizes, where

    def permutation(self) -> np.ndarray | None:
        """The shuffle: dW_all = z[perm] (z: the groups' outputs concatenated), drawn once from its seed."""
        seed = self.spec.config.shuffle
        if seed is None:
            return None
        return np.random.default_rng([seed, 0x5AF]).permutation(self.spec.num_entries)

    def constants(self, backend: Backend, like: Any) -> dict[str, Any]:
        """Projection constants per batch and the shuffle permutation, on like's backend/dtype/device."""
        dtype, device = backend.dtype_of(like), backend.device_of(like)
        key = (backend.name, str(dtype), str(device))
        if key not in self._constants:
            self._constants[key] = self._build_constants(backend, dtype, device)
        return self._constants[key]

    def _build_constants(self, backend: Backend, dtype: Any, device: Any) -> dict[str, Any]:
        def convert(value: Any) -> Any:
            if isinstance(value, np.ndarray):
                kind_float = value.dtype.kind == "f"
                return backend.asarray(value, dtype=dtype if kind_float else None, device=device)
            if isinstance(value, list):
                return [convert(v) for v in value]
            return value

        seed = self.spec.config.seed
        projections = []
        for batch in self.batches:
            proj = batch.template.projection
            if proj is None:
                projections.append(None)
                continue
            ids = [g.index for g in batch.groups]
            raw = proj.constants([g.size for g in batch.groups], [g.generated for g in batch.groups], seed, ids)
            projections.append({k: convert(v) for k, v in raw.items()})
        perm = self.permutation()
        return {"projections": projections, "perm": None if perm is None else convert(perm)}
