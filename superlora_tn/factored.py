"""Apply an adapter to an activation without building dW: the activation joins the network.

When a target's entries are whole rows of its group's leading einsum index and the remaining
indices split into its rows and columns (a weight-wise group with the natural fold, or a stack
fold over same-shape targets, LoTR-like), y = x @ dW^T is ONE einsum over the group's parameters
(the leading factor cut to the target's rows) and x folded to (tokens, column sub-indices);
opt_einsum's planner orders it, and ``prefer_factored`` compares its cost with materialising
dW and doing the matmul.

>>> import numpy as np, superlora_tn as slt
>>> spec = slt.SuperLoRA({"w": (6, 8)}, splits=2, structure=["dense", "lora"], rank=2)
>>> p = spec.init(zero_init=False)
>>> x = np.random.default_rng(0).standard_normal((3, 8))
>>> np.allclose(apply_delta(spec, p, "w", x), x @ spec.contract(p)["w"].T)
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import opt_einsum

from .backends import Backend, resolve_backend
from .errors import SpecError
from .network import GroupNetwork, path_cost
from .plan import expression
from .slices import leading_rows

if TYPE_CHECKING:
    from .spec import SpecValue

__all__ = ["apply_delta", "factored_equation", "factored_supported", "factored_targets", "prefer_factored"]


@dataclass(frozen=True)
class Alignment:
    """Target rows [r0, r1) of its group's leading einsum index; the remaining einsum indices up
    to ``split`` are its row modes, the rest its column modes."""

    group: GroupNetwork
    r0: int
    r1: int
    split: int


def _alignment(spec: SpecValue, name: str) -> Alignment | None:
    """Cached on the spec's plan (a spec's hash is its whole description: too slow per call)."""
    cache = spec.plan().__dict__.setdefault("_alignments", {})
    if name not in cache:
        cache[name] = _find_alignment(spec, name)
    return cache[name]


def _find_alignment(spec: SpecValue, name: str) -> Alignment | None:
    target = next((t for t in spec.targets if t.name == name), None)
    if target is None:
        raise SpecError("target", name, f"one of the spec's targets ({', '.join(t.name for t in spec.targets[:4])}, ...)")
    pieces = spec.plan().pieces[name]
    if len(target.shape) != 2 or spec.config.shuffle is not None or len(pieces) != 1:
        return None
    g = spec.groups[pieces[0][0]]
    if g.projection is not None or g.kron_shape != g.fold or len(g.fold) < 2:
        return None
    _, a, b = pieces[0]
    shape = g.einsum_shape  # the group's entries are this einsum output in C order
    stride = math.prod(shape[1:])
    if a % stride or b % stride:
        return None
    r0, r1 = a // stride, b // stride
    out, inp = target.matrix_shape
    rows = r1 - r0
    for split in range(1, len(shape)):
        if rows * math.prod(shape[1:split]) == out and math.prod(shape[split:]) == inp:
            return Alignment(g, r0, r1, split)
    return None


def factored_supported(spec: SpecValue, name: str) -> bool:
    """True when target ``name`` can be applied to activations without materialising dW: its
    entries are whole rows of its group's leading index (a weight-wise natural fold, or a stack
    fold of same-shape targets, LoTR-like) whose other indices split into its rows and columns."""
    return _alignment(spec, name) is not None


def factored_targets(spec: SpecValue) -> int:
    """How many targets can train factored (no dW built, cost like LoRA's): the rest materialise."""
    return sum(factored_supported(spec, t.name) for t in spec.targets)


@lru_cache(maxsize=4096)
def _equation(al: Alignment) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    g = al.group
    shape, out = g.einsum_shape, g.output
    used = set(g.equation)
    token = next(opt_einsum.get_symbol(i) for i in range(10**4) if opt_einsum.get_symbol(i) not in used)
    lhs = ",".join(t.subscripts for t in g.tensors)
    col_shape = shape[al.split :]
    row_shape = (al.r1 - al.r0, *shape[1 : al.split])
    return f"{lhs},{token}{out[al.split:]}->{token}{out[:al.split]}", col_shape, row_shape


def _operands(al: Alignment, params: Mapping[str, Any]) -> list[Any]:
    """The group's parameters, those carrying the leading index cut to the target's rows."""
    return leading_rows(al.group, [params[t.name] for t in al.group.tensors], al.r0, al.r1)


def _shapes(al: Alignment) -> tuple[tuple[int, ...], ...]:
    g = al.group
    lead = g.output[0]
    return tuple(tuple(al.r1 - al.r0 if lead == c else n for c, n in zip(t.subscripts, t.shape)) for t in g.tensors)


def factored_equation(spec: SpecValue, name: str) -> str:
    """The einsum of y = x @ dW^T with x folded to (tokens, column sub-indices)."""
    al = _alignment(spec, name)
    if al is None:
        raise SpecError("target", name, _NOT_ALIGNED)
    return _equation(al)[0]


_NOT_ALIGNED = ("a target whose entries are whole leading-index rows of its group, split into its rows and columns "
                "(weight-wise natural fold, or a stack fold), without projection, shuffle or Kronecker cut")


def prefer_factored(spec: SpecValue, name: str, tokens: int) -> bool:
    """True when opt_einsum's cost of the factored network beats materialise-then-matmul."""
    al = _alignment(spec, name)
    if al is None:
        return False
    eq, col_shape, _ = _equation(al)
    factored = path_cost(eq, (*_shapes(al), (tokens, *col_shape)))["flops"]
    out, inp = next(t.matrix_shape for t in spec.targets if t.name == name)
    share = (al.r1 - al.r0) / al.group.einsum_shape[0]
    materialise = share * al.group.cost["flops"] + 2 * tokens * out * inp
    return factored < materialise


def apply_delta(spec: SpecValue, params: Mapping[str, Any], name: str, x: Any, *, backend: str | Backend | None = None) -> Any:
    """x @ dW^T for target ``name`` (x of shape (..., in)), without materialising dW."""
    al = _alignment(spec, name)
    if al is None:
        raise SpecError("target", name, _NOT_ALIGNED)
    be = resolve_backend(backend, x)
    eq, col_shape, _ = _equation(al)
    lead = tuple(x.shape[:-1])
    tokens = math.prod(lead)
    xf = x.reshape(tokens, *col_shape)
    operands = _operands(al, params)
    expr = expression(eq, (*_shapes(al), (tokens, *col_shape)))
    ctx = be.no_autocast(xf)  # torch autocasts matmul but not tensordot: run in the given dtypes
    if ctx is None:
        y = expr(*operands, xf, backend=be.einsum_backend)
    else:
        with ctx:
            y = expr(*operands, xf, backend=be.einsum_backend)
    out_dim = next(t.matrix_shape for t in spec.targets if t.name == name)[0]
    y = y.reshape(*lead, out_dim)
    factor = spec.target_scale(name)
    return y if factor == 1.0 else y * factor
