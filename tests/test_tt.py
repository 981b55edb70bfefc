"""Tensor-train cores (``structure="tt"``, ``variants.tt``): the contracted network equals tensorly's
``tt_to_tensor`` of the same cores on numpy, torch and jax; a 2-mode TT is LoRA both ways; the rank
argument; init; the diagram. The registry rows (tests/test_registry.py) check the rest."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_reductions_properties import TOL, matrices, params_for, per_backend, ranks, seeds, to_np

import superlora_tn as slt
from superlora_tn import SpecError, reductions, reference, variants


@st.composite
def trains(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A fold of 1..5 modes (sizes with 1 and primes) and its M - 1 bond ranks."""
    shape = tuple(draw(st.lists(st.sampled_from([1, 2, 3, 4, 5, 7]), min_size=1, max_size=5)))
    return shape, tuple(draw(st.lists(st.integers(1, 4), min_size=len(shape) - 1, max_size=len(shape) - 1)))


@per_backend(train=trains(), seed=seeds, alpha=st.sampled_from([None, 3.0]))
def test_tt_equals_tensorly_tt_to_tensor(backend, train, seed, alpha):
    """One target holding exactly the fold: dW (the contracted network) == scale * tensorly.tt_to_tensor(cores)."""
    tl = pytest.importorskip("tensorly")
    shape, bonds = train
    spec = slt.SuperLoRA({"w": (shape[0], math.prod(shape[1:]))}, groups=1, fold=shape, structure="tt",
                         rank=bonds if bonds else 1, alpha=alpha)
    params = params_for(spec, backend, seed)
    dW = to_np(spec.contract(params)["w"]).reshape(shape)
    if len(shape) == 1:  # one mode: a free vector, dense
        assert spec.identify() == "dense"
        np.testing.assert_allclose(dW, to_np(params["g0_k0_G0"]) * spec.scale_factor, rtol=0, atol=TOL)
        return
    [(cores, scale)] = reductions.to_native(spec, params, "tt").values()
    assert [tuple(G.shape) for G in cores] == [(r0, n, r1) for r0, n, r1 in zip((1, *bonds), shape, (*bonds, 1))]
    want = tl.tt_to_tensor([to_np(G) for G in cores]) * scale
    np.testing.assert_allclose(dW, want, rtol=0, atol=TOL * max(1.0, np.abs(want).max()))
    np.testing.assert_allclose(to_np(reference.tt_to_tensor(cores)) * scale, want, rtol=0, atol=TOL * max(1.0, np.abs(want).max()))
    assert scale == spec.scale_factor == (1.0 if alpha is None else alpha / max(bonds))


@settings(max_examples=30, deadline=None)
@given(train=trains(), seed=seeds)
def test_reference_tt_to_tensor_matches_tensorly(train, seed):
    tl = pytest.importorskip("tensorly")
    shape, bonds = train
    rng = np.random.default_rng(seed)
    cores = [rng.standard_normal((r0, n, r1)) for r0, n, r1 in zip((1, *bonds), shape, (*bonds, 1))]
    np.testing.assert_allclose(reference.tt_to_tensor(cores), tl.tt_to_tensor(cores), rtol=1e-12, atol=1e-12)


@per_backend(targets=matrices(), r=ranks, seed=seeds, alpha=st.sampled_from([None, 2.0, 16.0]))
def test_two_mode_tt_is_lora_both_ways(backend, targets, r, seed, alpha):
    """G_0 = B, G_1 = A: the same dW from mapped parameters, TT -> LoRA and LoRA -> TT."""
    tt = slt.SuperLoRA(targets, structure="tt", rank=r, alpha=alpha)
    lora = variants.lora(targets, r, alpha=alpha)
    assert tt.identify() == "lora" and reductions.reduces_to(tt) == ["lora", "tt"]
    for name in ("lora", "tt"):
        report = slt.check_reduction(tt, name, backend=backend, params=params_for(tt, backend, seed))
        assert report.max_error <= TOL * max(1.0, report.max_abs), report
    p_tt, p_lora = params_for(tt, backend, seed), params_for(lora, backend, seed + 1)
    # TT -> LoRA
    mapped = reductions.from_lora(lora, reductions.to_lora(tt, p_tt))
    got, want = lora.contract(mapped), tt.contract(p_tt)
    # LoRA -> TT
    back = reductions.from_lora(tt, reductions.to_lora(lora, p_lora))
    got2, want2 = tt.contract(back), lora.contract(p_lora)
    for t in targets:
        np.testing.assert_allclose(to_np(got[t]), to_np(want[t]), rtol=0, atol=TOL)
        np.testing.assert_allclose(to_np(got2[t]), to_np(want2[t]), rtol=0, atol=TOL)
    g = tt.groups[0]
    np.testing.assert_array_equal(to_np(mapped["g0_k0_A0"]), to_np(p_tt[g.param_name(0, "G0")]))  # B = G_0


@pytest.mark.parametrize("order", [2, 3, 4, 5])
def test_init_zero_block_is_the_last_core(order):
    spec = slt.SuperLoRA({"a": (12, 10), "b": (6, 9)}, groups="weight", fold="natural", order=order, structure="tt", rank=3)
    assert {g.zero_block for g in spec.groups} == {f"g{g.index}_k0_G{order - 1}" for g in spec.groups}
    zero, full = spec.contract(spec.init()), spec.contract(spec.init(zero_init=False))
    for t in ("a", "b"):
        assert not np.any(zero[t]) and np.abs(full[t]).max() > 0
    # every core is drawn N(0, 1/(its first size)); the non-zero values are the same with and without zero_init
    p, q = spec.init(), spec.init(zero_init=False)
    for name, x in q.items():
        assert name in spec.groups[0].param_shapes or name.startswith("g1_")
        if not name.endswith(f"G{order - 1}"):
            np.testing.assert_array_equal(p[name], x)


def test_torch_gradients_at_init_and_away_from_it():
    """At the zero init only the zeroed last core gets a gradient (the others multiply zero); away
    from it every core does, and each gradient equals the float64 finite difference of the loss."""
    torch = pytest.importorskip("torch")
    spec = variants.tt({"w": (12, 20)}, 2, order=3)
    weight = torch.arange(240, dtype=torch.float64).reshape(12, 20)
    zero = spec.groups[0].zero_block
    for zero_init in (True, False):
        params = {k: v.requires_grad_() for k, v in spec.init("torch", dtype=torch.float64, zero_init=zero_init).items()}
        (spec.contract(params)["w"] * weight).sum().backward()
        assert params[zero].grad.abs().max() > 0
        others = [params[k].grad.abs().max() for k in params if k != zero]
        assert all(g == 0 for g in others) if zero_init else all(g > 0 for g in others)
    base = {k: v.detach().clone() for k, v in params.items()}
    for name, x in base.items():
        bumped = {**base, name: x.clone().reshape(-1).index_add(0, torch.tensor([0]), torch.tensor([1e-6], dtype=x.dtype)).reshape(x.shape)}
        fd = ((spec.contract(bumped)["w"] - spec.contract(base)["w"]) * weight).sum() / 1e-6
        assert abs(float(fd) - float(params[name].grad.reshape(-1)[0])) <= 1e-4 * max(1.0, abs(float(fd)))


def test_rank_argument():
    t = {"w": (16, 27)}
    spec = slt.SuperLoRA(t, fold="natural", order=4, structure="tt", rank=(2, 5, 3), alpha=10.0)
    f = spec.groups[0].factors[0]
    assert f.shape == (4, 4, 3, 9) and f.ranks == (2, 5, 3)
    assert spec.scale_factor == 10.0 / 5  # r = the largest bond rank
    assert slt.SuperLoRA(t, fold="natural", order=4, structure="tt", rank=4).groups[0].factors[0].ranks == (4, 4, 4)
    assert variants.tt(t, (2, 5, 3)).num_params == spec.num_params == 4 * 2 + 2 * 4 * 5 + 5 * 3 * 3 + 3 * 9
    for bad in ((2, 3), (2, 3, 4, 5)):
        with pytest.raises(SpecError, match="a tuple of 3 bond ranks for tt on 4 modes") as info:
            slt.SuperLoRA(t, fold="natural", order=4, structure="tt", rank=bad)
        assert info.value.field == "rank"
    with pytest.raises(SpecError, match="positive") as info:
        slt.SuperLoRA(t, fold="natural", order=4, structure="tt", rank=(2, 0, 3))
    with pytest.raises(SpecError, match="order"):
        variants.tt(t, 2, order=2)
    with pytest.raises(SpecError, match="identity_modes"):
        slt.SuperLoRA(t, fold="natural", order=3, structure="tt", identity_modes=(0,))
    with pytest.raises(SpecError, match="cores"):
        reductions.from_native(variants.tt(t, 2, order=3), {0: ([np.zeros((1, 4, 2))], 1.0)}, "tt")


def test_tt_draws_as_a_chain(tmp_path):
    from superlora_tn.draw import factor_layout

    spec = variants.tt({"w": (64, 48)}, (2, 3, 4))
    lay = factor_layout(spec.groups[0], 0)
    assert sorted(label for *_, label in lay["bonds"]) == ["e=2", "f=3", "g=4"]  # G0-G1-G2-G3, no hub, no core
    assert len(lay["legs"]) == 4
    xs = [lay["nodes"][t.name][:2] for t in spec.groups[0].tensors]  # a row, in chain order, legs down
    assert [y for _, y in xs] == [0.0] * 4 and [x for x, _ in xs] == sorted(x for x, _ in xs)
    assert {angle for _, angle, _ in lay["legs"]} == {-math.pi / 2}
    spec.draw(0, tmp_path / "tt.svg")
    assert (tmp_path / "tt.svg").stat().st_size > 1000


@pytest.mark.parametrize("factored", [True, False])
def test_torch_model_with_tt_adapters(factored):
    """inject: the adapted forward (factored or through dW) is the base model with W + dW, dW by the TT formula."""
    torch = pytest.importorskip("torch")
    from superlora_tn.torch import inject

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(12, 20), torch.nn.ReLU(), torch.nn.Linear(20, 12)).double()
    x = torch.randn(4, 12, dtype=torch.float64)
    base = {n: m.weight.detach().clone() for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    adapted = inject(model, targets=["0", "2"], spec=dict(fold="natural", order=3, structure="tt", rank=(2, 3), alpha=6.0),
                     zero_init=False, factored=factored, adapter_dtype=torch.float64)
    spec = adapted.spec
    assert spec.identify() == "tt"
    named = {n.rsplit(".", 1)[-1]: p for n, p in adapted.named_parameters() if p.requires_grad}
    params = {k: named[k] for k in spec.param_shapes}
    want = reductions.reference_deltas(spec, params, "tt")
    h = x @ (base["0"] + want["0"]).T + model[0].bias
    expected = torch.relu(h) @ (base["2"] + want["2"]).T + model[2].bias
    torch.testing.assert_close(adapted(x), expected, rtol=1e-10, atol=1e-10)
