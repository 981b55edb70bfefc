"""Training steps at model scale: PEFT LoRA against ``inject`` with SuperLoRA's own settings.

``python -m superlora_tn.bench.train_step [--layers 6 12] [--steps 5] [--configs ...]`` runs every
config in its OWN process (so peak memory is per config), on a GPT-2-medium-width model
(``GPT2Config(n_embd=1024, n_head=16)``, random weights, batch 1 x 64 tokens, 1 thread), with
every ``c_attn``, ``c_proj`` and ``c_fc`` as targets and AdamW over the trainable parameters.

Per config it reports the median steady step, the first step (which includes building plans and
projection constants) and the extra peak RSS over the model alone. Ratios are against PEFT LoRA
r=8 and against the floor: the same targets trained directly with SGD, no adapter (a grouped
adapter whose fold mixes targets must build dW, so it cannot cost less than training W).
``--jax`` adds the JAX ``apply`` step of the same specs on stacked 1024 x 1024 targets.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

CONFIGS: dict[str, dict[str, Any] | None] = {
    "peft_lora": None,
    "floor_sgd": None,
    "inject_lora": dict(rank=8),
    "tucker_weight": dict(groups="weight", fold="balanced", order=3, rank=8),
    "tucker_g1": dict(groups=1, fold="balanced", order=3, rank=8),
    "tucker_g1_fastfood": dict(groups=1, fold="balanced", order=3, rank=8, projection=("Fastfood", 0.1)),
    "tucker_g1_low": dict(groups=1, fold="balanced", order=3, rank=8, memory="low"),
    "tucker_g1_fastfood_low": dict(groups=1, fold="balanced", order=3, rank=8, projection=("Fastfood", 0.1), memory="low"),
}
TARGETS = r".*\.(c_attn|c_proj|c_fc)"
TOKENS = 64


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _model(layers: int) -> Any:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(n_embd=1024, n_head=16, n_layer=layers, n_positions=TOKENS)
    return GPT2LMHeadModel(cfg).eval()


def one(config: str, layers: int, steps: int) -> dict[str, Any]:
    """Run ``config`` in this process: first step, median steady step, extra peak RSS."""
    import torch

    torch.set_num_threads(1)
    model = _model(layers)
    ids = torch.randint(0, 50257, (1, TOKENS), generator=torch.Generator().manual_seed(1))
    model(ids)  # warm the base model's kernels before the baseline is read
    base_rss = _rss_mb()
    spec = CONFIGS[config]
    memory = "auto"
    if config == "peft_lora":
        from peft import LoraConfig, get_peft_model

        net = get_peft_model(model, LoraConfig(r=8, lora_alpha=8, target_modules=["c_attn", "c_proj", "c_fc"],
                                               fan_in_fan_out=True, init_lora_weights=False))
        params = [p for p in net.parameters() if p.requires_grad]
        opt: Any = torch.optim.AdamW(params, lr=1e-4)
    elif config == "floor_sgd":
        import re

        net = model
        for p in model.parameters():
            p.requires_grad_(False)
        params = [m.weight for n, m in model.named_modules() if re.fullmatch(TARGETS, n)]
        for p in params:
            p.requires_grad_(True)
        opt = torch.optim.SGD(params, lr=1e-4)
    else:
        from superlora_tn import Fastfood
        from superlora_tn.torch import inject

        args = dict(spec or {})
        memory = args.pop("memory", "auto")
        if "projection" in args:
            args["projection"] = Fastfood(args["projection"][1])
        extra = {} if memory == "auto" else {"memory": memory}
        net = inject(model, targets=TARGETS, spec=args, zero_init=False, **extra)
        params = [p for p in net.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-4)

    def step() -> float:
        t = time.perf_counter()
        loss = net(ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t

    first = step()
    times = sorted(step() for _ in range(steps))
    entries = sum(p.numel() for n, m in model.named_modules() if _is_target(n) for p in [m.weight])
    return {"config": config, "layers": layers, "first": first, "step": times[len(times) // 2],
            "extra_mb": _peak_mb() - base_rss, "dw_all_mb": entries * 4 / 2**20, "memory": memory}


def _is_target(name: str) -> bool:
    import re

    return re.fullmatch(TARGETS, name) is not None


def run_all(configs: list[str], layers: list[int], steps: int) -> list[dict[str, Any]]:
    rows = []
    for n in layers:
        for c in configs:
            proc = subprocess.run([sys.executable, "-m", "superlora_tn.bench.train_step", "--one", c, "--layers", str(n),
                                   "--steps", str(steps)], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1",
                                   "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
            if proc.returncode != 0:
                print(f"  {c} L={n}: failed\n{proc.stderr[-2000:]}", flush=True)
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"  L={n:<3} {c:<24} step {row['step']:.3f} s  first {row['first']:.2f} s  extra {row['extra_mb']:.0f} MB", flush=True)
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    lines = ["| layers | config | step (s) | vs PEFT LoRA | vs floor | first step (s) | first / step | extra peak RSS (MB) | dW_all (MB) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ref = {x["config"]: x for x in rows if x["layers"] == r["layers"]}
        peft = ref.get("peft_lora", {}).get("step")
        floor = ref.get("floor_sgd", {}).get("step")
        vs_peft = f"{r['step'] / peft:.2f}x" if peft else "n/a"
        vs_floor = f"{r['step'] / floor:.2f}x" if floor else "n/a"
        lines.append(f"| {r['layers']} | {r['config']} | {r['step']:.3f} | {vs_peft} | {vs_floor} | {r['first']:.2f} | "
                     f"{r['first'] / r['step']:.1f} | {r['extra_mb']:.0f} | {r['dw_all_mb']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m superlora_tn.bench.train_step", description=__doc__)
    parser.add_argument("--layers", type=int, nargs="+", default=[6, 12])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--one", choices=list(CONFIGS), help=argparse.SUPPRESS)
    parser.add_argument("--jax", action="store_true", help="also time the JAX apply step of the same specs")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one, args.layers[0], args.steps)))
        return 0
    rows = run_all(args.configs, args.layers, args.steps)
    print()
    print(render(rows))
    if args.jax:
        from .train_step_jax import run as run_jax

        print()
        print(run_jax(args.layers, args.steps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
