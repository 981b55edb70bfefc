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
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import opt_einsum

from .backends import backend_for, get_backend
from .errors import SpecError

if TYPE_CHECKING:
    from .spec import SuperLoRA

__all__ = ["Program", "check_params", "contract", "group_outputs", "program", "run_program"]


SMALL_OUTPUT = 1 << 14  # entries; below this per-call overhead dominates and memory order is cheap


# --------------------------------------------------------------------------- pairwise programs
@dataclass(frozen=True)
class _Step:
    """One step of a contraction path, lowered to a backend matmul or broadcast multiply.

    ``kind``: "mul" (no summed index: broadcast product), "mm" (a GEMM over the summed indices),
    "einsum" (anything else, through opt_einsum). ``ops`` are positions in the live operand list,
    popped in that order; the result is appended.
    """

    kind: str
    ops: tuple[int, ...]
    equation: str
    # mul: per operand (permutation, broadcast shape); mm: per operand (permutation, 3-d shape)
    prep: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = ()
    swap: bool = False
    shape: tuple[int, ...] = ()  # the step's output shape
    after: tuple[int, ...] | None = None  # permutation applied after a GEMM (rare; copies)


@dataclass(frozen=True)
class Program:
    """A cached contraction of one equation over fixed shapes, final output in C order."""

    equation: str
    steps: tuple[_Step, ...]
    out_shape: tuple[int, ...]
    path: tuple[tuple[int, ...], ...] = ()

    @property
    def small(self) -> bool:
        """Tiny outputs: one library einsum call along the cached path beats Python-level steps."""
        return math.prod(self.out_shape) <= SMALL_OUTPUT and len(self.steps) > 1


def _sizes(terms: list[str], shapes: tuple[tuple[int, ...], ...]) -> dict[str, int]:
    return {c: n for t, s in zip(terms, shapes) for c, n in zip(t, s)}


def _pair(x: str, y: str, keep: set[str], target: str | None, sizes: dict[str, int], ops: tuple[int, ...]) -> tuple[_Step, str]:
    """Lower ``x,y->target`` (target None: choose the cheapest output order) to a step."""
    if set(x) - set(y) - keep or set(y) - set(x) - keep or len(set(x)) != len(x) or len(set(y)) != len(y):
        out = target or "".join(dict.fromkeys(c for c in x + y if c in keep))
        eq = f"{x},{y}->{out}"
        return _Step("einsum", ops, eq, shape=tuple(sizes[c] for c in out)), out
    summed = [c for c in x if c in y and c not in keep]
    batch = [c for c in x if c in y and c in keep]
    fx = [c for c in x if c not in y]
    fy = [c for c in y if c not in x]
    if target is None:
        target = "".join(batch + fx + fy)
    shape = tuple(sizes[c] for c in target)
    eq = f"{x},{y}->{target}"
    if not summed:  # broadcast product, written in the target order directly
        prep = []
        for t in (x, y):
            perm = tuple(sorted(range(len(t)), key=lambda i: target.index(t[i])))
            bshape = tuple(sizes[c] if c in t else 1 for c in target)
            prep.append((perm, bshape))
        return _Step("mul", ops, eq, tuple(prep), shape=shape), target
    nb = len(batch)
    tb, rest = target[:nb], target[nb:]
    swap, after = False, None
    if set(tb) == set(batch) and set(rest[: len(fx)]) == set(fx):
        left, right, lf, rf = x, y, rest[: len(fx)], rest[len(fx):]
    elif set(tb) == set(batch) and set(rest[: len(fy)]) == set(fy):
        swap = True
        left, right, lf, rf = y, x, rest[: len(fy)], rest[len(fy):]
    else:  # an interleaved output needs a permuted copy after the GEMM
        tb, left, right, lf, rf = "".join(batch), x, y, "".join(fx), "".join(fy)
        natural = tb + lf + rf
        after = tuple(natural.index(c) for c in target)
    bsz = math.prod(sizes[c] for c in tb)
    csz = math.prod(sizes[c] for c in summed)
    lperm = tuple(left.index(c) for c in [*tb, *lf, *summed])
    rperm = tuple(right.index(c) for c in [*tb, *summed, *rf])
    lshape = (bsz, math.prod(sizes[c] for c in lf), csz)
    rshape = (bsz, csz, math.prod(sizes[c] for c in rf))
    natural_out = tb + lf + rf
    return _Step("mm", ops, eq, ((lperm, lshape), (rperm, rshape)), swap, tuple(sizes[c] for c in natural_out), after), target


@lru_cache(maxsize=1024)
def program(equation: str, shapes: tuple[tuple[int, ...], ...]) -> Program:
    """Lower opt_einsum's planned path for ``equation`` to GEMMs and broadcast products.

    Intermediates are produced in the order their next step wants; the last step writes the
    output in C order (so the reshape to dW is a view and ``out=`` can be written directly).
    """
    lhs, output = equation.split("->")
    terms = lhs.split(",")
    sizes = _sizes(terms, shapes)
    out_shape = tuple(sizes[c] for c in output)
    if len(terms) == 1:
        return Program(equation, (_Step("einsum", (0,), equation, shape=out_shape),), out_shape)
    path, _ = opt_einsum.contract_path(equation, *shapes, shapes=True, optimize="auto-hq")
    live = list(terms)
    steps = []
    for k, contraction in enumerate(path):
        ids = tuple(sorted(contraction, reverse=True))
        picked = [live.pop(i) for i in ids]
        final = k == len(path) - 1
        keep = set(output).union(*live) if live else set(output)
        if len(picked) == 2:
            step, res = _pair(picked[0], picked[1], keep, output if final else None, sizes, ids)
        else:
            res = output if final else "".join(dict.fromkeys(c for c in "".join(picked) if c in keep))
            step = _Step("einsum", ids, ",".join(picked) + "->" + res, shape=tuple(sizes[c] for c in res))
        steps.append(step)
        live.append(res)
    return Program(equation, tuple(steps), out_shape, tuple(tuple(c) for c in path))


def _prepare(be: Any, x: Any, perm: tuple[int, ...], shape: tuple[int, ...], dense: bool = False) -> Any:
    """Permute and reshape an operand; ``dense``: make a permuted one C-contiguous first, so a
    broadcast product allocates (and writes) its result in C order."""
    if perm != tuple(range(len(perm))):
        x = be.transpose(x, perm)
        if dense and not be.is_contiguous(x):
            x = x.reshape(-1).reshape(x.shape)
    return x.reshape(shape)


def run_program(prog: Program, operands: list[Any], be: Any, out: Any = None) -> Any:
    """Execute ``prog``; the result has ``prog.out_shape`` in C order (written into ``out`` if given)."""
    if out is None and prog.small:
        result = be.einsum_path(prog.equation, operands, prog.path)
        return result if be.is_contiguous(result) else result.reshape(-1).reshape(prog.out_shape)
    live = list(operands)
    last = len(prog.steps) - 1
    for k, step in enumerate(prog.steps):
        args = [live.pop(i) for i in step.ops]
        target = out if k == last else None
        if step.kind == "mul":
            a = _prepare(be, args[0], *step.prep[0], dense=True)
            b = _prepare(be, args[1], *step.prep[1], dense=True)
            res = be.multiply(a, b, out=target)
        elif step.kind == "mm":
            left, right = (args[1], args[0]) if step.swap else (args[0], args[1])
            a = _prepare(be, left, *step.prep[0])
            b = _prepare(be, right, *step.prep[1])
            if step.after is None and target is not None:
                be.matmul(a, b, out=target.reshape(a.shape[0], a.shape[1], b.shape[2]))
                res = target
            else:
                res = be.matmul(a, b).reshape(step.shape)
                if step.after is not None:
                    res = be.transpose(res, step.after)
                    res = res.reshape(-1).reshape(res.shape) if target is None else res
                if target is not None:
                    res = be.copy_into(target, res)
        else:
            res = opt_einsum.contract(step.equation, *args, backend=be.einsum_backend)
            if target is not None:
                res = be.copy_into(target, res)
        live.append(res.reshape(step.shape) if target is None else target)
    result = live[0]
    if out is None and not be.is_contiguous(result):
        result = result.reshape(-1).reshape(prog.out_shape)
    return result




def check_params(spec: SuperLoRA, params: Mapping[str, Any]) -> None:
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
        elif p.dtype != dtype:
            raise SpecError(f"params[{name!r}]", f"dtype {p.dtype}", f"one dtype for all parameters ({dtype})")


def _batch_info(plan: Any) -> list[tuple]:
    """Per batch, everything group_outputs needs, computed once per plan (keeps calls cheap)."""
    info = getattr(plan, "_exec_info", None)
    if info is None:
        info = []
        for batch in plan.batches:
            t = batch.template
            names = [[g.tensors[i].name for g in batch.groups] for i in range(len(t.tensors))]
            cut = tuple(slice(0, n) for n in t.fold) if t.kron_shape != t.fold else None
            trunc = t.generated if math.prod(t.fold) != t.generated else None
            info.append((batch, names, batch.program, (len(batch.groups), *t.kron_shape), cut, trunc,
                         [g.index for g in batch.groups]))
        plan._exec_info = info
    return info


def group_outputs(spec: SuperLoRA, params: Mapping[str, Any], backend: Any) -> list[Any]:
    """Each group's n entries (after the cut and the projection), as 1-D arrays in group order."""
    plan = spec.plan()
    like = next(iter(params.values()))
    consts = plan.constants(backend, like)
    out: list[Any] = [None] * len(spec.groups)
    for (batch, names, prog, kron, cut, trunc, indices), proj_consts in zip(_batch_info(plan), consts["projections"]):
        if len(indices) > 1:
            operands = [backend.stack([params[n] for n in group_names]) for group_names in names]
        else:
            operands = [params[group_names[0]] for group_names in names]
        x = run_program(prog, operands, backend).reshape(kron)
        if cut is not None:
            x = x[(slice(None), *cut)]
        x = x.reshape(kron[0], -1)
        if trunc is not None:
            x = x[:, :trunc]
        if proj_consts is not None:
            x = batch.template.projection.apply(x, proj_consts, backend)
        for b, g in enumerate(indices):
            out[g] = x[b]
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
             dtype: Any = None, out: Any = None) -> dict[str, Any]:
    """dW for every target (see ``SuperLoRA.contract``); ``out`` writes into caller buffers."""
    be, params = _resolve(spec, params, backend, dtype)
    if out is not None:
        return _contract_into(spec, params, be, out)
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


def _out_views(spec: SuperLoRA, be: Any, out: Any, like: Any) -> tuple[dict[str, Any], Any]:
    """Validate ``out``: name -> buffer per target, plus the flat dW_all buffer (or None)."""
    if not be.supports_out:
        raise SpecError("out", f"a {be.name} array", "None: this backend's arrays are immutable (use the returned dict)")
    flat = None
    if isinstance(out, Mapping):
        if out.keys() != spec.plan().pieces.keys():
            raise SpecError("out", sorted(out)[:5], f"one buffer per target: {[t.name for t in spec.targets][:5]}...")
        views = dict(out)
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


def _contract_into(spec: SuperLoRA, params: Mapping[str, Any], be: Any, out: Any) -> dict[str, Any]:
    """Write dW into caller buffers: the last contraction step writes each group's dW in place.

    Weight-wise groups without cut, projection or shuffle are written directly (a batch of
    identical groups in one batched step when ``out`` is the flat dW_all buffer); anything else
    is contracted and copied in.
    """
    like = next(iter(params.values()))
    views, flat = _out_views(spec, be, out, like)
    plan = spec.plan()
    direct = spec.config["shuffle"] is None
    if direct:
        for batch in plan.batches:
            t = batch.template
            if (batch.needs_cut or t.projection is not None
                    or any(len(g.segments) != 1 or g.segments[0].size != g.size for g in batch.groups)):
                direct = False
                break
    if not direct:
        for name, value in contract(spec, params, backend=be).items():
            be.copy_into(views[name], value)
        return views
    offsets, start = {}, 0
    for target in spec.targets:
        offsets[target.name] = start
        start += target.size
    for batch in plan.batches:
        t = batch.template
        names = [node.name for node in t.tensors]
        first = offsets[batch.groups[0].segments[0].target]
        consecutive = all(offsets[g.segments[0].target] == first + b * t.size for b, g in enumerate(batch.groups))
        bufs_ok = all(be.is_contiguous(views[g.segments[0].target]) for g in batch.groups)
        if batch.batched and flat is not None and consecutive:
            operands = [be.stack([params[g.tensors[i].name] for g in batch.groups]) for i in range(len(names))]
            dst = flat[first : first + len(batch.groups) * t.size].reshape(batch.program.out_shape)
            run_program(batch.program, operands, be, out=dst)
            continue
        prog = program(t.equation, t.shapes)
        for g in batch.groups:
            buf = views[g.segments[0].target]
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
