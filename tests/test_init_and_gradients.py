"""Init: seeded, identical on every backend, dW == 0, exactly one zero block, never a dead adapter."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import BACKENDS, to_numpy
from hypothesis import HealthCheck, given, settings
from strategies import specs

import superlora_tn as slt

SPECS = {
    "lora": dict(rank=3),
    "lokr": dict(splits=2, structure=["dense", "lora"], rank=2),
    "tucker3-fastfood-shuffle": dict(groups=2, fold="balanced", order=3, rank=2, projection=slt.Fastfood(0.5), shuffle=1),
    "cp4": dict(groups=1, fold="balanced", order=4, structure="cp", rank=3),
    "lonkr": dict(splits=3, rank=2),
}
TARGETS = {"l0.q": (12, 10), "l0.v": (12, 10), "l1.q": (12, 10)}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(spec=specs())
def test_num_params_equals_sum_of_parameter_sizes(spec: slt.SuperLoRA) -> None:
    params = spec.init(zero_init=False)
    assert spec.num_params == sum(v.size for v in params.values())
    assert spec.num_params == sum(math.prod(s) for s in spec.param_shapes.values())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(spec=specs())
def test_dw_is_exactly_zero_at_init(spec: slt.SuperLoRA) -> None:
    params = spec.init()
    zeros = [name for name, v in params.items() if not np.any(v)]
    assert len(zeros) == len(spec.groups)  # exactly one zero block per group
    for delta in spec.contract(params).values():
        assert not np.any(delta)


@pytest.mark.parametrize("backend", BACKENDS)
def test_init_bit_identical_across_backends(backend: str) -> None:
    spec = slt.SuperLoRA(TARGETS, **SPECS["tucker3-fastfood-shuffle"])
    ref = spec.init("numpy", dtype="float32", zero_init=False)
    got = spec.init(backend, dtype="float32", zero_init=False)
    for name in ref:
        np.testing.assert_array_equal(to_numpy(got[name]), ref[name])


def test_seed_changes_values_and_zero_init_keeps_the_others() -> None:
    spec = slt.SuperLoRA(TARGETS, **SPECS["lokr"])
    a, b = spec.init(zero_init=False), spec.init(zero_init=False, seed=1)
    assert all(not np.array_equal(a[k], b[k]) for k in a)
    zeroed = spec.init()
    for k in a:
        assert np.array_equal(zeroed[k], a[k]) or not np.any(zeroed[k])


def test_two_zero_blocks_in_one_group_is_a_dead_adapter() -> None:
    spec = slt.SuperLoRA({"w": (8, 8)}, order=3, fold="balanced", groups=1, structure="tucker", rank=2)
    with pytest.raises(slt.SpecError, match="dead adapter"):
        spec.init(zero_init=["g0_k0_core", "g0_k0_A0"])
    spec.init(zero_init=["g0_k0_A1"])  # one block is fine


@pytest.mark.parametrize("name", list(SPECS))
def test_torch_zero_block_gets_gradient_then_every_parameter(name: str) -> None:
    torch = pytest.importorskip("torch")
    spec = slt.SuperLoRA(TARGETS, **SPECS[name])
    params = {k: torch.nn.Parameter(v) for k, v in spec.init("torch", dtype=torch.float64).items()}
    opt = torch.optim.SGD(params.values(), lr=0.1)
    gen = torch.Generator().manual_seed(0)
    goal = {k: torch.randn(s, generator=gen, dtype=torch.float64) for k, s in spec.target_shapes.items()}

    def step() -> dict[str, float]:
        opt.zero_grad()
        deltas = spec.contract(params)
        loss = sum(((deltas[k] - goal[k]) ** 2).sum() for k in goal)
        loss.backward()
        return {k: float(p.grad.abs().max()) for k, p in params.items()}

    first = step()
    zero_blocks = {g.zero_block for g in spec.groups}
    assert all(first[k] > 0 for k in zero_blocks)  # the zero block learns at step 0
    opt.step()
    second = step()
    assert all(v > 0 for v in second.values()), second  # nothing is dead after one update


@pytest.mark.parametrize("name", list(SPECS))
def test_jax_grad_and_jit_through_contract(name: str) -> None:
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    spec = slt.SuperLoRA(TARGETS, **SPECS[name])
    params = spec.init("jax", dtype="float64")
    goal = {k: jnp.asarray(np.random.default_rng(1).standard_normal(s)) for k, s in spec.target_shapes.items()}

    def loss(p: dict) -> jax.Array:
        d = spec.contract(p)
        return sum(jnp.sum((d[k] - goal[k]) ** 2) for k in goal)

    grad = jax.jit(jax.grad(loss))
    g0 = grad(params)
    for block in {g.zero_block for g in spec.groups}:
        assert float(jnp.abs(g0[block]).max()) > 0
    params = {k: params[k] - 0.05 * g0[k] for k in params}
    g1 = grad(params)
    assert all(float(jnp.abs(v).max()) > 0 for v in g1.values())
    np.testing.assert_allclose(float(jax.jit(loss)(params)), float(loss(params)), rtol=1e-10)


def test_torch_preserves_dtype_and_device() -> None:
    torch = pytest.importorskip("torch")
    spec = slt.SuperLoRA(TARGETS, **SPECS["tucker3-fastfood-shuffle"])
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        out = spec.contract(spec.init("torch", dtype=dtype, zero_init=False))
        assert all(v.dtype == dtype and v.device.type == "cpu" for v in out.values())
    bf = spec.contract(spec.init("torch", dtype=torch.bfloat16, zero_init=False))
    ref = spec.contract(spec.init("numpy", zero_init=False))
    for k in ref:
        np.testing.assert_allclose(to_numpy(bf[k]), ref[k], atol=0.05 * np.abs(ref[k]).max())
