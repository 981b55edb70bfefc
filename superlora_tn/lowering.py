"""Lowering a contraction to backend calls: opt_einsum plans the order, each pairwise step
becomes one (batched) GEMM or one broadcast product, and the last step writes the output in C
order (so reshapes to dW are views and ``out=`` buffers can be written directly). Tucker
networks run as a chain of rotating GEMMs (``rotation.py``).

>>> prog = program("ab,bc->ac", ((2, 3), (3, 4)))
>>> [s.kind for s in prog.steps], prog.out_shape
(['mm'], (2, 4))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import opt_einsum

from .rotation import Rotation, detect, run_rotation

if TYPE_CHECKING:
    from .backends import Backend

__all__ = ["SMALL_OUTPUT", "Program", "program", "run_program"]


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
    shapes: tuple[tuple[int, ...], ...] = ()
    rotation: Rotation | None = None  # Tucker: run as a chain of rotating GEMMs (rotation.py)

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
    return Program(equation, tuple(steps), out_shape, tuple(tuple(c) for c in path), shapes, detect(equation))


def _prepare(be: Backend, x: Any, perm: tuple[int, ...], shape: tuple[int, ...], dense: bool = False) -> Any:
    """Permute and reshape an operand; ``dense``: make a permuted one C-contiguous first, so a
    broadcast product allocates (and writes) its result in C order."""
    if perm != tuple(range(len(perm))):
        x = be.transpose(x, perm)
        if dense and not be.is_contiguous(x):
            x = x.reshape(-1).reshape(x.shape)
    return x.reshape(shape)


def run_program(prog: Program, operands: list[Any], be: Backend, out: Any = None) -> Any:
    """Execute ``prog``; the result has ``prog.out_shape`` in C order (written into ``out`` if given)."""
    if out is None and prog.small:
        result = be.einsum_path(prog.equation, operands, prog.path)
        return result if be.is_contiguous(result) else result.reshape(-1).reshape(prog.out_shape)
    if prog.rotation is not None:
        return run_rotation(prog.rotation, operands, be, prog.out_shape, out)
    if out is None and prog.steps[-1].kind != "einsum":
        out = be.fresh_out(prog.out_shape, operands)
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
