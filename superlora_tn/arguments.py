"""A spec's arguments, each checked and normalised before the networks are built.

``checked_config`` turns ``SuperLoRA``'s keyword arguments into a :class:`~superlora_tn.config.SpecConfig`
of Python values (NumPy numbers and arrays converted, per-factor lists as ``PerFactor``, floats
for real factors, sorted identity modes, scales in target order), raising ``SpecError`` for what
can be judged without the fold: ranks against modes, folds against groups are checked while the
networks are built (spec.py). The canonical spelling is chosen after that (docs/design.md §2).

>>> from superlora_tn.targets import normalize_targets
>>> t = {x.name: x for x in normalize_targets({"q": (8, 8)})}
>>> args = dict(groups="weight", fold=[8, 8], order=None, splits=1, rank=[2], structure=None, projection=None,
...             shuffle=None, alpha=4, seed=0, identity_modes=(1, 0, 1), exact_splits=False, split_factor=-1,
...             scale={"q": 1.0}, factorization="peft", compose="kron")
>>> c = checked_config(t, args)
>>> c.fold, c.rank, c.alpha, c.identity_modes, c.scale
((8, 8), [2], 4.0, (0, 1), None)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from .config import FrozenMap, PerFactor, SpecConfig
from .errors import SpecError
from .factorize import FACTORIZATIONS
from .network import COMPOSITIONS
from .projection import Projection
from .targets import Target
from .validate import as_finite_float, as_nonnegative_int, as_positive_int, is_integer, is_positive_int, plain

__all__ = ["checked_config", "implied_order"]


def checked_config(targets: Mapping[str, Target], args: dict[str, Any]) -> SpecConfig:
    """The arguments checked one by one, as Python values (no NumPy), per-factor lists as ``PerFactor``.

    What depends on the fold and the factors (ranks against modes, folds against groups) is
    checked while the networks are built.
    """
    identity_modes, scale, fold = plain(args["identity_modes"]), plain(args["scale"]), plain(args["fold"])
    if isinstance(identity_modes, str) or not isinstance(identity_modes, Sequence):
        raise SpecError("identity_modes", identity_modes, "a tuple of mode indices, e.g. (0,)")
    if scale is not None and not isinstance(scale, Mapping):
        raise SpecError("scale", scale, "None or a mapping target name -> number")
    c: dict[str, Any] = dict(
        args, groups=plain(args["groups"]), fold=tuple(fold) if isinstance(fold, list) else fold,
        order=plain(args["order"]), splits=plain(args["splits"]), rank=_per_factor_arg(args["rank"]),
        structure=_per_factor_arg(args["structure"]), shuffle=plain(args["shuffle"]), alpha=plain(args["alpha"]),
        seed=plain(args["seed"]), identity_modes=tuple(identity_modes), exact_splits=plain(args["exact_splits"]),
        split_factor=plain(args["split_factor"]), scale=plain(dict(scale)) if scale else None,
        factorization=plain(args["factorization"]), compose=plain(args["compose"]),
    )
    _check_scalars(c, targets)
    _check_composition(c)
    # one spelling of each number and set: floats for real factors, sorted modes, scales in target order
    c["identity_modes"] = tuple(sorted(set(c["identity_modes"])))
    if c["alpha"] is not None:
        c["alpha"] = float(c["alpha"])
    if c["scale"] is not None:  # a scale of 1 is no scale
        scale = {name: float(c["scale"][name]) for name in targets if name in c["scale"]}
        c["scale"] = FrozenMap((name, s) for name, s in scale.items() if s != 1.0) if any(s != 1.0 for s in scale.values()) else None
    if c["projection"] is not None and isinstance(c["projection"].ratio, int):
        c["projection"] = dataclasses.replace(c["projection"], ratio=float(c["projection"].ratio))
    return SpecConfig(**c)


def _check_scalars(c: dict[str, Any], targets: Mapping[str, Target]) -> None:
    if c["order"] is not None:
        c["order"] = as_positive_int("order", c["order"])
    c["splits"] = as_positive_int("splits", c["splits"])
    _check_rank(c["rank"])
    for m in c["identity_modes"]:
        if not is_integer(m):
            raise SpecError("identity_modes", c["identity_modes"], "a tuple of integer mode indices, e.g. (0,)")
    c["identity_modes"] = tuple(int(m) for m in c["identity_modes"])
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
        if name not in targets:
            raise SpecError("scale", name, f"target names ({', '.join(list(targets)[:6])}, ...)")
        if as_finite_float(f"scale[{name!r}]", value, "a finite non-zero number") == 0:
            raise SpecError(f"scale[{name!r}]", value, "a non-zero number (0 makes this target's dW and every "
                                                      "gradient zero: a dead adapter, like alpha = 0)")


def _check_composition(c: dict[str, Any]) -> None:
    """``factorization`` and ``compose``: known names, and only where they mean something."""
    if c["compose"] not in COMPOSITIONS:
        raise SpecError("compose", c["compose"], f"one of {COMPOSITIONS}")
    if c["factorization"] not in FACTORIZATIONS:
        raise SpecError("factorization", c["factorization"], f"one of {FACTORIZATIONS}")
    if c["compose"] == "hadamard" and (c["split_factor"] != -1 or c["exact_splits"]):
        raise SpecError("compose", "hadamard", "split_factor=-1 and exact_splits=False (Hadamard factors are not split)")
    if c["factorization"] != "peft" and (c["splits"] != 2 or c["compose"] != "kron"):
        raise SpecError("factorization", c["factorization"], f'"peft" unless splits=2 and compose="kron" (LyCORIS splits '
                        f'a weight in two; splits={c["splits"]}, compose={c["compose"]!r})')


def implied_order(fold: str | tuple[int, ...]) -> int:
    """The order a fold has when ``order`` is None."""
    return len(fold) if isinstance(fold, tuple) else 3 if fold == "stack" else 2


def _implemented(projection: Projection) -> bool:
    """A concrete projection (not the abstract ``Projection`` base, which cannot be applied)."""
    return type(projection).constants is not Projection.constants


def _check_rank(rank: Any) -> None:
    """Ranks are positive whatever the structure (a dense factor ignores them, but -5 is never valid)."""
    expected = "a positive int, a tuple of positive ints (one per mode), or a list of those per factor"
    values = list(rank) if isinstance(rank, PerFactor) and rank else [rank]
    for r in values:
        if is_positive_int(r):
            continue
        if isinstance(r, tuple) and r and all(is_positive_int(x) for x in r):
            continue
        raise SpecError("rank", rank, expected)


def _per_factor_arg(value: Any) -> Any:
    """``rank`` or ``structure`` as given, NumPy-free: a list (or ``PerFactor``) is one value per factor."""
    if isinstance(value, PerFactor):
        value = list(value)
    value = plain(value)
    return PerFactor(value) if isinstance(value, list) else value
