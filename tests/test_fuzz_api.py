"""Issue 12: a property test over the constructor and the public API. Whatever it is given, only
a ``SpecError`` escapes, and a spec that is accepted gives correct values: an exact parameter
count, a JSON round trip, dW of the targets' shapes, zero at init and finite otherwise.

Adversarial values mix valid ones with NumPy scalars and arrays, bools, huge and negative
numbers, NaN and inf, wrong containers and unknown keywords. Fast: a few seconds in all.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import superlora_tn as slt
from superlora_tn.errors import SpecError

ALLOWED = (SpecError,)  # the one documented exception type for bad input
EXAMPLES = {"constructor": 400, "api": 150, "integrations": 60}
BIG = 1 << 14  # contract (actually allocate) only specs of at most this many entries

weird = st.sampled_from([
    None, True, False, 0, -1, -5, 1.5, float("nan"), float("inf"), 10**400, 2**61 - 1, "x", "", b"x", (), [], {},
    (0,), (True,), [[]], np.int64(3), np.float32(0.5), np.bool_(True), np.array([2, 2]), np.array(3), object(),
    slt.Projection(0.5), slt.Fastfood(0.5), slt.Gaussian(0.25), {"w": 0}, {"zz": 1.0}, [2, (2, 2)], 10**9, 2000,
])
small_int = st.one_of(st.integers(1, 5), st.integers(1, 5).map(np.int64))
VALID = {
    "groups": st.one_of(st.just("weight"), st.integers(1, 3), st.just([["w"], ["v"]])),
    "fold": st.one_of(st.sampled_from(["natural", "balanced", "stack"]), st.tuples(small_int, small_int, small_int)),
    "order": st.one_of(st.none(), st.integers(1, 5)),
    "splits": st.integers(1, 4),
    "rank": st.one_of(small_int, st.tuples(small_int, small_int), st.lists(small_int, min_size=2, max_size=2)),
    "structure": st.one_of(st.none(), st.sampled_from(["tucker", "cp", "lora", "dense"]), st.just(["dense", "lora"])),
    "projection": st.one_of(st.none(), st.builds(slt.Fastfood, st.sampled_from([0.25, 0.5, 1.0, np.float32(0.5)]))),
    "shuffle": st.one_of(st.none(), st.integers(0, 9)),
    "alpha": st.one_of(st.none(), st.sampled_from([1.0, 4, np.float32(2.0), np.int64(8)])),
    "seed": st.one_of(st.integers(0, 9), st.integers(0, 9).map(np.int32)),
    "identity_modes": st.sampled_from([(), (0,), (np.int64(1),)]),
    "exact_splits": st.booleans(),
    "split_factor": st.sampled_from([-1, -1, -1, 4, np.int64(4)]),
    "scale": st.one_of(st.none(), st.just({"w": 2.0}), st.just({"v": np.float64(0.5)})),
}
shapes = st.tuples(st.integers(1, 12), st.integers(1, 12))
good_targets = st.one_of(
    st.fixed_dictionaries({"w": shapes, "v": shapes}),
    st.fixed_dictionaries({"w": shapes}).map(lambda d: {**d, "v": d["w"]}),
    st.fixed_dictionaries({"w": st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
                           "v": shapes}),
    st.just({"w": np.array([4, 4]), "v": (np.int64(4), 4)}),
)
bad_targets = st.one_of(weird, st.just({"w": (10**18, 1)}), st.just({"w": (8, 0)}), st.just({"w": (10**200, 10**200)}))
targets = st.integers(0, 9).flatmap(lambda i: bad_targets if i == 0 else good_targets)


@st.composite
def arguments(draw: st.DrawFn) -> dict[str, Any]:
    kwargs = {}
    messy = draw(st.booleans())  # half the examples valid-looking only, half with adversarial values
    for name, valid in VALID.items():
        choice = draw(st.integers(0, 19))
        if choice < 14:
            continue  # default
        kwargs[name] = draw(weird) if messy and choice >= 18 else draw(valid)
    if messy and draw(st.integers(0, 20)) == 0:
        kwargs["rnak"] = 3
    return kwargs


def build(t: Any, kwargs: dict[str, Any]) -> slt.SuperLoRA | None:
    """The spec, or None when it was refused with a SpecError (anything else fails the test)."""
    start = time.perf_counter()
    try:
        spec = slt.SuperLoRA(t, **kwargs)
    except ALLOWED:
        return None
    finally:
        assert time.perf_counter() - start < 5, ("slow constructor", t, kwargs)
    return spec


def check_values(spec: slt.SuperLoRA) -> None:
    """An accepted spec: exact counts, a JSON round trip and correct dW shapes and values."""
    assert spec.num_params == sum(math.prod(s) for s in spec.param_shapes.values())
    data = json.loads(json.dumps(spec.to_dict()))
    assert slt.SuperLoRA.from_dict(data) == spec
    if spec.num_entries > BIG or any(math.prod(g.kron_shape) > 4 * BIG for g in spec.groups):
        return
    zero = spec.contract(spec.init())
    assert {n: d.shape for n, d in zero.items()} == spec.target_shapes
    assert all(not d.any() for d in zero.values())
    rand = spec.contract()
    assert all(d.shape == spec.target_shapes[n] and np.isfinite(d).all() for n, d in rand.items())


@settings(max_examples=EXAMPLES["constructor"], deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(targets, arguments())
def test_constructor_only_raises_spec_error_and_accepted_specs_are_right(t, kwargs):
    spec = build(t, kwargs)
    if spec is not None:
        check_values(spec)


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except ALLOWED:
        return None


@settings(max_examples=EXAMPLES["api"], deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(arguments(), weird, weird, weird)
def test_public_api_only_raises_spec_error(kwargs, a, b, c):
    spec = build({"w": (6, 4), "v": (4, 4)}, kwargs)
    if spec is None:
        spec = slt.SuperLoRA({"w": (6, 4), "v": (4, 4)}, rank=2)
    _call(slt.get_backend, a)
    _call(slt.check_reduction, a, "lora")
    _call(slt.check_reduction, spec, a)
    _call(spec.init, backend="numpy", zero_init=a, seed=b, dtype=c)
    _call(spec.init, backend=a)
    _call(spec.contract, a)
    _call(spec.contract, {k: v for k, v in spec.init().items()}, backend=a)
    _call(spec.contract, spec.init(), out=a)
    _call(slt.SuperLoRA.from_dict, a)
    _call(slt.SuperLoRA.from_dict, {**spec.to_dict(), "config": {**spec.to_dict()["config"], "rank": a}})
    _call(slt.Fastfood, a, b)
    params = spec.init(zero_init=False)
    first = next(iter(params))
    for bad in (a, np.zeros((2, 2)), params[first].astype(np.int64), params[first].astype(np.float32)):
        _call(spec.contract, {**params, first: bad})  # a wrong value, shape or dtype


@settings(max_examples=EXAMPLES["integrations"], deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(arguments(), weird, weird)
def test_integrations_only_raise_spec_error(kwargs, a, b):
    import pytest

    torch = pytest.importorskip("torch")
    from superlora_tn.interop.peft import from_peft
    from superlora_tn.torch import inject

    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Linear(6, 4))
    adapted = _call(inject, model, ["0", "1"], spec=kwargs)
    if adapted is not None:  # accepted: the forward works and dW starts at zero
        x = torch.ones(2, 4)
        with torch.no_grad():
            y = adapted(x)
        adapted.unload()
        with torch.no_grad():
            torch.testing.assert_close(y, model(x))
    for args, options in (((a,), {"spec": dict(rank=2)}), ((["0"],), {"spec": a}), ((["0"],), {"modules_to_save": a}),
                          ((["0"],), {"adapter_dtype": a}), ((["0"],), {"zero_init": a}), ((["0"],), {"factored": a}),
                          ((["0"],), {"exclude": a})):
        done = _call(inject, model, *args, **options)
        if done is not None:
            done.unload()
    _call(from_peft, a)
    _call(from_peft, {"base_model.model.w.lora_A.weight": torch.ones(2, 4)}, a)
    assert not any(m._forward_hooks or "forward" in m.__dict__ for m in model.modules())  # nothing refused left a trace
