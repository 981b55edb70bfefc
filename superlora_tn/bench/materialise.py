# ruff: noqa: B023  (timed lambdas are called immediately, inside the loop)
"""Case 1: materialise dW (ViT-B/16 q/v set and one 4096x4096 layer) against peers and the floor."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import superlora_tn as slt

from .common import Table, have, median_time

METHODS: dict[str, dict[str, Any]] = {
    "LoRA r=8": dict(rank=8),
    "LoKr r=8": dict(splits=2, structure=["dense", "lora"], rank=8, exact_splits=True),
    "Tucker M=3 r=8": dict(fold="balanced", order=3, rank=8),
    "Tucker M=4 r=8": dict(fold="balanced", order=4, rank=8),
    "LoNKr K=3 r=8": dict(splits=3, rank=8),
}
NAIVE_LIMIT = 3e8  # skip numpy.einsum(optimize=False) beyond this many multiply-adds


def target_sets(quick: bool) -> dict[str, dict[str, tuple[int, int]]]:
    vit = {f"l{i}.{m}": (768, 768) for i in range(12) for m in ("q", "v")}
    return {"ViT-B/16 q,v (24x768^2)": vit, "4096^2": {"w": (4096, 4096)}}


def _peft_layers(kind: str, targets: dict[str, tuple[int, int]]) -> list[Any] | None:
    if not have("peft"):
        return None
    import torch
    from torch import nn

    layers = []
    for out_f, in_f in targets.values():
        base = nn.Linear(in_f, out_f, bias=False)
        if kind == "LoKr r=8":
            from peft import LoKrConfig
            from peft.tuners.lokr.layer import Linear

            layer = Linear(base, "default", config=LoKrConfig(r=8, alpha=8, init_weights=False), r=8, alpha=8)
        else:
            from peft import LoraConfig
            from peft.tuners.lora.layer import Linear

            layer = Linear(base, "default", config=LoraConfig(r=8, lora_alpha=8), r=8, lora_alpha=8)
        layer.requires_grad_(False)
        layers.append(layer)
    torch.manual_seed(0)
    return layers


def run(table: Table, repeats: int, quick: bool) -> None:
    import torch

    for set_name, targets in target_sets(quick).items():
        n_entries = sum(math.prod(s) for s in targets.values())
        floor_t = torch.empty(n_entries)
        floor_n = np.empty(n_entries, dtype=np.float32)
        for method, kw in METHODS.items():
            case = f"{set_name} {method}"
            spec = slt.SuperLoRA(targets, **kw)
            p_np = spec.init("numpy", zero_init=False, dtype="float32")
            p_t = {k: torch.from_numpy(v) for k, v in p_np.items()}
            table.add(case, "floor: write bytes (torch fill_)", median_time(lambda: floor_t.fill_(1.0), repeats))
            ref = "floor: write bytes (torch fill_)"
            buf_t = torch.empty(n_entries)
            buf_n = np.empty(n_entries, dtype=np.float32)
            table.add(case, "ours torch out= (reused buffer)", median_time(lambda: spec.contract(p_t, out=buf_t), repeats), ref)
            table.add(case, "ours numpy out= (reused buffer)", median_time(lambda: spec.contract(p_np, out=buf_n), repeats),
                      "floor: write bytes (numpy fill)")
            table.add(case, "floor: write bytes (numpy fill)", median_time(lambda: floor_n.fill(1.0), repeats))
            table.add(case, "ours torch fresh", median_time(lambda: spec.contract(p_t), repeats), ref)
            table.add(case, "ours numpy fresh", median_time(lambda: spec.contract(p_np), repeats), ref)
            _jax(table, case, spec, p_np, repeats, ref)
            _peers(table, case, method, spec, targets, p_t, p_np, repeats, ref)


def _jax(table: Table, case: str, spec: Any, p_np: dict, repeats: int, ref: str) -> None:
    if not have("jax"):
        table.add(case, "ours jax (jit) fresh", None, note="jax not installed")
        return
    import jax

    p_j = {k: jax.numpy.asarray(v) for k, v in p_np.items()}
    fn = jax.jit(lambda p: spec.contract(p))
    table.add(case, "ours jax (jit) fresh", median_time(lambda: jax.block_until_ready(fn(p_j)), repeats), ref)


def _peers(table: Table, case: str, method: str, spec: Any, targets: dict, p_t: dict, p_np: dict, repeats: int, ref: str) -> None:
    import torch

    ours = "ours torch fresh"
    if method == "LoRA r=8":
        pairs = [(p_t[f"g{g.index}_k0_A0"], p_t[f"g{g.index}_k0_A1"]) for g in spec.groups]
        table.add(case, "plain B @ A.T per layer (torch, fresh)", median_time(lambda: [a @ b.T for a, b in pairs], 3), ours)
        outs = [torch.empty(a.shape[0], b.shape[0]) for a, b in pairs]
        table.add(case, "plain B @ A.T per layer (torch, out=)", median_time(
            lambda: [torch.matmul(a, b.T, out=o) for (a, b), o in zip(pairs, outs)], 3), "ours torch out= (reused buffer)")
    if method in ("LoRA r=8", "LoKr r=8"):
        layers = _peft_layers(method, targets)
        impl = f"PEFT {method.split()[0]} get_delta_weight (all layers)"
        if layers is None:
            table.add(case, impl, None, note="peft not installed")
        else:
            with torch.no_grad():
                table.add(case, impl, median_time(lambda: [m.get_delta_weight("default") for m in layers], 3), ours)
    if method.startswith("Tucker"):
        if not have("tensorly"):
            table.add(case, "tensorly tucker_to_tensor (torch)", None, note="tensorly not installed")
        else:
            import tensorly as tl
            from tensorly.tenalg.core_tenalg import mode_dot  # noqa: F401  (import check)

            for be_name, params, mine in (("pytorch", p_t, ours), ("numpy", p_np, "ours numpy fresh")):
                tl.set_backend(be_name)
                facs = [(params[f"g{g.index}_k0_core"], [params[f"g{g.index}_k0_A{m}"] for m in range(len(g.fold))]) for g in spec.groups]
                table.add(case, f"tensorly tucker_to_tensor ({be_name})", median_time(
                    lambda facs=facs: [tl.tucker_to_tensor(f) for f in facs], 3), mine)
            tl.set_backend("numpy")
    batch = spec.plan().batches[0]
    t = batch.template
    flops = math.prod(_sizes(t).values()) * len(spec.groups)
    if flops > NAIVE_LIMIT:
        table.add(case, "numpy.einsum(optimize=False)", None, note=f"skipped: {flops / 1e9:.1f} G multiply-adds")
    else:
        ops = [np.stack([p_np[g.tensors[i].name] for g in batch.groups]) if batch.batched else p_np[t.tensors[i].name]
               for i in range(len(t.tensors))]
        table.add(case, "numpy.einsum(optimize=False)", median_time(lambda: np.einsum(batch.equation, *ops, optimize=False), 1),
                  "ours numpy fresh")


def _sizes(t: Any) -> dict[str, int]:
    return {c: n for node in t.tensors for c, n in zip(node.subscripts, node.shape)}
