"""DESIGN.md section 3, every row: the contracted network equals an independent textbook formula.

float64, random non-zero parameters, random shapes (1, primes, odd, non-square) and ranks, on
numpy, torch and jax. The formulas live in ``superlora_tn.reference`` (no contraction code) and are
themselves checked against numpy.kron and tensorly in tests/test_variants.py.
"""

from __future__ import annotations

import collections
import importlib.util

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import superlora_tn as slt
from superlora_tn import reductions, reference, variants

if importlib.util.find_spec("jax") is not None:
    import jax

    jax.config.update("jax_enable_x64", True)

BACKENDS = [b for b in ("numpy", "torch", "jax") if importlib.util.find_spec(b) is not None]
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TOL = 1e-10

dims = st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 16, 17])
ranks = st.integers(1, 5)
seeds = st.integers(0, 2**16)


@st.composite
def matrices(draw: st.DrawFn, max_targets: int = 3) -> dict[str, tuple[int, ...]]:
    n = draw(st.integers(1, max_targets))
    return {f"t{i}": (draw(dims), draw(dims)) for i in range(n)}


def to_np(x):
    return slt.backend_for(x).to_numpy(x).astype(np.float64)


def params_for(spec, backend, seed):
    params = spec.init(backend, zero_init=False, dtype="float64", seed=seed)
    assert all(np.abs(to_np(p)).max() > 0 for p in params.values())
    return params


_JAX_RUNS: collections.Counter = collections.Counter()
JAX_EXAMPLES = 2  # jax compiles every op per shape (~1 s an example): it checks the first few examples of each test


def skip_on_budget(backend: str, test: str) -> bool:
    if backend != "jax":
        return False
    _JAX_RUNS[test] += 1
    return _JAX_RUNS[test] > JAX_EXAMPLES


def assert_reduces(spec, name, backend, seed):
    assert name in reductions.reduces_to(spec)
    params = params_for(spec, backend, seed)
    report = slt.check_reduction(spec, name, backend=backend, params=params)
    assert report.dtype == "float64"
    assert report.max_error <= TOL * max(1.0, report.max_abs), report
    return params


@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(targets=matrices(), r=ranks, seed=seeds, alpha=st.sampled_from([None, 1.0, 16.0]))
def test_lora(backend, targets, r, seed, alpha):
    if skip_on_budget(backend, "test_lora"):
        return
    for spec in (variants.lora(targets, r, alpha=alpha), slt.SuperLoRA(targets, rank=r, alpha=alpha)):
        assert spec.identify() == "lora"
        params = assert_reduces(spec, "lora", backend, seed)
        # the literal form: reference.lora_delta(*to_lora(params)[t]) == contract(params)[t]
        got = spec.contract(params)
        for t, native in reductions.to_lora(spec, params).items():
            A, B, _scale = native
            assert tuple(A.shape) == (r, targets[t][1]) and tuple(B.shape) == (targets[t][0], r)
            np.testing.assert_allclose(to_np(reference.lora_delta(*native)), to_np(got[t]), rtol=0, atol=TOL)


@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(targets=matrices(), seed=seeds, how=st.sampled_from(["dense", "order1", "grouped"]), G=st.integers(1, 3))
def test_dense(backend, targets, seed, how, G):
    if skip_on_budget(backend, "test_dense"):
        return
    if how == "dense":
        spec = variants.dense(targets)
    elif how == "order1":
        spec = slt.SuperLoRA(targets, order=1, rank=2)
    else:
        G = min(G, sum(a * b for a, b in targets.values()))
        spec = slt.SuperLoRA(targets, groups=G, fold="balanced", structure="dense")
    assert spec.identify() == "dense"
    assert_reduces(spec, "dense", backend, seed)


@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(targets=matrices(), r=ranks, seed=seeds, factor=st.sampled_from([-1, 2, 3, 4, 5]), both=st.booleans())
def test_lokr(backend, targets, r, seed, factor, both):
    if skip_on_budget(backend, "test_lokr"):
        return
    spec = variants.lokr(targets, r, factor=factor, decompose_both=both)
    assert spec.identify() == "lokr"
    params = assert_reduces(spec, "lokr", backend, seed)
    got = spec.contract(params)
    for t, (w1, w2, scale) in reductions.to_lokr(spec, params).items():
        want = np.kron(to_np(reference.lowrank(w1)), to_np(reference.lowrank(w2))) * scale  # numpy's own kron
        np.testing.assert_allclose(want, to_np(got[t]), rtol=0, atol=TOL)
    assert_reduces(spec, "lonkr", backend, seed)


@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(targets=matrices(), r=ranks, seed=seeds, K=st.integers(2, 4), grouped=st.integers(0, 3),
       structure=st.sampled_from(["lora", "dense", "cp"]))
def test_lonkr(backend, targets, r, seed, K, grouped, structure):
    if skip_on_budget(backend, "test_lonkr"):
        return
    if grouped:
        G = min(grouped, sum(a * b for a, b in targets.values()))
        spec = slt.SuperLoRA(targets, groups=G, fold="balanced", splits=K, rank=r, structure=structure)
    else:
        spec = slt.SuperLoRA(targets, splits=K, rank=r, structure=structure)
    assert spec.identify() in ("lonkr", "lokr")
    assert_reduces(spec, "lonkr", backend, seed)
    if K >= 3:
        assert variants.lonkr(targets, r, splits=K).identify() == "lonkr"
        assert_reduces(variants.lonkr(targets, r, splits=K), "lonkr", backend, seed)


@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(o=dims, i=dims, L=st.integers(1, 4), extra=st.integers(0, 2), r=ranks, seed=seeds)
def test_lotr(backend, o, i, L, extra, r, seed):
    if skip_on_budget(backend, "test_lotr"):
        return
    targets = {f"q{l}": (o, i) for l in range(L)} | {f"v{l}": (i, o) for l in range(extra)}
    spec = variants.lotr(targets, r)
    assert spec.identify() == "lotr"
    params = assert_reduces(spec, "lotr", backend, seed)
    got = spec.contract(params)
    for g in spec.groups:
        U, cores, V, scale = reductions.to_lotr(spec, params)[g.index]
        assert tuple(cores.shape) == (len(g.segments), r, r)
        for s, dW in zip(g.segments, reference.lotr_deltas(U, cores, V, scale)):
            np.testing.assert_allclose(to_np(dW), to_np(got[s.target]), rtol=0, atol=TOL)
    # a stack fold with a full (non-identity) layer factor is LoTR too (cores C'_l = sum_j A0[l, j] C_j)
    hand = slt.SuperLoRA(targets, groups=[[f"q{l}" for l in range(L)]] + ([[f"v{l}" for l in range(extra)]] if extra else []),
                         fold="stack", rank=(2, r, r), structure="tucker")
    assert hand.identify() == "lotr"
    assert_reduces(hand, "lotr", backend, seed)


@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(targets=matrices(), r=ranks, M=st.integers(3, 4), G=st.integers(1, 3), seed=seeds)
def test_lorta(backend, targets, r, M, G, seed):
    if skip_on_budget(backend, "test_lorta"):
        return
    G = min(G, sum(a * b for a, b in targets.values()))
    spec = variants.lorta(targets, r, order=M, groups=G)
    # a fold of all-equal sides holding exactly one tiny target can coincide with a stack fold (then LoTR too)
    assert spec.identify() == "lorta" or (spec.identify() == "lotr" and "lorta" in reductions.reduces_to(spec))
    assert_reduces(spec, "lorta", backend, seed)


@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(targets=matrices(), r=ranks, M=st.integers(3, 4), G=st.integers(1, 3), seed=seeds)
def test_cp(backend, targets, r, M, G, seed):
    if skip_on_budget(backend, "test_cp"):
        return
    G = min(G, sum(a * b for a, b in targets.values()))
    spec = variants.cp(targets, r, order=M, groups=G)
    assert spec.identify() == "cp"
    assert_reduces(spec, "cp", backend, seed)
    # core = super-diagonal identity: the same fold from a Tucker network with that core
    tucker = slt.SuperLoRA(targets, groups=G, fold="balanced", order=M, rank=r, structure="tucker")
    params = spec.init("numpy", zero_init=False, seed=seed)
    tp = dict(params)
    for g in tucker.groups:
        core = np.zeros((r,) * M)
        core[(np.arange(r),) * M] = 1.0
        tp[f"{g.prefix}k0_core"] = core
    got, want = tucker.contract(tp), spec.contract(params)
    for t in targets:
        np.testing.assert_allclose(got[t], want[t], rtol=0, atol=TOL)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=15, deadline=None)
@given(targets=matrices(), r=ranks, seed=seeds, name=st.sampled_from(["lora", "lokr", "lonkr", "lotr", "lorta", "cp", "dense"]))
def test_native_round_trip(backend, targets, r, seed, name):
    """from_native(to_native(params)) gives back the very same arrays (the maps are inverse)."""
    if skip_on_budget(backend, "test_native_round_trip"):
        return
    if name == "lotr":
        spec = variants.lotr({f"l{i}": next(iter(targets.values())) for i in range(3)}, r)
    elif name == "dense":
        spec = variants.dense(targets)
    else:
        spec = variants.build(name, targets, r)
    params = params_for(spec, backend, seed)
    back = reductions.from_native(spec, reductions.to_native(spec, params, name), name)
    assert back.keys() == params.keys()
    for k in params:
        np.testing.assert_array_equal(to_np(back[k]), to_np(params[k]))
