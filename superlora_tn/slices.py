"""One target's dW without building the rest of its group: the bounded-memory path.

A target covers entries [a, b) of each group it lies in (``plan.pieces``). Without a projection
the group's entries are its network's output in C order, so [a, b) lies inside a range of the
output's leading index: slicing every operand that carries that index to the range gives exactly
those rows (a Tucker or CP group's rows of its first factor matrix; a dense core's rows). With a
projection, the target's entries lie in a few of the projection's output blocks, and only those
blocks are computed (``Projection.apply_range``). The cost is O(target + the slab around it)
instead of O(group), so a layer can build its own dW just in time and free it afterwards.

>>> import numpy as np, superlora_tn as slt
>>> spec = slt.SuperLoRA({"a": (6, 8), "b": (8, 8)}, groups=1, fold="balanced", order=3, rank=2)
>>> p = spec.init(zero_init=False)
>>> np.allclose(target_delta(spec, p, "b"), spec.contract(p)["b"])
True
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .backends import Backend, resolve_backend
from .plan import expression

if TYPE_CHECKING:
    from .network import GroupNetwork
    from .spec import SpecValue

__all__ = ["group_range", "leading_rows", "shares_groups", "target_delta", "target_params"]


def shares_groups(spec: SpecValue, name: str) -> bool:
    """True when target ``name``'s entries come from a group that also feeds other targets (or a shuffle)."""
    if spec.config.shuffle is not None:
        return True
    groups = {src for src, _, _ in spec.plan().pieces[name]}
    return any(len(spec.groups[g].segments) > 1 for g in groups)


def target_params(spec: SpecValue, name: str) -> list[str]:
    """The parameter names target ``name``'s dW depends on (all of them when shuffled)."""
    if spec.config.shuffle is not None:
        return list(spec.plan().param_shapes)
    groups = dict.fromkeys(src for src, _, _ in spec.plan().pieces[name])
    return [t.name for g in groups for t in spec.groups[g].tensors]


def target_delta(spec: SpecValue, params: Mapping[str, Any], name: str, backend: str | Backend | None = None) -> Any:
    """dW of target ``name`` (its shape, scaled) computing only what covers it.

    ``params`` needs the names of ``target_params(spec, name)`` only. A shuffled spec spreads
    every target over every group, so it contracts the whole spec. Under torch autocast it runs
    with autocast off, in the parameters' dtype, as ``spec.contract`` does.
    """
    like = next(iter(params.values()))
    be = resolve_backend(backend, like)
    with be.no_autocast(like) or contextlib.nullcontext():
        return _target_delta(spec, params, name, be)


def _target_delta(spec: SpecValue, params: Mapping[str, Any], name: str, be: Backend) -> Any:
    target = next(t for t in spec.targets if t.name == name)
    if spec.config.shuffle is not None:
        from .execute import contract

        return contract(spec, dict(params), backend=be)[name]
    parts = [group_range(spec, params, spec.groups[g], a, b, be) for g, a, b in spec.plan().pieces[name]]
    flat = parts[0] if len(parts) == 1 else be.concat(parts)
    delta = flat.reshape(target.shape)
    factor = spec.target_scale(name)
    return delta if factor == 1.0 else delta * factor


def group_range(spec: SpecValue, params: Mapping[str, Any], g: GroupNetwork, a: int, b: int, be: Backend) -> Any:
    """Entries [a, b) of group ``g``'s output (after its cut and projection), 1-D."""
    if g.projection is not None:
        u = _network_range(params, g, 0, g.generated, be)
        batch, index = _batch_of(spec, g)
        consts = spec.plan().constants(be, u)["projections"][batch]
        return g.projection.apply_range(u, consts, index, a, b, be)
    return _network_range(params, g, a, b, be)


def _batch_of(spec: SpecValue, g: GroupNetwork) -> tuple[int, int]:
    for k, batch in enumerate(spec.plan().batches):
        for i, member in enumerate(batch.groups):
            if member.index == g.index:
                return k, i
    raise AssertionError(f"group {g.index} is in no batch")


def _network_range(params: Mapping[str, Any], g: GroupNetwork, a: int, b: int, be: Backend) -> Any:
    """Entries [a, b) of the network's generated output (C order of the fold, before projection)."""
    operands = [params[t.name] for t in g.tensors]
    if g.kron_shape != g.fold:  # surplus Kronecker rows: C order of the einsum is not the fold's
        full = _contract(g.equation, operands, be).reshape(g.kron_shape)
        full = full[tuple(slice(0, n) for n in g.fold)].reshape(-1)
        return full[a:b]
    stride = math.prod(g.einsum_shape[1:])
    r0, r1 = a // stride, -(-b // stride)
    out = _contract(g.equation, leading_rows(g, operands, r0, r1), be).reshape(-1)
    lo = a - r0 * stride
    return out[lo : lo + (b - a)]


def leading_rows(g: GroupNetwork, operands: list[Any], r0: int, r1: int) -> list[Any]:
    """``g``'s operands with every one that carries the output's leading index cut to rows
    [r0, r1): the network then yields exactly those rows of its output (in C order)."""
    lead = g.output[0]
    if (r0, r1) == (0, g.einsum_shape[0]):
        return operands
    cut = []
    for op, t in zip(operands, g.tensors):
        if lead in t.subscripts:
            index = [slice(None)] * len(op.shape)
            index[t.subscripts.index(lead)] = slice(r0, r1)
            op = op[tuple(index)]
        cut.append(op)
    return cut


def _contract(equation: str, operands: list[Any], be: Backend) -> Any:
    shapes = tuple(tuple(op.shape) for op in operands)
    if len(operands) == 1:
        return be.einsum(equation, *operands)
    return expression(equation, shapes)(*operands, backend=be.einsum_backend)
