"""Compiled runners for the fresh (non-``out``) contract: per (plan, backend, dtype, device), one
closure that does only the calls a spec needs.

``execute.contract`` is general (cuts, projections, shuffles, targets spanning groups). For the
common case (every target is exactly one group's whole output, no cut, projection or shuffle)
the runner below resolves everything once (operand names, programs, output shapes, scale
factors, einsum paths) so a call is: a cheap parameter check, the backend calls, views.

- Tiny programs run as ONE library einsum along the cached path.
- Identical groups run as one batched program; each target is a view of its row of the result.
  On torch, a batch whose fresh result would exceed glibc's 32 MiB mmap threshold runs one
  program per group instead: each target gets its own block, which the allocator recycles
  between calls, whereas one big block is page-faulted on every call (``split_bytes``).
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
from .init import FLOAT_DTYPES

if TYPE_CHECKING:
    from .spec import SuperLoRA

__all__ = ["get_backend", "params_ok", "runner_for"]

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
    return str(dtype).endswith(FLOAT_DTYPES)


def _fits(spec: SuperLoRA, plan: Any) -> bool:
    """Every target is one group's whole output: no Kronecker cut, projection or shuffle (a
    truncated fold is fine: the target is a prefix view of the group's output)."""
    if spec.config["shuffle"] is not None:
        return False
    for batch in plan.batches:
        t = batch.template
        if t.kron_shape != t.fold or t.projection is not None:
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
    from .lowering import program, run_program

    targets = {t.name: t for t in spec.targets}
    fast_einsum = getattr(be, "einsum_flat", None)
    jobs: list[tuple] = []  # (names per operand, program, outputs, smallest operand, batch factor, tiny path or None)
    for batch in plan.batches:
        t = batch.template
        smallest = min(range(len(t.shapes)), key=lambda i: math.prod(t.shapes[i]))
        batched = batch.batched and not _split(be, like, len(batch.groups) * math.prod(t.fold), math.prod(t.fold))
        groups = [[g] for g in batch.groups] if not batched else [list(batch.groups)]
        prog = batch.program if batched else program(t.equation, t.shapes)
        trunc = t.generated if math.prod(t.fold) != t.generated else None
        for gs in groups:
            names = [[g.tensors[i].name for g in gs] for i in range(len(t.tensors))]
            outs = [(g.segments[0].target, targets[g.segments[0].target].shape, spec.target_scale(g.segments[0].target)) for g in gs]
            factors = {o[2] for o in outs}
            factor = factors.pop() if len(factors) == 1 else 1.0
            if factor != 1.0:
                outs = [(n, s, 1.0) for n, s, _ in outs]
            tiny = None
            if not batched and prog.small and fast_einsum is not None:
                flat = [i for pair in prog.path for i in pair]
                tiny = _contiguous_path(be, prog, flat, like) or flat
            jobs.append((names, prog, outs, smallest, factor, tiny, trunc, batched))
    produced = [o[0] for job in jobs for o in job[2]]
    order = [t.name for t in spec.targets]
    reorder = produced != order and tuple(order)

    if len(jobs) == 1 and jobs[0][5] is not None and jobs[0][4] == 1.0 and jobs[0][6] is None:
        names, prog, outs, _, _, flat, _, _ = jobs[0]
        eq, ns, (name, shape, _) = prog.equation, tuple(n[0] for n in names), outs[0]

        def run_one(params: Mapping[str, Any]) -> dict[str, Any]:  # the tiny single-group case
            r = fast_einsum(eq, [params[n] for n in ns], flat)
            return {name: (r if be.is_contiguous(r) else r.contiguous()).view(shape)}

        return run_one

    def run(params: Mapping[str, Any]) -> dict[str, Any]:
        result = {}
        for names, prog, outs, smallest, factor, tiny, trunc, batched in jobs:
            ops = [be.stack([params[n] for n in group]) for group in names] if batched else [params[group[0]] for group in names]
            if factor != 1.0:
                ops[smallest] = ops[smallest] * factor
            if tiny is not None:
                x = fast_einsum(prog.equation, ops, tiny)
                if not be.is_contiguous(x):
                    x = x.reshape(-1).reshape(x.shape)
            else:
                x = run_program(prog, ops, be)
            x = x.reshape(len(outs), -1)
            if trunc is not None:
                x = x[:, :trunc]
            rows = be.unbind(x) if len(outs) > 1 else (x[0],)  # one op: its backward fills one gradient
            for row, (name, shape, f) in zip(rows, outs):
                result[name] = row.reshape(shape) if f == 1.0 else row.reshape(shape) * f
        return {n: result[n] for n in reorder} if reorder else result

    return run


def _split(be: Any, like: Any, total: int, each: int) -> bool:
    """Run a batch per group: its fresh result would pass the backend's ``split_bytes`` while
    each group's stays under it (see ``TorchBackend.split_bytes``)."""
    limit = be.split_bytes
    if limit is None:
        return False
    size = getattr(like, "itemsize", None) or like.element_size()
    return total * size >= limit and each * size < limit


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
