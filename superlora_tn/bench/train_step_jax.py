"""``python -m superlora_tn.bench.train_step_jax [LAYERS ...]``: the JAX ``apply`` training step for the same settings as ``train_step``.

``layers`` stacked 1024 x 1024 weights, 64 rows, a tanh MLP and a squared loss; one jitted
step = ``apply`` (W + dW for every target) + forward + ``grad`` over the adapter + SGD. LoRA is
the reference; the ratio of a projected spec to the same spec without projection is the one the
docs hold to 3x.
"""

from __future__ import annotations

import time
from typing import Any

SETTINGS: dict[str, dict[str, Any]] = {
    "lora r=8": dict(rank=8),
    "tucker groups=weight": dict(groups="weight", fold="balanced", order=3, rank=8),
    "tucker groups=1": dict(groups=1, fold="balanced", order=3, rank=8),
    "tucker groups=1 + fastfood 0.1": dict(groups=1, fold="balanced", order=3, rank=8, projection=0.1),
}
WIDTH = 1024
ROWS = 64


def _step_time(layers: int, setting: dict[str, Any], steps: int) -> tuple[float, float]:
    import jax
    import jax.numpy as jnp

    from superlora_tn import Fastfood, SuperLoRA
    from superlora_tn.jax import apply, init

    kw = dict(setting)
    if "projection" in kw:
        kw["projection"] = Fastfood(kw["projection"])
    names = [f"l{i}" for i in range(layers)]
    spec = SuperLoRA({n: (WIDTH, WIDTH) for n in names}, **kw)
    key = jax.random.PRNGKey(0)
    base = {n: jax.random.normal(jax.random.fold_in(key, i), (WIDTH, WIDTH)) / WIDTH**0.5 for i, n in enumerate(names)}
    x = jax.random.normal(jax.random.fold_in(key, 999), (ROWS, WIDTH))
    adapter = init(spec, zero_init=False)

    def loss(a: Any) -> Any:
        w = apply(base, a, spec)
        h = x
        for n in names:
            h = jnp.tanh(h @ w[n].T)
        return jnp.mean(h**2)

    @jax.jit
    def step(a: Any) -> Any:
        g = jax.grad(loss)(a)
        return {k: a[k] - 1e-3 * g[k] for k in a}

    t = time.perf_counter()
    adapter = jax.block_until_ready(step(adapter))
    first = time.perf_counter() - t
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        adapter = jax.block_until_ready(step(adapter))
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2], first


def run(layers: list[int], steps: int) -> str:
    lines = ["| layers | JAX setting | step (s) | vs LoRA | first step (s) |", "|---|---|---|---|---|"]
    for n in layers:
        ref = None
        for name, setting in SETTINGS.items():
            step, first = _step_time(n, setting, steps)
            ref = ref or step
            lines.append(f"| {n} | {name} | {step:.3f} | {step / ref:.2f}x | {first:.2f} |")
            print(f"  jax L={n:<3} {name:<32} step {step:.3f} s  first {first:.2f} s", flush=True)
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(run([int(a) for a in sys.argv[1:]] or [12], 5))
