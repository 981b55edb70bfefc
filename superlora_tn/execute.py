"""Running a plan: parameters in, dW per target out, on any backend.

>>> import superlora_tn as slt
>>> spec = slt.SuperLoRA({"w": (4, 6)}, rank=2)
>>> params = spec.init()                      # numpy, dW == 0
>>> float(abs(spec.contract(params)["w"]).max())
0.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .backends import backend_for, get_backend
from .errors import SpecError

if TYPE_CHECKING:
    from .spec import SuperLoRA

__all__ = ["check_params", "contract", "group_outputs"]


def check_params(spec: SuperLoRA, params: Mapping[str, Any]) -> None:
    """SpecError if names, shapes or dtypes of ``params`` do not match the spec."""
    expected = spec.param_shapes
    if params.keys() != expected.keys():
        missing = sorted(set(expected) - set(params))[:5]
        extra = sorted(set(params) - set(expected))[:5]
        raise SpecError("params", f"missing {missing}, unexpected {extra}", f"exactly the names {list(expected)[:5]}...")
    dtype = None
    for name, shape in expected.items():
        p = params[name]
        if tuple(p.shape) != shape:
            raise SpecError(f"params[{name!r}]", f"shape {tuple(p.shape)}", f"shape {shape}")
        if dtype is None:
            dtype = p.dtype
        elif p.dtype != dtype:
            raise SpecError(f"params[{name!r}]", f"dtype {p.dtype}", f"one dtype for all parameters ({dtype})")


def group_outputs(spec: SuperLoRA, params: Mapping[str, Any], backend: Any) -> list[Any]:
    """Each group's n entries (after the cut and the projection), as 1-D arrays in group order."""
    plan = spec.plan()
    like = next(iter(params.values()))
    consts = plan.constants(backend, like)
    out: list[Any] = [None] * len(spec.groups)
    for batch, proj_consts in zip(plan.batches, consts["projections"]):
        t = batch.template
        names = [node.name for node in t.tensors]
        if batch.batched:
            operands = [backend.stack([params[g.tensors[i].name] for g in batch.groups]) for i in range(len(names))]
        else:
            operands = [params[name] for name in names]
        raw = batch.expression(*operands, backend=backend.name)
        B = len(batch.groups)
        x = raw.reshape(B, *t.kron_shape)
        if t.kron_shape != t.fold:
            x = x[(slice(None), *(slice(0, n) for n in t.fold))]
        x = x.reshape(B, -1)
        if math.prod(t.fold) != t.generated:
            x = x[:, : t.generated]
        if proj_consts is not None:
            x = t.projection.apply(x, proj_consts, backend)
        for b, g in enumerate(batch.groups):
            out[g.index] = x[b]
    return out


def _resolve(spec: SuperLoRA, params: Mapping[str, Any] | None, backend: Any, dtype: Any) -> tuple[Any, Mapping[str, Any]]:
    if params is None:
        be = get_backend(backend if backend is not None else "numpy")
        return be, spec.init(be, zero_init=False, dtype=dtype)
    if not isinstance(params, Mapping) or not params:
        raise SpecError("params", type(params).__name__, "a non-empty mapping of parameter name -> array, or None")
    check_params(spec, params)
    first = next(iter(params.values()))
    if backend is None:
        return backend_for(first), params
    be = get_backend(backend)
    if not be.is_array(first):
        src = backend_for(first)
        params = {k: be.asarray(src.to_numpy(v), dtype=src.dtype_name(v.dtype)) for k, v in params.items()}
    return be, params


def contract(spec: SuperLoRA, params: Mapping[str, Any] | None = None, *, backend: Any = None,
             dtype: Any = None) -> dict[str, Any]:
    """dW for every target (see ``SuperLoRA.contract``)."""
    be, params = _resolve(spec, params, backend, dtype)
    plan = spec.plan()
    ys = group_outputs(spec, params, be)
    perm = plan.constants(be, next(iter(params.values())))["perm"]
    z = None
    if perm is not None:
        z = be.concat(ys) if len(ys) > 1 else ys[0]
        z = z[perm]
    result = {}
    for target in spec.targets:
        parts = [(z if src < 0 else ys[src])[a:b] for src, a, b in plan.pieces[target.name]]
        flat = parts[0] if len(parts) == 1 else be.concat(parts)
        delta = flat.reshape(target.shape)
        factor = spec.target_scale(target.name)
        result[target.name] = delta if factor == 1.0 else delta * factor
    return result
