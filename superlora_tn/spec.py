"""``SuperLoRA``: the symbolic, immutable description of an adapter (no arrays, shapes only).

What a spec means is the contract in docs/design.md §2; its place in the layers is §4. A spec
is a value: its configuration is normalised once, at construction, to one canonical spelling
(``spec.config``, a frozen :class:`~superlora_tn.config.SpecConfig`); equality and hash cover
the targets and that configuration; nothing can be assigned afterwards, and ``spec.replace``
returns a changed copy.

>>> import superlora_tn as slt
>>> spec = slt.SuperLoRA({"q": (64, 64), "v": (64, 64)}, rank=4)     # LoRA r=4 on q and v
>>> spec.num_params
1024
>>> spec.groups[0].equation
'ac,bc->ab'
>>> spec == slt.SuperLoRA({"q": (64, 64), "v": (64, 64)}, rank=(4, 4), groups=[["q"], ["v"]], structure="lora")
True
>>> spec.replace(rank=8).num_params
2048

This module is the value layer: ``SpecValue`` is the whole description and its plan, and it imports
nothing above it. The class users construct, ``superlora_tn.SuperLoRA``, is the facade's subclass
(:mod:`superlora_tn.facade`) that adds the operations (``init``, ``contract``, ``summary``,
``draw``, ``identify``).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Mapping, Sequence
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .arguments import checked_config, implied_order
from .config import DEFAULT_RANK, PerFactor, SpecConfig, canonical_groups, guess_rank, guess_structure
from .errors import SpecError
from .factorize import lycoris_splits, mode_split
from .folds import fold_shape
from .layout import GroupingArg, Segment, group_segments
from .limits import check_entries, check_fold_size, check_indices, check_modes
from .network import GroupNetwork
from .plan import Plan
from .projection import Projection
from .serialize import read_spec_dict, spec_to_dict
from .structures import FactorSpec, default_structure, structure_named
from .targets import Target, normalize_targets

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["SPEC_ARGUMENTS", "SpecValue"]

RankArg = int | tuple[int, ...] | list[int | tuple[int, ...]]


class SpecValue:
    """dW_group_g = F( T_g1 (x) ... (x) T_gK ), T_gk = C_gk x_1 A_gk1 ... x_M A_gkM.

    Args:
        targets: ordered mapping name -> weight shape ((out, in), conv kernels (out, in, kh, kw)).
        groups: ``"weight"`` (one group per target), an int G (balanced contiguous chunks of
            dW_all), or a list of lists of target names.
        fold: ``"natural"`` (rows/columns factored separately; weight-wise groups only), ``"shape"``
            (each weight's own shape, e.g. a conv kernel (out, in, kh, kw); weight-wise groups only),
            ``"balanced"`` (equal sides), ``"stack"`` ((layers, out, in)) or an explicit shape.
        order: M, the number of modes of the fold (default 2; 3 for stack; len(shape) for a shape).
        splits: K, the number of Kronecker factors per group.
        rank: an int, a per-mode tuple, or a list with one of those per Kronecker factor.
        structure: ``"tucker"``, ``"cp"``, ``"lora"``, ``"tt"`` (a tensor train; ``rank`` gives
            its M - 1 bond ranks), ``"dense"`` or a list per factor
            (default ``"lora"`` when M = 2, else ``"tucker"``).
        projection: None (F = I), ``Fastfood(ratio)`` or ``Gaussian(ratio)``.
        shuffle: None, or the seed of a fixed permutation of dW_all.
        alpha: dW = (alpha / r) * generated, r the largest rank; None means scale 1.
        seed: seeds the init and the projections.
        identity_modes: tucker modes that use the identity as factor (rank = size; LoTR's layers).
        exact_splits: always split modes by exact divisors (PEFT/LyCORIS LoKr), never truncate.
        split_factor: PEFT/LyCORIS ``decompose_factor`` for K = 2 (-1: most balanced).
        scale: optional per-target extra multiplier, name -> float.
        factorization: how K = 2 splits a weight's modes: ``"peft"`` (default, ``split_factor``
            as PEFT's ``decompose_factor``), ``"lycoris"`` or ``"lycoris-unbalanced"`` (LyCORIS
            4.x's ``factorization`` and ``unbalanced_factorization``; weight-wise groups only), or
            ``"peft-conv"`` (PEFT's LoKr on convolutions: out and in split as PEFT does, the kernel
            modes whole in the second factor; weight-wise groups only).
        compose: ``"kron"`` (the factors' Kronecker product) or ``"hadamard"`` (their entry-wise
            product: every factor has the fold's shape and they share its indices; LoHa).

    The spec is immutable. ``spec.config`` holds the arguments in their canonical spelling (NumPy
    numbers as Python ones; ``groups`` as ``"weight"``, a count, or tuples of names; ``rank`` and
    ``structure`` as one value when every factor agrees; ``order`` None when the fold implies it;
    ``identity_modes`` sorted), the one spelling of every argument list that builds the same
    networks. Two specs are equal, and hash equal, when their targets and canonical
    configurations are.
    """

    targets: tuple[Target, ...]
    config: SpecConfig
    groups: tuple[GroupNetwork, ...]
    rank_ref: int
    scale_factor: float

    def __init__(
        self,
        targets: Mapping[str, Sequence[int]] | Sequence[tuple[str, Sequence[int]]],
        *,
        groups: GroupingArg = "weight",
        fold: str | Sequence[int] = "natural",
        order: int | None = None,
        splits: int = 1,
        rank: RankArg = DEFAULT_RANK,
        structure: str | Sequence[str] | None = None,
        projection: Projection | None = None,
        shuffle: int | None = None,
        alpha: float | None = None,
        seed: int = 0,
        identity_modes: Sequence[int] = (),
        exact_splits: bool = False,
        split_factor: int = -1,
        scale: Mapping[str, float] | None = None,
        factorization: str = "peft",
        compose: str = "kron",
        **unknown: Any,
    ) -> None:
        if unknown:
            raise SpecError("SuperLoRA", sorted(unknown), f"SuperLoRA arguments only: {', '.join(SPEC_ARGUMENTS)}")
        spec_targets = normalize_targets(targets)
        check_entries(sum(t.size for t in spec_targets))
        by_name = MappingProxyType({t.name: t for t in spec_targets})
        given = checked_config(by_name, dict(
            groups=groups, fold=fold, order=order, splits=splits, rank=rank, structure=structure,
            projection=projection, shuffle=shuffle, alpha=alpha, seed=seed, identity_modes=identity_modes,
            exact_splits=exact_splits, split_factor=split_factor, scale=scale, factorization=factorization,
            compose=compose))
        _set(self, targets=spec_targets, _by_name=by_name, config=given)
        built = self._build_groups()
        ranks = [r for g in built for f in g.factors if f.structure != "dense"
                 for m, r in enumerate(f.ranks) if m not in f.identity_modes]
        rank_ref = max(ranks, default=1)
        canonical = self._canonical(given, built)
        _set(self, config=canonical, groups=built, rank_ref=rank_ref,
             scale_factor=1.0 if canonical.alpha is None else float(canonical.alpha) / rank_ref,
             _hash=hash((spec_targets, canonical)))

    # ----------------------------------------------------------------- a value
    def __setattr__(self, name: str, value: Any) -> None:
        hint = f"; spec.replace({name}=...) returns a changed copy" if name in (*SPEC_ARGUMENTS, "targets") else ""
        raise AttributeError(f"a SuperLoRA spec is immutable (cannot set {name!r}){hint}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"a SuperLoRA spec is immutable (cannot delete {name!r})")

    def replace(self, **changes: Any) -> Self:
        """A new spec with ``changes`` applied to this one's (canonical) arguments, checked like any other.

        ``targets=`` replaces the targets. Arguments not named keep their canonical value, so
        a default this spec resolved stays resolved (``structure="lora"``; pass
        ``structure=None`` to choose again), and a spelling that was merged with an equivalent
        one stays merged: explicit groups equal to G balanced chunks are kept as the count G
        (on new targets: G chunks of those), and the unused rank of a dense factor is dropped
        (``rank=[3, 8]`` with a dense first factor is ``8``). Name such arguments again when
        changing targets or structures.

        >>> import superlora_tn as slt
        >>> slt.SuperLoRA({"w": (8, 8)}, rank=2).replace(rank=4, alpha=8.0).config.rank
        4
        """
        targets = changes.pop("targets", [(t.name, t.shape) for t in self.targets])
        return type(self)(targets, **{**self.config, **changes})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SpecValue):
            return NotImplemented
        return self is other or (self._hash == other._hash and self.targets == other.targets and self.config == other.config)

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), tuple((t.name, t.shape) for t in self.targets), tuple(self.config.items())))

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        return self

    # ----------------------------------------------------------------- construction
    def _canonical(self, given: SpecConfig, built: tuple[GroupNetwork, ...]) -> SpecConfig:
        """The simplest spelling of ``given`` that builds exactly ``built``.

        ``groups``: the segments decide (``canonical_groups`` compares them). ``order``: None when
        the fold implies the same order. ``rank`` and ``structure``: read off the built factors,
        adopted only if rebuilding with them gives the same networks.
        """
        segments = tuple(g.segments for g in built)
        current = dataclasses.replace(given, groups=canonical_groups(self.targets, segments, given.groups))
        if given.order is not None:
            implied = dataclasses.replace(current, order=None)
            if implied_order(given.fold) == given.order or (given.fold == "shape" and self._builds(implied, built)):
                current = implied
        guess = dataclasses.replace(current, rank=guess_rank(given, built), structure=guess_structure(given, built))
        if guess == current or _default_resolved(current, guess, built) or self._builds(guess, built):
            return guess
        for name in ("rank", "structure"):
            trial = dataclasses.replace(current, **{name: getattr(guess, name)})
            if trial != current and self._builds(trial, built):
                current = trial
        return current

    def _builds(self, config: SpecConfig, built: tuple[GroupNetwork, ...]) -> bool:
        """True when ``config`` builds exactly the networks ``built`` (over the same segments: a probe
        changes no ``groups`` whose segments differ; ``canonical_groups`` compared them)."""
        probe = object.__new__(type(self))
        _set(probe, targets=self.targets, _by_name=self._by_name, config=config)
        try:
            return probe._build_groups(tuple(g.segments for g in built), checked=False) == built
        except SpecError:
            return False

    def _splits(self, fold: tuple[int, ...], segments: Any) -> list[tuple[int, ...]]:
        """Per fold mode, the K factor sizes (for ``compose="hadamard"`` each factor takes the whole mode)."""
        c, K = self.config, self.config.splits
        if c.compose == "hadamard":
            return [(n,) * K for n in fold]
        if c.factorization != "peft":
            target = self._by_name[segments[0].target]
            if len(segments) != 1 or segments[0].size != target.size:
                raise SpecError("factorization", c.factorization, '"peft" unless groups="weight" (LyCORIS splits whole weights)')
            return lycoris_splits(target.shape, fold, c.factorization, c.split_factor)
        return [mode_split(n, K, exact=c.exact_splits, factor=c.split_factor) for n in fold]

    def _order(self) -> int:
        fold, order = self.config.fold, self.config.order
        if isinstance(fold, tuple) and order is not None and order != len(fold):
            raise SpecError("order", order, f"None or {len(fold)} (the length of fold={fold})")
        return implied_order(fold) if order is None or isinstance(fold, tuple) else order

    def _build_groups(self, cuts: tuple[tuple[Segment, ...], ...] | None = None,
                      checked: bool = True) -> tuple[GroupNetwork, ...]:
        """The groups' networks (``cuts``: the segments when already known; ``checked=False`` skips
        the einsum-index limit, for a probe whose networks are compared with checked ones)."""
        c = self.config
        order, K, projection = self._order(), c.splits, c.projection
        check_modes(order, K)
        result = []
        for g, segments in enumerate(group_segments(self.targets, c.groups) if cuts is None else cuts):
            size = sum(s.size for s in segments)
            generated = projection.generated_size(size) if projection is not None else size
            fold = fold_shape(c.fold, order, segments, self._by_name, generated, projection is not None, g)
            field, value = ("fold", c.fold) if isinstance(c.fold, tuple) else ("order", order)
            check_fold_size(g, generated, fold, field, value)
            per_mode = self._splits(fold, segments)
            kron = fold if c.compose == "hadamard" else tuple(math.prod(split) for split in per_mode)
            check_fold_size(g, generated, kron, "splits", K)
            factors = tuple(
                self._factor(k, tuple(split[k] for split in per_mode)) for k in range(K)
            )
            if c.identity_modes and not any(f.structure == "tucker" for f in factors):
                raise SpecError("identity_modes", c.identity_modes, "() unless a factor is 'tucker' (only Tucker modes can be)")
            network = GroupNetwork(g, segments, size, generated, fold, factors, projection, compose=c.compose)
            if checked:
                check_indices(g, network.equation, order=order, splits=K)
            result.append(network)
        return tuple(result)

    def _factor(self, k: int, shape: tuple[int, ...]) -> FactorSpec:
        c, M, K = self.config, len(shape), self.config.splits
        structure = _per_factor("structure", c.structure, K, k)
        if structure is None:
            structure = default_structure(M)
        kind = structure_named(structure)  # the structure's own rules: structures.STRUCTURE_REGISTRY
        if not kind.ranked:
            return FactorSpec(structure, shape, ())
        kind.check_order(M)
        identity = kind.identity(shape, tuple(c.identity_modes))
        ranks = kind.ranks(shape, _per_factor("rank", c.rank, K, k), identity, c.rank)
        return FactorSpec(structure, shape, ranks, identity)

    # ----------------------------------------------------------------- symbolic facts
    @property
    def num_params(self) -> int:
        """Trainable parameters, exact, computed from shapes alone."""
        return sum(g.num_params for g in self.groups)

    @property
    def num_entries(self) -> int:
        """N: entries of dW_all (the adapted weights' total size)."""
        return sum(t.size for t in self.targets)

    @property
    def compression(self) -> float:
        """num_entries / num_params."""
        return self.num_entries / max(1, self.num_params)

    @property
    def target_shapes(self) -> dict[str, tuple[int, ...]]:
        return {t.name: t.shape for t in self.targets}

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Parameter name -> shape over all groups (the keys ``init`` returns)."""
        return {name: shape for g in self.groups for name, shape in g.param_shapes.items()}

    def target_scale(self, name: str) -> float:
        """The factor dW of target ``name`` is multiplied by: alpha / r times its own scale."""
        return self.scale_factor * float((self.config.scale or {}).get(name, 1.0))

    # ----------------------------------------------------------------- its plan
    @cached_property
    def _plan(self) -> Plan:
        return Plan(self)

    def plan(self) -> Plan:
        """The cached contraction plan (opt_einsum expressions, one per batch of identical groups)."""
        return self._plan

    # ----------------------------------------------------------------- identity
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description: targets and every argument, canonical (see ``from_dict``)."""
        return spec_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """The spec ``to_dict`` described (an equal one); SpecError naming the key for anything malformed."""
        targets, config = read_spec_dict(data, SPEC_ARGUMENTS)
        return cls(targets, **config)

    def __repr__(self) -> str:
        defaults = {"factorization": "peft", "compose": "kron"}
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items()
                         if (v not in (None, (), False) and defaults.get(k) != v) or k == "seed")
        return f"{type(self).__name__}({len(self.targets)} targets, {args}; {self.num_params} params)"


SPEC_ARGUMENTS: tuple[str, ...] = tuple(
    p.name for p in inspect.signature(SpecValue).parameters.values()
    if p.name != "targets" and p.kind is inspect.Parameter.KEYWORD_ONLY
)


def _default_resolved(current: SpecConfig, guess: SpecConfig, built: tuple[GroupNetwork, ...]) -> bool:
    """True when ``guess`` only names the structure ``current`` left to its default (lora for two
    modes, tucker above, as ``_factor`` resolves None): the networks are the same by construction,
    so no probe rebuild is needed (it tripled the build time of 560 balanced Tucker groups)."""
    orders = {len(f.shape) for g in built for f in g.factors}
    if guess.rank != current.rank or current.structure is not None or len(orders) != 1:
        return False
    return guess == dataclasses.replace(current, structure=default_structure(orders.pop()))


def _set(spec: SpecValue, **values: Any) -> None:
    """Write attributes of a spec under construction (afterwards ``__setattr__`` refuses)."""
    for name, value in values.items():
        object.__setattr__(spec, name, value)


def _rebuild(cls: type[SpecValue], targets: tuple[tuple[str, tuple[int, ...]], ...],
             config: tuple[tuple[str, Any], ...]) -> SpecValue:
    """Unpickle: the spec rebuilt from its targets and canonical arguments (nothing cached travels)."""
    return cls(list(targets), **dict(config))


def _per_factor(field: str, value: Any, K: int, k: int) -> Any:
    """The factor-k entry of an argument that may be given once or as a list per factor."""
    if isinstance(value, PerFactor | list):
        if len(value) != K:
            raise SpecError(field, value, f"a single value or a list of {K} (one per Kronecker factor)")
        return value[k]
    return value
