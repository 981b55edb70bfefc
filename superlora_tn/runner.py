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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .backends import Backend, get_backend
from .init import FLOAT_DTYPES
from .lowering import Program, program, run_program

if TYPE_CHECKING:
    from .plan import Plan
    from .spec import SpecValue

__all__ = ["get_backend", "params_ok", "runner_for"]

_NONE = object()


def params_ok(plan: Plan, params: Mapping[str, Any]) -> bool:
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


def runner_for(spec: SpecValue, be: Backend, like: Any) -> Callable[[Mapping[str, Any]], dict[str, Any]] | None:
    """The cached runner for ``like``'s backend/dtype/device, or None when the spec needs the general path."""
    plan = spec.plan()
    cache = plan.__dict__.setdefault("_runners", {})
    key = (be.name, be.dtype_of(like), be.device_of(like))
    run = cache.get(key, _NONE)
    if run is _NONE:
        run = cache[key] = _build(spec, plan, be, like) if plan.plain else None
    return run


@dataclass(frozen=True)
class _Job:
    """One einsum call of a runner: a whole batch, or one group of a batch run group by group."""

    names: tuple[tuple[str, ...], ...]  # per operand, the parameter name in each group
    program: Program
    outputs: tuple[tuple[str, tuple[int, ...], float], ...]  # (target, shape, factor left to apply)
    smallest: int  # the operand a shared scale factor multiplies
    factor: float  # one scale factor for every output of the job (1.0: none, or per output)
    tiny: list[int] | None  # the flattened path of a tiny program run as one library einsum
    trunc: int | None  # entries kept of a truncated fold
    batched: bool


def _build(spec: SpecValue, plan: Plan, be: Backend, like: Any) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    shapes = {t.name: t.shape for t in spec.targets}
    jobs: list[_Job] = []
    for lay in plan.layouts:
        batch, t = lay.batch, lay.batch.template
        smallest = min(range(len(t.shapes)), key=lambda i: math.prod(t.shapes[i]))
        batched = batch.batched and not _split(be, like, len(batch.groups) * math.prod(t.fold), math.prod(t.fold))
        parts = [range(len(batch.groups))] if batched else [[b] for b in range(len(batch.groups))]
        prog = batch.program if batched else program(t.equation, t.shapes)
        for members in parts:
            names = tuple(tuple(group_names[b] for b in members) for group_names in lay.names)
            outs = tuple((lay.targets[b], shapes[lay.targets[b]], spec.target_scale(lay.targets[b])) for b in members)
            factors = {o[2] for o in outs}
            factor = factors.pop() if len(factors) == 1 else 1.0
            if factor != 1.0:
                outs = tuple((n, s, 1.0) for n, s, _ in outs)
            tiny = None
            if not batched and prog.small and be.flat_einsum:
                flat = [i for pair in prog.path for i in pair]
                tiny = _contiguous_path(be, prog, flat, like) or flat
            jobs.append(_Job(names, prog, outs, smallest, factor, tiny, lay.trunc, batched))
    produced = [o[0] for job in jobs for o in job.outputs]
    order = [t.name for t in spec.targets]
    reorder = produced != order and tuple(order)

    if len(jobs) == 1 and jobs[0].tiny is not None and jobs[0].factor == 1.0 and jobs[0].trunc is None:
        job = jobs[0]
        eq, ns, flat, (name, shape, _) = job.program.equation, tuple(n[0] for n in job.names), job.tiny, job.outputs[0]

        def run_one(params: Mapping[str, Any]) -> dict[str, Any]:  # the tiny single-group case
            return {name: be.einsum_flat(eq, [params[n] for n in ns], flat).reshape(shape)}

        return run_one

    def run(params: Mapping[str, Any]) -> dict[str, Any]:
        result = {}
        for job in jobs:
            if job.batched:
                ops = [be.stack([params[n] for n in group]) for group in job.names]
            else:
                ops = [params[group[0]] for group in job.names]
            if job.factor != 1.0:
                ops[job.smallest] = ops[job.smallest] * job.factor
            if job.tiny is not None:
                x = be.einsum_flat(job.program.equation, ops, job.tiny)
                if not be.is_contiguous(x):
                    x = x.reshape(-1).reshape(x.shape)
            else:
                x = run_program(job.program, ops, be)
            x = x.reshape(len(job.outputs), -1)
            if job.trunc is not None:
                x = x[:, : job.trunc]
            rows = be.unbind(x) if len(job.outputs) > 1 else (x[0],)  # one op: its backward fills one gradient
            for row, (name, shape, f) in zip(rows, job.outputs):
                result[name] = row.reshape(shape) if f == 1.0 else row.reshape(shape) * f
        return {n: result[n] for n in reorder} if reorder else result

    return run


def _split(be: Backend, like: Any, total: int, each: int) -> bool:
    """Run a batch per group: its fresh result would pass the backend's ``split_bytes`` while
    each group's stays under it (see ``TorchBackend.split_bytes``)."""
    limit = be.split_bytes
    if limit is None:
        return False
    size = getattr(like, "itemsize", None) or like.element_size()
    return total * size >= limit and each * size < limit


def _contiguous_path(be: Backend, prog: Any, flat: list[int], like: Any) -> list[int] | None:
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
