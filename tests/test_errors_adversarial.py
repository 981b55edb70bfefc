"""Issue 12: inputs found by adversarial use. Each gets a SpecError naming field and value, fast.

Constructor limits (limits.py), NumPy scalars accepted wherever Python ones are, and the
constructor's consistency rules.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

import superlora_tn as slt
from superlora_tn.errors import SpecError

T = {"w": (16, 16)}


def spec(targets=T, **kwargs):
    return slt.SuperLoRA(targets, **kwargs)


REFUSED = [
    # (kwargs, targets, field) : each once escaped as a hang, RecursionError, OverflowError, ValueError or TypeError
    (dict(order=2000), T, "order x splits"),
    (dict(splits=2000), T, "order x splits"),
    (dict(order=10**9, fold="balanced", groups=1), T, "order x splits"),
    (dict(order=4), {"w": (10**18, 1)}, "targets"),
    (dict(splits=2), {"w": (2**61 - 1, 1)}, "targets"),
    ({}, {"w": (10**200, 10**200)}, "targets"),
    (dict(alpha=10**400), T, "alpha"),
    (dict(rnak=3), T, "SuperLoRA"),
    (dict(groups=1, fold="balanced", projection=slt.Projection(0.5)), T, "projection"),
    (dict(structure="tucker", identity_modes=(True,)), T, "identity_modes"),
    (dict(scale={"w": 0}), T, "scale['w']"),
    (dict(scale={"w": 10**400}), T, "scale['w']"),
    (dict(rank=-5, structure="dense"), T, "rank"),
    (dict(rank=[2, -1], splits=2, structure=["dense", "lora"]), T, "rank"),
    # a valid-looking spec that can't run: more einsum indices than backends accept
    (dict(order=7, splits=4), {"w": (128, 128)}, "order x splits"),
    # folds far larger than their group (would allocate 2**40 entries)
    (dict(order=40, fold="balanced", groups=1), {"w": (128, 128)}, "order"),
    (dict(fold=(10**6, 10**6), groups=1), {"w": (8, 8)}, "fold"),
]


@pytest.mark.parametrize(("kwargs", "targets", "field"), REFUSED)
def test_refused_quickly_with_spec_error(kwargs, targets, field):
    start = time.perf_counter()
    with pytest.raises(SpecError) as info:
        spec(targets, **kwargs)
    assert info.value.field == field
    assert time.perf_counter() - start < 2.0


def test_numpy_array_fold_is_a_shape():
    s = spec(fold=np.array([16, 16]), groups=1)
    assert s.config["fold"] == (16, 16) and s == spec(fold=(16, 16), groups=1)


@pytest.mark.parametrize("kwargs", [
    dict(structure="tucker", identity_modes=(np.int64(0),), rank=(16, 4)),
    dict(splits=2, split_factor=np.int64(4)),
    dict(alpha=np.float32(2.0)),
    dict(alpha=np.int64(4), rank=np.int64(4), seed=np.int32(3), shuffle=np.uint8(1)),
    dict(order=np.int64(2), splits=np.int64(1), exact_splits=np.bool_(True)),
    dict(scale={"w": np.float64(0.5)}),
    dict(projection=slt.Fastfood(np.float32(0.5)), groups=1, fold="balanced"),
    dict(rank=np.array([4, 4])),
])
def test_numpy_numbers_accepted_and_json_ready(kwargs):
    s = spec(**kwargs)
    data = json.loads(json.dumps(s.to_dict()))  # numpy scalars would make json.dumps fail
    assert slt.SuperLoRA.from_dict(data) == s
    plain = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in kwargs.items()}
    assert s.num_params == spec(**{k: v for k, v in plain.items() if not isinstance(v, np.ndarray)},
                                **({"rank": (4, 4)} if "rank" in kwargs and isinstance(kwargs["rank"], np.ndarray) else {})).num_params


def test_fastfood_numpy_ratio_is_python_float():
    f = slt.Fastfood(np.float32(0.5), seed=np.int64(3))
    assert type(f.ratio) is float and type(f.seed) is int and f == slt.Fastfood(0.5, seed=3)


def test_limits_leave_real_models_alone():
    # llama-70b-sized q/v: 80 layers, far below every limit, built symbolically and fast
    targets = {f"l{i}.{w}": (8192, 8192 if w == "q" else 1024) for i in range(80) for w in "qv"}
    start = time.perf_counter()
    s = slt.SuperLoRA(targets, groups=8, fold="balanced", order=4, splits=2, rank=4, projection=slt.Fastfood(0.1))
    assert s.num_params > 0 and time.perf_counter() - start < 5


def test_a_spec_at_the_index_limit_runs_on_every_backend():
    # 5 x 5 Tucker factors: 25 output + 25 rank indices = 50, two identical groups batched (+1)
    s = slt.SuperLoRA({"a": (32, 32), "b": (32, 32)}, order=5, splits=5, structure="tucker", rank=1)
    assert len(set(s.groups[0].equation) - set(",->")) == 50
    params = s.init(zero_init=False)
    want = s.contract(params)
    torch = pytest.importorskip("torch")
    got = s.contract(params, backend="torch")
    for name in want:
        np.testing.assert_allclose(got[name].numpy(), want[name], rtol=1e-12, atol=1e-14)
    from superlora_tn.torch import inject

    model = torch.nn.Sequential(torch.nn.Linear(32, 32), torch.nn.Linear(32, 32))
    adapted = inject(model, ["0", "1"], spec=dict(order=5, splits=5, structure="tucker", rank=1), zero_init=False, factored=True)
    adapted(torch.randn(3, 32)).sum().backward()
    with pytest.raises(SpecError, match="at most 50 einsum indices"):
        slt.SuperLoRA({"a": (32, 32)}, order=5, splits=6, structure="tucker", rank=1)
