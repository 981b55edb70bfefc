"""``SuperLoRA``: the symbolic, immutable description of an adapter (no arrays, shapes only).

What a spec means is the contract in docs/design.md §2; its place in the layers is §4.

>>> import superlora_tn as slt
>>> spec = slt.SuperLoRA({"q": (64, 64), "v": (64, 64)}, rank=4)     # LoRA r=4 on q and v
>>> spec.num_params
1024
>>> spec.groups[0].equation
'ac,bc->ab'
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from .errors import SpecError
from .factorize import FACTORIZATIONS, lycoris_splits, mode_split
from .folds import fold_shape
from .layout import GroupingArg, group_segments
from .limits import check_entries, check_fold_size, check_indices, check_modes
from .network import COMPOSITIONS, GroupNetwork
from .projection import Projection
from .structures import FactorSpec, structure_named
from .targets import Target, normalize_targets
from .validate import as_finite_float, as_nonnegative_int, as_positive_int, is_integer, is_positive_int, plain

__all__ = ["SPEC_ARGUMENTS", "SuperLoRA"]

RankArg = int | tuple[int, ...] | list[int | tuple[int, ...]]


class SuperLoRA:
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
        structure: ``"tucker"``, ``"cp"``, ``"lora"``, ``"dense"`` or a list per factor
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
            4.x's ``factorization`` and ``unbalanced_factorization``; weight-wise groups only).
        compose: ``"kron"`` (the factors' Kronecker product) or ``"hadamard"`` (their entry-wise
            product: every factor has the fold's shape and they share its indices; LoHa).
    """

    def __init__(
        self,
        targets: Mapping[str, Sequence[int]] | Sequence[tuple[str, Sequence[int]]],
        *,
        groups: GroupingArg = "weight",
        fold: str | Sequence[int] = "natural",
        order: int | None = None,
        splits: int = 1,
        rank: RankArg = 8,
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
        self.targets: tuple[Target, ...] = normalize_targets(targets)
        check_entries(sum(t.size for t in self.targets))
        self._by_name = {t.name: t for t in self.targets}
        identity_modes, scale, fold = plain(identity_modes), plain(scale), plain(fold)
        if isinstance(identity_modes, str) or not isinstance(identity_modes, Sequence):
            raise SpecError("identity_modes", identity_modes, "a tuple of mode indices, e.g. (0,)")
        if scale is not None and not isinstance(scale, Mapping):
            raise SpecError("scale", scale, "None or a mapping target name -> number")
        self.config: dict[str, Any] = dict(
            groups=_freeze(plain(groups)), fold=tuple(fold) if isinstance(fold, list) else fold, order=plain(order),
            splits=plain(splits), rank=_freeze(plain(rank)), structure=_freeze(plain(structure)), projection=projection,
            shuffle=plain(shuffle), alpha=plain(alpha), seed=plain(seed), identity_modes=tuple(identity_modes),
            exact_splits=plain(exact_splits), split_factor=plain(split_factor), scale=dict(scale) if scale else None,
            factorization=plain(factorization), compose=plain(compose),
        )
        self._check_scalars()
        self._check_composition()
        self.groups: tuple[GroupNetwork, ...] = self._build_groups()
        ranks = [r for g in self.groups for f in g.factors if f.structure != "dense"
                 for m, r in enumerate(f.ranks) if m not in f.identity_modes]
        self.rank_ref = max(ranks, default=1)
        self.scale_factor = 1.0 if self.config["alpha"] is None else float(self.config["alpha"]) / self.rank_ref

    # ----------------------------------------------------------------- construction
    def _check_scalars(self) -> None:
        c = self.config
        if c["order"] is not None:
            c["order"] = as_positive_int("order", c["order"])
        c["splits"] = as_positive_int("splits", c["splits"])
        _check_rank(c["rank"])
        for m in c["identity_modes"]:
            if not is_integer(m):
                raise SpecError("identity_modes", c["identity_modes"], "a tuple of integer mode indices, e.g. (0,)")
        projection = c["projection"]
        if projection is not None and (not isinstance(projection, Projection) or not _implemented(projection)):
            raise SpecError("projection", projection, "None, Fastfood(ratio) or Gaussian(ratio)")
        if c["shuffle"] is not None:
            c["shuffle"] = as_nonnegative_int("shuffle", c["shuffle"], "None or a non-negative integer seed")
        c["seed"] = as_nonnegative_int("seed", c["seed"])
        if not isinstance(c["exact_splits"], bool):
            raise SpecError("exact_splits", c["exact_splits"], "True or False")
        alpha = c["alpha"]
        if alpha is not None:
            as_finite_float("alpha", alpha, "None or a finite number")
        if alpha == 0:
            raise SpecError("alpha", alpha, "None or a non-zero number (alpha = 0 makes dW and every gradient zero: a dead adapter)")
        factor = c["split_factor"]
        if isinstance(factor, bool) or not isinstance(factor, int) or factor == 0 or factor < -1:
            raise SpecError("split_factor", c["split_factor"], "-1 (balanced) or a positive integer")
        if factor != -1 and c["splits"] != 2:
            raise SpecError("split_factor", factor, f"-1 unless splits=2 (PEFT's decompose_factor splits in two; splits={c['splits']})")

        for name, value in (c["scale"] or {}).items():
            if name not in self._by_name:
                raise SpecError("scale", name, f"target names ({', '.join(list(self._by_name)[:6])}, ...)")
            if as_finite_float(f"scale[{name!r}]", value, "a finite non-zero number") == 0:
                raise SpecError(f"scale[{name!r}]", value, "a non-zero number (0 makes this target's dW and every "
                                                          "gradient zero: a dead adapter, like alpha = 0)")

    def _check_composition(self) -> None:
        """``factorization`` and ``compose``: known names, and only where they mean something."""
        c = self.config
        if c["compose"] not in COMPOSITIONS:
            raise SpecError("compose", c["compose"], f"one of {COMPOSITIONS}")
        if c["factorization"] not in FACTORIZATIONS:
            raise SpecError("factorization", c["factorization"], f"one of {FACTORIZATIONS}")
        if c["compose"] == "hadamard" and (c["split_factor"] != -1 or c["exact_splits"]):
            raise SpecError("compose", "hadamard", "split_factor=-1 and exact_splits=False (Hadamard factors are not split)")
        if c["factorization"] != "peft" and (c["splits"] != 2 or c["compose"] != "kron"):
            raise SpecError("factorization", c["factorization"], f'"peft" unless splits=2 and compose="kron" (LyCORIS splits '
                            f'a weight in two; splits={c["splits"]}, compose={c["compose"]!r})')

    def _splits(self, fold: tuple[int, ...], segments: Any) -> list[tuple[int, ...]]:
        """Per fold mode, the K factor sizes (for ``compose="hadamard"`` each factor takes the whole mode)."""
        c, K = self.config, self.config["splits"]
        if c["compose"] == "hadamard":
            return [(n,) * K for n in fold]
        if c["factorization"] != "peft":
            target = self._by_name[segments[0].target]
            if len(segments) != 1 or segments[0].size != target.size:
                raise SpecError("factorization", c["factorization"], '"peft" unless groups="weight" (LyCORIS splits whole weights)')
            return lycoris_splits(target.shape, fold, c["factorization"], c["split_factor"])
        return [mode_split(n, K, exact=c["exact_splits"], factor=c["split_factor"]) for n in fold]

    def _order(self) -> int:
        fold, order = self.config["fold"], self.config["order"]
        if isinstance(fold, tuple):
            if order is not None and order != len(fold):
                raise SpecError("order", order, f"None or {len(fold)} (the length of fold={fold})")
            return len(fold)
        if order is not None:
            return order
        return 3 if fold == "stack" else 2

    def _build_groups(self) -> tuple[GroupNetwork, ...]:
        c = self.config
        order, K, projection = self._order(), c["splits"], c["projection"]
        check_modes(order, K)
        result = []
        for g, segments in enumerate(group_segments(self.targets, c["groups"])):
            size = sum(s.size for s in segments)
            generated = projection.generated_size(size) if projection is not None else size
            fold = fold_shape(c["fold"], order, segments, self._by_name, generated, projection is not None, g)
            field, value = ("fold", c["fold"]) if isinstance(c["fold"], tuple) else ("order", order)
            check_fold_size(g, generated, fold, field, value)
            per_mode = self._splits(fold, segments)
            kron = fold if c["compose"] == "hadamard" else tuple(math.prod(split) for split in per_mode)
            check_fold_size(g, generated, kron, "splits", K)
            factors = tuple(
                self._factor(k, tuple(split[k] for split in per_mode)) for k in range(K)
            )
            if c["identity_modes"] and not any(f.structure == "tucker" for f in factors):
                raise SpecError("identity_modes", c["identity_modes"], "() unless a factor is 'tucker' (only Tucker modes can be)")
            network = GroupNetwork(g, segments, size, generated, fold, factors, projection, compose=c["compose"])
            check_indices(g, network.equation, order=order, splits=K)
            result.append(network)
        return tuple(result)

    def _factor(self, k: int, shape: tuple[int, ...]) -> FactorSpec:
        c, M, K = self.config, len(shape), self.config["splits"]
        structure = _per_factor("structure", c["structure"], K, k)
        if structure is None:
            structure = "lora" if M == 2 else "tucker"
        kind = structure_named(structure)  # the structure's own rules: structures.STRUCTURE_REGISTRY
        if not kind.ranked:
            return FactorSpec(structure, shape, ())
        kind.check_order(M)
        identity = kind.identity(shape, tuple(c["identity_modes"]))
        ranks = kind.ranks(shape, _per_factor("rank", c["rank"], K, k), identity, c["rank"])
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
        return self.scale_factor * float((self.config["scale"] or {}).get(name, 1.0))

    def identify(self) -> str:
        """The named variant this spec reduces to ("lora", "lokr", ...), else "superlora"."""
        from .reductions import identify

        return identify(self)

    # ----------------------------------------------------------------- arrays
    @cached_property
    def _plan(self) -> Any:
        from .plan import Plan

        return Plan(self)

    def plan(self, backend: Any = None) -> Any:
        """The cached contraction plan (opt_einsum expressions, one per batch of identical groups)."""
        if backend is not None:
            from .backends import get_backend

            get_backend(backend)  # validates the name
        return self._plan

    def init(self, backend: Any = "numpy", *, seed: int | None = None, zero_init: Any = True,
             dtype: Any = None, device: Any = None) -> dict[str, Any]:
        """Seeded initial parameters, name -> array; dW == 0 exactly when ``zero_init`` is True.

        ``zero_init``: True (zero each group's default block), False (all random), or an
        iterable of parameter names to zero (at most one per group: two make a dead adapter).
        Values are drawn in NumPy float64 and converted, identical on every backend.
        """
        from .init import init_params

        return init_params(self, backend, seed=seed, zero_init=zero_init, dtype=dtype, device=device)

    def contract(self, params: Mapping[str, Any] | None = None, *, backend: Any = None,
                 dtype: Any = None, out: Any = None) -> dict[str, Any]:
        """dW per target, name -> array of the target's shape.

        Without ``params``, contracts seeded random NON-zero parameters (for checking identities)
        on ``backend`` (default numpy). With ``params``, the array type picks the backend unless
        ``backend`` forces one. ``out``: buffers to write dW into (a mapping name -> array of
        the target's shape, or one 1-D array of ``num_entries``, dW_all in target order), e.g.
        for merging; the returned dict holds those buffers (not differentiable).
        """
        from .execute import contract

        return contract(self, params, backend=backend, dtype=dtype, out=out)

    def summary(self) -> str:
        """Per-group table: fold, splits, structure, equation, params, FLOPs, largest intermediate."""
        from .summary import summary

        return summary(self)

    def draw(self, group: int = 0, path: Any = None) -> Any:
        """Draw group ``group``'s tensor network (matplotlib Figure); save it to ``path`` (.png/.svg) if given."""
        from .draw import draw

        return draw(self, group, path)

    # ----------------------------------------------------------------- identity
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description: targets and every argument (see ``from_dict``)."""
        from .serialize import spec_to_dict

        return spec_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SuperLoRA:
        from .serialize import spec_from_dict

        return spec_from_dict(data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SuperLoRA) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(self.to_dict()))

    def __repr__(self) -> str:
        defaults = {"factorization": "peft", "compose": "kron"}
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items()
                         if (v not in (None, (), False) and defaults.get(k) != v) or k == "seed")
        return f"SuperLoRA({len(self.targets)} targets, {args}; {self.num_params} params)"


SPEC_ARGUMENTS: tuple[str, ...] = tuple(
    p.name for p in inspect.signature(SuperLoRA).parameters.values()
    if p.name != "targets" and p.kind is inspect.Parameter.KEYWORD_ONLY
)


def _implemented(projection: Projection) -> bool:
    """A concrete projection (not the abstract ``Projection`` base, which cannot be applied)."""
    return type(projection).constants is not Projection.constants


def _check_rank(rank: Any) -> None:
    """Ranks are positive whatever the structure (a dense factor ignores them, but -5 is never valid)."""
    expected = "a positive int, a tuple of positive ints (one per mode), or a list of those per factor"
    values = rank if isinstance(rank, list) and rank else [rank]
    for r in values:
        if is_positive_int(r):
            continue
        if isinstance(r, tuple) and r and all(is_positive_int(x) for x in r):
            continue
        raise SpecError("rank", rank, expected)


def _freeze(value: Any) -> Any:
    """Lists become tuples (hashable, comparable), recursively; a rank list stays a list."""
    if isinstance(value, list):
        return [_freeze(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _per_factor(field: str, value: Any, K: int, k: int) -> Any:
    """The factor-k entry of an argument that may be given once or as a list per factor."""
    if isinstance(value, list):
        if len(value) != K:
            raise SpecError(field, value, f"a single value or a list of {K} (one per Kronecker factor)")
        return value[k]
    return value
