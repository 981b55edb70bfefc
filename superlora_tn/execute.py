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

from .backends import Backend, backend_for, resolve_backend
from .buffers import check_disjoint
from .errors import SpecError
from .init import FLOAT_DTYPES, init_params
from .lowering import SMALL_OUTPUT, Program, program, run_program  # noqa: F401  (re-exported)
from .runner import params_ok, runner_for

if TYPE_CHECKING:
    from .spec import SpecValue

__all__ = ["Program", "check_params", "contract", "contract_general", "group_outputs", "program", "run_program"]


def check_params(spec: SpecValue, params: Mapping[str, Any]) -> None:
    """SpecError if names, shapes or dtypes of ``params`` do not match the spec."""
    expected = spec.plan().param_shapes
    if params.keys() != expected.keys():
        missing = sorted(set(expected) - set(params))[:5]
        extra = sorted(set(params) - set(expected))[:5]
        raise SpecError("params", f"missing {missing}, unexpected {extra}", f"exactly the names {list(expected)[:5]}...")
    dtype = None
    for name, shape in expected.items():
        p = params[name]
        if not hasattr(p, "shape") or not hasattr(p, "dtype"):
            raise SpecError(f"params[{name!r}]", type(p).__name__, "an array (numpy, torch or jax)")
        if tuple(p.shape) != shape:
            raise SpecError(f"params[{name!r}]", f"shape {tuple(p.shape)}", f"shape {shape}")
        if dtype is None:
            dtype = p.dtype
            if not str(dtype).endswith(FLOAT_DTYPES):
                raise SpecError(f"params[{name!r}]", f"dtype {dtype}", f"a floating dtype: one of {FLOAT_DTYPES}")
        elif p.dtype != dtype:
            raise SpecError(f"params[{name!r}]", f"dtype {p.dtype}", f"one dtype for all parameters ({dtype})")


def group_outputs(spec: SpecValue, params: Mapping[str, Any], backend: Backend, exact: bool = True) -> list[Any]:
    """Each group's n entries (after the cut and the projection), as 1-D arrays in group order.

    ``exact=False`` may leave a truncated fold's surplus entries at the end of an output (the
    caller splits them off: one op, where a slice here would add a zero-filled gradient pass).
    """
    plan = spec.plan()
    like = next(iter(params.values()))
    consts = plan.constants(backend, like)
    out: list[Any] = [None] * len(spec.groups)
    for lay, proj_consts in zip(plan.layouts, consts["projections"]):
        if len(lay.indices) > 1:
            operands = [backend.stack([params[n] for n in group_names]) for group_names in lay.names]
        else:
            operands = [params[group_names[0]] for group_names in lay.names]
        x = run_program(lay.batch.program, operands, backend).reshape(lay.kron)
        if lay.cut is not None:
            x = x[(slice(None), *lay.cut)]
        x = x.reshape(lay.kron[0], -1)
        if lay.trunc is not None and (exact or proj_consts is not None):
            x = x[:, : lay.trunc]
        if proj_consts is not None:
            x = lay.batch.template.projection.apply(x, proj_consts, backend)
        # one op (a reshape for a single group): its backward fills one gradient
        rows = backend.unbind(x) if len(lay.indices) > 1 else (x.reshape(-1),)
        for row, g in zip(rows, lay.indices):
            out[g] = row
    return out


def _resolve(spec: SpecValue, params: Mapping[str, Any] | None, backend: str | Backend | None,
             dtype: Any) -> tuple[Backend, Mapping[str, Any]]:
    """The backend (resolved here, once) and the parameters on it (seeded random ones when None)."""
    if params is None:
        be = resolve_backend(backend if backend is not None else "numpy", None)
        return be, init_params(spec, be, zero_init=False, dtype=dtype)
    if not isinstance(params, Mapping) or not params:
        raise SpecError("params", type(params).__name__, "a non-empty mapping of parameter name -> array, or None")
    if not params_ok(spec.plan(), params):
        check_params(spec, params)
    first = next(iter(params.values()))
    be = resolve_backend(backend, first)
    if not be.is_array(first):  # a forced backend: convert, exactly (through NumPy, the source's dtype)
        src = backend_for(first)
        params = {k: be.asarray(src.to_numpy(v), dtype=src.dtype_name(v.dtype)) for k, v in params.items()}
    return be, params


def contract(spec: SpecValue, params: Mapping[str, Any] | None = None, *, backend: str | Backend | None = None,
             dtype: Any = None, out: Any = None) -> dict[str, Any]:
    """dW for every target (see ``SpecValue.contract``); ``out`` writes into caller buffers.

    Under torch autocast the adapter math runs with autocast off, in the parameters' dtype.
    """
    be, params = _resolve(spec, params, backend, dtype)
    like = next(iter(params.values()))
    ctx = be.no_autocast(like)
    if ctx is not None:
        with ctx:
            return _contract(spec, params, be, like, out)
    return _contract(spec, params, be, like, out)


def _contract(spec: SpecValue, params: Mapping[str, Any], be: Backend, like: Any, out: Any) -> dict[str, Any]:
    if out is not None:
        return _contract_into(spec, params, be, out)
    run = runner_for(spec, be, like)
    if run is not None:
        return run(params)
    return contract_general(spec, params, be)


def contract_general(spec: SpecValue, params: Mapping[str, Any], be: Backend) -> dict[str, Any]:
    """The general fresh path: cuts, projections, shuffles, targets spanning groups."""
    plan = spec.plan()
    perm = plan.constants(be, next(iter(params.values())))["perm"]
    ys = group_outputs(spec, params, be, exact=perm is not None)
    z = None
    if perm is not None:
        z = be.concat(ys) if len(ys) > 1 else ys[0]
        z = z[perm]
    sizes, where = plan.piece_layout
    split = {}
    for src, cuts in sizes.items():
        whole = z if src < 0 else ys[src]
        surplus = whole.shape[0] - sum(cuts)  # a truncated fold's tail: split off, never used
        split[src] = [whole] if len(cuts) == 1 and not surplus else be.split(whole, [*cuts, surplus] if surplus else cuts)
    result = {}
    for target in spec.targets:
        parts = [split[src][k] for src, k in where[target.name]]
        flat = parts[0] if len(parts) == 1 else be.concat(parts)
        delta = flat.reshape(target.shape)
        factor = spec.target_scale(target.name)
        result[target.name] = delta if factor == 1.0 else delta * factor
    return result


def _out_views(spec: SpecValue, be: Backend, out: Any, like: Any) -> tuple[dict[str, Any], Any]:
    """Validate ``out``: name -> buffer per target, plus the flat dW_all buffer (or None)."""
    if not be.supports_out:
        raise SpecError("out", f"a {be.name} array", "None: this backend's arrays are immutable (use the returned dict)")
    flat = None
    if isinstance(out, Mapping):
        if out.keys() != spec.plan().pieces.keys():
            raise SpecError("out", sorted(out)[:5], f"one buffer per target: {[t.name for t in spec.targets][:5]}...")
        views = dict(out)
        check_disjoint(views)  # aliased buffers would leave one target's dW in both
    else:
        if not be.is_array(out) or tuple(out.shape) != (spec.num_entries,):
            got = getattr(out, "shape", type(out).__name__)
            raise SpecError("out", got, f"a 1-D {be.name} array of {spec.num_entries} entries (dW_all)")
        if not be.is_contiguous(out):
            raise SpecError("out", "a non-contiguous array", "a contiguous buffer")
        flat, views, start = out, {}, 0
        for t in spec.targets:
            views[t.name] = out[start : start + t.size].reshape(t.shape)
            start += t.size
    for t in spec.targets:
        buf = views[t.name]
        if not be.is_array(buf) or tuple(buf.shape) != t.shape:
            raise SpecError(f"out[{t.name!r}]", getattr(buf, "shape", type(buf).__name__), f"a {be.name} array of shape {t.shape}")
        if buf.dtype != like.dtype:
            raise SpecError(f"out[{t.name!r}]", f"dtype {buf.dtype}", f"the parameters' dtype {like.dtype}")
    return views, flat


def _contract_into(spec: SpecValue, params: Mapping[str, Any], be: Backend, out: Any) -> dict[str, Any]:
    """Write dW into caller buffers: the last contraction step writes each group's dW in place.

    Weight-wise groups without cut, projection or shuffle are written directly (a batch of
    identical groups in one batched step when ``out`` is the flat dW_all buffer); anything else
    is contracted and copied in.
    """
    like = next(iter(params.values()))
    views, flat = _out_views(spec, be, out, like)
    plan = spec.plan()
    if not plan.plain:
        for name, value in contract_general(spec, params, be).items():
            be.copy_into(views[name], value)
        return views
    for lay in plan.layouts:
        batch, t, consecutive = lay.batch, lay.batch.template, lay.consecutive
        first = lay.offsets[0]
        bufs_ok = all(be.is_contiguous(views[name]) for name in lay.targets)
        full = math.prod(t.fold)
        if full != t.size:  # truncated fold: each group's dW is a prefix of its full contraction
            prog = program(t.equation, t.shapes)
            for b, g in enumerate(batch.groups):
                operands = [params[node.name] for node in g.tensors]
                start = lay.offsets[b]
                if flat is not None and consecutive and b + 1 < len(batch.groups) and full <= 2 * t.size:
                    # write the full output in place; the surplus spills into the NEXT group's region,
                    # which that group overwrites right after
                    run_program(prog, operands, be, out=flat[start : start + full].reshape(prog.out_shape))
                else:
                    buf = views[lay.targets[b]]
                    be.copy_into(buf, run_program(prog, operands, be).reshape(-1)[: t.size].reshape(buf.shape))
            continue
        if batch.batched and flat is not None and consecutive:
            operands = [be.stack([params[n] for n in group_names]) for group_names in lay.names]
            dst = flat[first : first + len(batch.groups) * t.size].reshape(batch.program.out_shape)
            run_program(batch.program, operands, be, out=dst)
            continue
        prog = program(t.equation, t.shapes)
        for b, g in enumerate(batch.groups):
            buf = views[lay.targets[b]]
            operands = [params[node.name] for node in g.tensors]
            if bufs_ok:
                run_program(prog, operands, be, out=buf.reshape(prog.out_shape))
            else:
                be.copy_into(buf, run_program(prog, operands, be).reshape(buf.shape))
    for target in spec.targets:
        factor = spec.target_scale(target.name)
        if factor != 1.0:
            be.scale_(views[target.name], factor)
    return views
