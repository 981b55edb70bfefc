"""Apply an adapter to an activation without building dW: the activation joins the network.

For a weight-wise group with the natural fold, no projection, no shuffle and no truncation,
dW's rows are the row modes' Kronecker indices and its columns the column modes'. So
y = x @ dW^T is ONE einsum over the group's parameters and x folded to (tokens, column
sub-indices); opt_einsum's planner orders it, and ``prefer_factored`` compares its cost with
materialising dW and doing the matmul.

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
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import opt_einsum

from .backends import backend_for, get_backend
from .errors import SpecError
from .folds import natural_fold
from .network import GroupNetwork, path_cost
from .plan import expression

if TYPE_CHECKING:
    from .spec import SuperLoRA

__all__ = ["apply_delta", "factored_equation", "factored_supported", "prefer_factored"]


def _group_of(spec: SuperLoRA, name: str) -> GroupNetwork | None:
    for g in spec.groups:
        if len(g.segments) == 1 and g.segments[0].target == name:
            return g
    return None


def factored_supported(spec: SuperLoRA, name: str) -> bool:
    """True when target ``name`` can be applied to activations without materialising dW."""
    target = next((t for t in spec.targets if t.name == name), None)
    if target is None:
        raise SpecError("target", name, f"one of the spec's targets ({', '.join(t.name for t in spec.targets[:4])}, ...)")
    g = _group_of(spec, name)
    return (
        g is not None
        and len(target.shape) == 2
        and g.projection is None
        and spec.config["shuffle"] is None
        and g.segments[0].size == target.size
        and g.kron_shape == g.fold
        and g.fold == natural_fold(target.matrix_shape, len(g.fold))
        and len(g.fold) >= 2
    )


@lru_cache(maxsize=4096)
def _equation(g: GroupNetwork) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    M = len(g.fold)
    rows = (M + 1) // 2
    out = g.output  # mode-major: for m, for k (compose="hadamard": one shared index per mode)
    per = len(out) // M
    row_syms = out[: rows * per]
    col_syms = out[rows * per :]
    used = set(g.equation)
    token = next(opt_einsum.get_symbol(i) for i in range(10**4) if opt_einsum.get_symbol(i) not in used)
    col_shape = g.einsum_shape[rows * per :]
    row_shape = g.einsum_shape[: rows * per]
    lhs = ",".join(t.subscripts for t in g.tensors)
    return f"{lhs},{token}{col_syms}->{token}{row_syms}", col_shape, row_shape


def factored_equation(spec: SuperLoRA, name: str) -> str:
    """The einsum of y = x @ dW^T with x folded to (tokens, column sub-indices)."""
    g = _group_of(spec, name)
    if g is None or not factored_supported(spec, name):
        raise SpecError("target", name, "a weight-wise natural-fold target without projection, shuffle or truncation")
    return _equation(g)[0]


def prefer_factored(spec: SuperLoRA, name: str, tokens: int) -> bool:
    """True when opt_einsum's cost of the factored network beats materialise-then-matmul."""
    if not factored_supported(spec, name):
        return False
    g = _group_of(spec, name)
    assert g is not None
    eq, col_shape, _ = _equation(g)
    factored = path_cost(eq, (*g.shapes, (tokens, *col_shape)))["flops"]
    out, inp = next(t.matrix_shape for t in spec.targets if t.name == name)
    materialise = g.cost["flops"] + 2 * tokens * out * inp
    return factored < materialise


def apply_delta(spec: SuperLoRA, params: Mapping[str, Any], name: str, x: Any, *, backend: Any = None) -> Any:
    """x @ dW^T for target ``name`` (x of shape (..., in)), without materialising dW."""
    g = _group_of(spec, name)
    if g is None or not factored_supported(spec, name):
        raise SpecError("target", name, "a weight-wise natural-fold target without projection, shuffle or truncation")
    be = get_backend(backend) if backend is not None else backend_for(x)
    eq, col_shape, _ = _equation(g)
    lead = tuple(x.shape[:-1])
    tokens = math.prod(lead)
    xf = x.reshape(tokens, *col_shape)
    operands = [params[t.name] for t in g.tensors]
    expr = expression(eq, (*g.shapes, (tokens, *col_shape)))
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
