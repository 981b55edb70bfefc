"""The README's main job: a few SuperLoRA settings on ViT-B/16's query/value weights, their
summaries, and the agreement of every installed backend with NumPy float64.

Each spec is contracted with seeded NON-zero parameters (identical on every backend); the
agreement is the max abs difference of dW from NumPy's, in float64 (float32 for JAX unless
``jax_enable_x64`` is on).

>>> specs = demo_specs()
>>> {name: spec.num_params for name, spec in specs.items()}["LoRA r=8"]
294912
>>> agreement(specs["LoRA r=8"], ["numpy"])["numpy"]["max_abs_diff"]
0.0
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .backends import available_backends, get_backend
from .facade import SuperLoRA
from .presets import group_by_kind, preset_targets
from .projection import Fastfood

__all__ = ["DEMO_SPECS", "agreement", "demo_specs", "run_demo"]

DEMO_SPECS = 4  # how many specs demo_specs() returns


def demo_specs() -> dict[str, SuperLoRA]:
    """ViT-B/16, 12 layers x {query, value} (768x768): LoRA, LoKr, grouped 3-D Tucker with
    Fastfood projection and shuffle, and a LoTR-like stack."""
    targets = preset_targets("vit-b16")
    return {
        "LoRA r=8": SuperLoRA(targets, rank=8),
        "LoKr (dense (x) lora r=8)": SuperLoRA(targets, splits=2, structure=["dense", "lora"], rank=8),
        "Tucker-3D, 4 groups, fastfood 0.5, shuffle": SuperLoRA(
            targets, groups=4, fold="balanced", order=3, rank=8, projection=Fastfood(0.5), shuffle=0),
        "LoTR-like stack (q | v)": SuperLoRA(targets, groups=group_by_kind(targets), fold="stack", rank=8, identity_modes=(0,)),
    }


def _dtype(backend: str) -> str:
    if backend == "jax":
        import jax

        return "float64" if jax.config.jax_enable_x64 else "float32"
    return "float64"


def agreement(spec: SuperLoRA, backends: Sequence[str] | None = None,
              before: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """backend -> {dtype, max_abs_diff from NumPy float64, seconds} for seeded non-zero parameters.

    NumPy float64 is the reference (its own difference is 0 by definition). ``before(backend)``
    is called before each contraction (the reference's is ``numpy``), for progress displays.
    """
    backends = list(available_backends() if backends is None else backends)
    before = before or (lambda backend: None)
    before("numpy")
    start = time.perf_counter()
    reference = spec.contract(backend="numpy", dtype="float64")
    reference_seconds = time.perf_counter() - start
    result = {}
    for name in backends:
        if name == "numpy":  # the reference itself
            result[name] = {"dtype": "float64", "max_abs_diff": 0.0, "seconds": reference_seconds}
            continue
        be, dtype = get_backend(name), _dtype(name)
        before(name)
        start = time.perf_counter()
        out = spec.contract(backend=name, dtype=dtype)
        diff = max(float(np.max(np.abs(be.to_numpy(out[t]).astype(np.float64) - reference[t]))) for t in reference)
        result[name] = {"dtype": dtype, "max_abs_diff": diff, "seconds": time.perf_counter() - start}
    return result


def run_demo(
    echo: Callable[[str], None] = print,
    backends: Sequence[str] | None = None,
    show: Callable[[SuperLoRA], None] | None = None,
    before: Callable[[str, str], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Print every demo spec's summary and its backend agreement; return spec name -> agreement.

    ``show(spec)`` prints a spec (default: ``echo(spec.summary())``); ``before(spec name,
    backend)`` is called before each contraction, for progress displays.
    """
    results = {}
    for name, spec in demo_specs().items():
        echo(f"== {name}")
        if show is None:
            echo(spec.summary())
        else:
            show(spec)
        results[name] = agreement(spec, backends, None if before is None else (lambda b, n=name: before(n, b)))
        for backend, r in results[name].items():
            echo(f"   {backend:<6} {r['dtype']:<8} max|dW - dW_numpy| = {r['max_abs_diff']:.3e}   ({r['seconds']:.2f} s)")
        echo("")
    return results
