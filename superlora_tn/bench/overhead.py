"""Case 2: per-call overhead of contract on a tiny network (Tucker, rank 4, fold (16,16,16))."""

from __future__ import annotations

import itertools

import opt_einsum

import superlora_tn as slt

from .common import Table, median_time


def run(table: Table, repeats: int, quick: bool) -> None:
    import torch

    spec = slt.SuperLoRA({"w": (16, 256)}, fold=(16, 16, 16), rank=4)
    p = spec.init("torch", zero_init=False, dtype="float32")
    g = spec.groups[0]
    eq = g.equation
    ops = [p[t.name] for t in g.tensors]
    path, _ = opt_einsum.contract_path(eq, *ops, optimize="auto-hq")
    flat = list(itertools.chain.from_iterable(path))
    expr = opt_einsum.contract_expression(eq, *(o.shape for o in ops), optimize="auto-hq")
    n = repeats * 200
    case = "tiny Tucker (16,16,16) r=4, torch"
    ref = "raw torch einsum, precomputed path"
    table.add(case, ref, median_time(lambda: torch._VF.einsum(eq, ops, path=flat), n, 50), note="torch._VF.einsum(eq, ops, path=...)")
    table.add(case, "ours spec.contract (cached plan)", median_time(lambda: spec.contract(p), n, 50), ref)
    table.add(case, "torch.einsum (path searched per call)", median_time(lambda: torch.einsum(eq, *ops), n, 50), ref)
    table.add(case, "opt_einsum.contract (no cached expr)", median_time(lambda: opt_einsum.contract(eq, *ops), n, 50), ref)
    table.add(case, "opt_einsum cached expression", median_time(lambda: expr(*ops), n, 50), ref)
