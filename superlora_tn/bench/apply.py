# ruff: noqa: B023  (timed lambdas are called immediately, inside the loop)
"""Case 3: apply an adapter to activations (hidden 4096): factored vs materialise-then-matmul vs PEFT."""

from __future__ import annotations

import torch

import superlora_tn as slt
from superlora_tn.factored import apply_delta

from .common import Table, have, median_time

HIDDEN = 4096
METHODS = {
    "LoRA r=8": dict(rank=8),
    "LoKr r=8": dict(splits=2, structure=["dense", "lora"], rank=8, exact_splits=True),
}


def run(table: Table, repeats: int, quick: bool) -> None:
    tokens_list = (32,) if quick else (1, 32, 64, 512, 4096)
    gen = torch.Generator().manual_seed(0)
    W = torch.randn(HIDDEN, HIDDEN, generator=gen) / HIDDEN**0.5
    for method, kw in METHODS.items():
        spec = slt.SuperLoRA({"w": (HIDDEN, HIDDEN)}, **kw)
        p = {k: v.requires_grad_(True) for k, v in spec.init("torch", zero_init=False, dtype="float32").items()}
        peft_layer = _peft(method, W)
        for tokens in tokens_list:
            reps = 1 if tokens >= 4096 else repeats * 3 if tokens == 1 else repeats  # 1 token: ~3 ms, noisy
            case = f"{method} apply, {tokens} tokens"
            x = torch.randn(tokens, HIDDEN, generator=gen)
            base = "base matmul x @ W.T"
            with torch.no_grad():
                table.add(case, base, median_time(lambda x=x: x @ W.T, reps))
                table.add(case, "fwd ours factored (base + apply_delta)", median_time(
                    lambda x=x: x @ W.T + apply_delta(spec, p, "w", x), reps), base)
                table.add(case, "fwd materialise-then-matmul", median_time(
                    lambda x=x: x @ (W + spec.contract(p)["w"]).T, reps), base)
                if peft_layer is not None:
                    table.add(case, f"fwd PEFT {method.split()[0]} layer", median_time(lambda x=x: peft_layer(x), reps), base)
            if tokens > 512:
                continue
            xg = x.clone().requires_grad_(True)
            step = "train step ours factored"

            def ours(xg=xg) -> None:
                (xg @ W.T + apply_delta(spec, p, "w", xg)).sum().backward()

            def mat(xg=xg) -> None:
                (xg @ (W + spec.contract(p)["w"]).T).sum().backward()

            table.add(case, step, median_time(ours, reps))
            table.add(case, "train step base layer only (no adapter)", median_time(
                lambda xg=xg: (xg @ W.T).sum().backward(), reps), step)
            table.add(case, "train step materialise-then-matmul", median_time(mat, reps), step)
            if peft_layer is not None:
                table.add(case, f"train step PEFT {method.split()[0]} layer", median_time(
                    lambda xg=xg: peft_layer(xg).sum().backward(), reps), step)
            else:
                table.add(case, "PEFT layer", None, note="peft not installed")


def _peft(method: str, W: torch.Tensor) -> torch.nn.Module | None:
    if not have("peft"):
        return None
    base = torch.nn.Linear(HIDDEN, HIDDEN, bias=False)
    with torch.no_grad():
        base.weight.copy_(W)
    base.weight.requires_grad_(False)
    if method == "LoKr r=8":
        from peft import LoKrConfig
        from peft.tuners.lokr.layer import Linear

        return Linear(base, "default", config=LoKrConfig(r=8, alpha=8, init_weights=False), r=8, alpha=8)
    from peft import LoraConfig
    from peft.tuners.lora.layer import Linear as LoraLinear

    return LoraLinear(base, "default", config=LoraConfig(r=8, lora_alpha=8), r=8, lora_alpha=8)
