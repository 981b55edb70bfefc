"""Compiled runners for the fresh (non-``out``) contract: per (plan, backend, dtype, device), one
closure that does only the calls a spec needs.

``execute.contract`` is general (cuts, projections, shuffles, targets spanning groups). For the
common case (every target is exactly one group's whole output, no cut, projection or shuffle)
the runner below resolves everything once (operand names, programs, output shapes, scale
factors, einsum paths) so a call is: a cheap parameter check, the backend calls, views.

- Tiny programs run as ONE library einsum along the cached path.
- Large groups run one program per group even when they are batched, so each target gets its
  own allocation: the allocator recycles same-sized blocks between calls, whereas one big
  batched result (> glibc's 32 MB mmap threshold) page-faults on every call.
- A target's scale factor multiplies the smallest operand (not the output: no extra pass).

>>> import numpy as np, superlora_tn as slt
>>> spec = slt.SuperLoRA({"w": (4, 6)}, rank=2)
>>> p = spec.init(zero_init=False)
>>> run = runner_for(spec, get_backend("numpy"), p["g0_k0_A0"])
>>> np.allclose(run(p)["w"], spec.contract(p)["w"])
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .backends import get_backend

if TYPE_CHECKING:
    from .spec import SuperLoRA

__all__ = ["SPLIT_OUTPUT", "backend_of", "get_backend", "params_ok", "runner_for"]

SPLIT_OUTPUT = 1 << 16  # entries per group from which a batch runs per group when fresh

_NONE = object()


def params_ok(plan: Any, params: Mapping[str, Any]) -> bool:
    """Cheap check: names, shapes and one dtype as the plan expects (False: run the full check)."""
    items = plan.__dict__.get("_param_items")
    if items is None:
        items = plan._param_items = tuple(plan.param_shapes.items())
    if len(params) != len(items):
        return False
    try:
        dtype = None
        for name, shape in items:
            p = params[name]
            if p.shape != shape:
                return False
            if dtype is None:
                dtype = p.dtype
            elif p.dtype != dtype:
                return False
    except (KeyError, AttributeError, TypeError):
        return False
    return True


def _fits(spec: SuperLoRA, plan: Any) -> bool:
    if spec.config["shuffle"] is not None:
        return False
    for batch in plan.batches:
        if batch.needs_cut or batch.template.projection is not None:
            return False
        for g in batch.groups:
            if len(g.segments) != 1 or len(plan.pieces[g.segments[0].target]) != 1 or g.segments[0].size != g.size:
                return False
    return True


def runner_for(spec: SuperLoRA, be: Any, like: Any) -> Callable[[Mapping[str, Any]], dict[str, Any]] | None:
    """The cached runner for ``like``'s backend/dtype/device, or None when the spec needs the general path."""
    plan = spec.plan()
    cache = plan.__dict__.setdefault("_runners", {})
    key = (be.name, be.dtype_of(like), be.device_of(like))
    run = cache.get(key, _NONE)
    if run is _NONE:
        run = cache[key] = _build(spec, plan, be, like) if _fits(spec, plan) else None
    return run


def _build(spec: SuperLoRA, plan: Any, be: Any, like: Any) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    from .execute import program, run_program

    targets = {t.name: t for t in spec.targets}
    order = {t.name: i for i, t in enumerate(spec.targets)}
    jobs: list[tuple] = []  # (target index, kind, payload)
    for batch in plan.batches:
        t = batch.template
        smallest = min(range(len(t.shapes)), key=lambda i: math.prod(t.shapes[i]))
        if batch.batched and t.size < SPLIT_OUTPUT:
            names = [[g.tensors[i].name for g in batch.groups] for i in range(len(t.tensors))]
            outs = [(g.segments[0].target, targets[g.segments[0].target].shape, spec.target_scale(g.segments[0].target))
                    for g in batch.groups]
            jobs.append((order[outs[0][0]], "batch", (names, batch.program, outs)))
            continue
        prog = program(t.equation, t.shapes)
        for g in batch.groups:
            name = g.segments[0].target
            jobs.append((order[name], "single", ([n.name for n in g.tensors], prog, name, targets[name].shape,
                                                 spec.target_scale(name), smallest)))
    jobs.sort(key=lambda j: j[0])
    fast_einsum = getattr(be, "einsum_flat", None)
    single = []
    for _, kind, payload in jobs:
        if kind == "single":
            names, prog, name, shape, factor, smallest = payload
            flat = [i for pair in prog.path for i in pair]
            single.append((names, prog, name, shape, factor, smallest, prog.small and fast_einsum is not None, flat))
        else:
            single.append(payload)
    if len(single) == 1 and len(single[0]) == 8 and single[0][6] and single[0][4] == 1.0:
        names, prog, name, shape, _, _, _, flat = single[0]
        eq, ns = prog.equation, tuple(names)
        flat = _contiguous_path(be, prog, flat, like) or flat

        def run_one(params: Mapping[str, Any]) -> dict[str, Any]:  # the tiny single-group case
            r = fast_einsum(eq, [params[n] for n in ns], flat)
            return {name: (r if be.is_contiguous(r) else r.contiguous()).view(shape)}

        return run_one

    produced: list[str] = []
    for job in single:
        produced += [job[2]] if len(job) == 8 else [o[0] for o in job[2]]
    reorder = produced != list(order) and tuple(order)

    def run(params: Mapping[str, Any]) -> dict[str, Any]:
        result = {}
        for job in single:
            if len(job) == 8:
                names, prog, name, shape, factor, smallest, tiny, flat = job
                ops = [params[n] for n in names]
                if factor != 1.0:
                    ops[smallest] = ops[smallest] * factor
                if tiny:
                    r = fast_einsum(prog.equation, ops, flat)
                    if not be.is_contiguous(r):
                        r = r.reshape(-1).reshape(r.shape)
                else:
                    r = run_program(prog, ops, be)
                result[name] = r.reshape(shape)
            else:
                names, prog, outs = job
                x = run_program(prog, [be.stack([params[n] for n in group]) for group in names], be)
                for b, (name, shape, factor) in enumerate(outs):
                    result[name] = x[b].reshape(shape) if factor == 1.0 else x[b].reshape(shape) * factor
        return {n: result[n] for n in reorder} if reorder else result

    return run


def _contiguous_path(be: Any, prog: Any, flat: list[int], like: Any) -> list[int] | None:
    """A pairwise path, at most 2x the planned FLOPs, along which the library's einsum returns the
    output already C-contiguous (saves the copy); tried once on zeros. None: keep the plan's."""
    import itertools

    import numpy as np
    import opt_einsum

    n = len(prog.path) + 1
    if n > 5:
        return None
    shapes = [tuple(s) for s in prog.shapes]
    zeros = [be.asarray(np.zeros(s), dtype=be.dtype_of(like), device=be.device_of(like)) for s in shapes]
    if be.is_contiguous(be.einsum_flat(prog.equation, zeros, flat)):
        return None
    best = opt_einsum.contract_path(prog.equation, *shapes, shapes=True, optimize=list(prog.path))[1].opt_cost

    def paths(k: int) -> Any:
        if k == 1:
            yield []
            return
        for pair in itertools.combinations(range(k), 2):
            for rest in paths(k - 1):
                yield [pair, *rest]

    for path in paths(n):
        cost = opt_einsum.contract_path(prog.equation, *shapes, shapes=True, optimize=path)[1].opt_cost
        cand = [i for pair in path for i in pair]
        if cost <= 2 * best and be.is_contiguous(be.einsum_flat(prog.equation, zeros, cand)):
            return cand
    return None


def backend_of(first: Any, _cache: dict = {}) -> Any:  # noqa: B006  (a per-type memo)
    """``backend_for`` memoised on the array type."""
    be = _cache.get(type(first))
    if be is None:
        from .backends import backend_for

        be = _cache[type(first)] = backend_for(first)
    return be


