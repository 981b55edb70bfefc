"""docs/design.md section 3, every row: the contracted network equals an independent textbook formula.

float64, random non-zero parameters, random shapes (1, primes, odd, non-square) and ranks, on
numpy, torch and jax. The formulas live in ``superlora_tn.reference`` (no contraction code) and are
themselves checked against numpy.kron and tensorly in tests/test_variants.py.
numpy and torch draw 25 hypothesis examples per test, jax 2 (it compiles every op per shape); every
example drawn is checked, none returns early.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

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
EXAMPLES = 25
JAX_EXAMPLES = 2  # jax compiles every op per shape (~1 s an example): its tests draw 2 examples, each one checked
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


def _run(body: Callable[..., None], strategies: dict[str, Any], max_examples: int, backend: str, *args: Any) -> None:
    """Run ``body(backend, *args, **drawn)`` for hypothesis examples: ``max_examples`` on numpy and
    torch, ``JAX_EXAMPLES`` on jax. Every example drawn is checked; none returns early."""
    def run(**drawn: Any) -> None:
        body(backend, *args, **drawn)

    examples = JAX_EXAMPLES if backend == "jax" else max_examples
    settings(max_examples=examples, deadline=None, database=None,
             suppress_health_check=[HealthCheck.too_slow])(given(**strategies)(run))()


def _named(test: Callable[..., None], body: Callable[..., None]) -> Callable[..., None]:
    test.__name__ = test.__qualname__ = body.__name__
    test.__doc__ = body.__doc__
    return test


def per_backend(max_examples: int = EXAMPLES, **strategies: st.SearchStrategy) -> Callable:
    """``@given(**strategies)`` as one pytest test per backend (the example counts of ``_run``).

    >>> @per_backend(n=st.integers(0, 3))
    ... def test_n(backend, n): assert n >= 0
    """
    def decorate(body: Callable[..., None]) -> Callable[..., None]:
        @pytest.mark.parametrize("backend", BACKENDS)
        def test(backend: str) -> None:
            _run(body, strategies, max_examples, backend)

        return _named(test, body)

    return decorate


def per_backend_and_row(rows: list[str], max_examples: int = EXAMPLES, **strategies: st.SearchStrategy) -> Callable:
    """``per_backend`` with one more pytest parameter, ``row`` (a table's row name), passed after ``backend``."""
    def decorate(body: Callable[..., None]) -> Callable[..., None]:
        @pytest.mark.parametrize("row", rows)
        @pytest.mark.parametrize("backend", BACKENDS)
        def test(backend: str, row: str) -> None:
            _run(body, strategies, max_examples, backend, row)

        return _named(test, body)

    return decorate


def assert_reduces(spec, name, backend, seed):
    assert name in reductions.reduces_to(spec)
    params = params_for(spec, backend, seed)
    report = slt.check_reduction(spec, name, backend=backend, params=params)
    assert report.dtype == "float64"
    assert report.max_error <= TOL * max(1.0, report.max_abs), report
    return params


@per_backend(targets=matrices(), r=ranks, seed=seeds, alpha=st.sampled_from([None, 1.0, 16.0]))
def test_lora(backend, targets, r, seed, alpha):
    for spec in (variants.lora(targets, r, alpha=alpha), slt.SuperLoRA(targets, rank=r, alpha=alpha)):
        assert spec.identify() == "lora"
        params = assert_reduces(spec, "lora", backend, seed)
        # the literal form: reference.lora_delta(*to_lora(params)[t]) == contract(params)[t]
        got = spec.contract(params)
        for t, native in reductions.to_lora(spec, params).items():
            A, B, _scale = native
            assert tuple(A.shape) == (r, targets[t][1]) and tuple(B.shape) == (targets[t][0], r)
            np.testing.assert_allclose(to_np(reference.lora_delta(*native)), to_np(got[t]), rtol=0, atol=TOL)


@per_backend(targets=matrices(), seed=seeds, how=st.sampled_from(["dense", "order1", "grouped"]), G=st.integers(1, 3))
def test_dense(backend, targets, seed, how, G):
    if how == "dense":
        spec = variants.dense(targets)
    elif how == "order1":
        spec = slt.SuperLoRA(targets, order=1, rank=2)
    else:
        G = min(G, sum(a * b for a, b in targets.values()))
        spec = slt.SuperLoRA(targets, groups=G, fold="balanced", structure="dense")
    assert spec.identify() == "dense"
    assert_reduces(spec, "dense", backend, seed)


@per_backend(targets=matrices(), r=ranks, seed=seeds, factor=st.sampled_from([-1, 2, 3, 4, 5]), both=st.booleans())
def test_lokr(backend, targets, r, seed, factor, both):
    spec = variants.lokr(targets, r, factor=factor, decompose_both=both)
    assert spec.identify() == "lokr"
    params = assert_reduces(spec, "lokr", backend, seed)
    got = spec.contract(params)
    for t, (w1, w2, scale) in reductions.to_lokr(spec, params).items():
        want = np.kron(to_np(reference.lowrank(w1)), to_np(reference.lowrank(w2))) * scale  # numpy's own kron
        np.testing.assert_allclose(want, to_np(got[t]), rtol=0, atol=TOL)
    assert_reduces(spec, "lonkr", backend, seed)


@per_backend(targets=matrices(), r=ranks, seed=seeds, K=st.integers(2, 4), grouped=st.integers(0, 3),
       structure=st.sampled_from(["lora", "dense", "cp"]))
def test_lonkr(backend, targets, r, seed, K, grouped, structure):
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


@per_backend(o=dims, i=dims, L=st.integers(1, 4), extra=st.integers(0, 2), r=ranks, seed=seeds)
def test_lotr(backend, o, i, L, extra, r, seed):
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


def _cp_core_is_the_identity(spec, targets, r, M, G, seed) -> None:
    """core = super-diagonal identity: the same fold from a Tucker network with that core."""
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


# Variants on a balanced order-M fold of G groups: name -> (what identify() may answer, one more identity).
# A fold of all-equal sides holding exactly one tiny target can coincide with a stack fold (then LoTR too).
BALANCED = {
    "lorta": ({"lorta", "lotr"}, None),
    "cp": ({"cp"}, _cp_core_is_the_identity),
}


@per_backend_and_row(sorted(BALANCED), targets=matrices(), r=ranks, M=st.integers(3, 4), G=st.integers(1, 3), seed=seeds)
def test_balanced_variant(backend, row, targets, r, M, G, seed):
    """LoRTA and CP, one table: the variant's spec reduces to its textbook formula (and its extra identity)."""
    G = min(G, sum(a * b for a, b in targets.values()))
    spec = variants.build(row, targets, r, order=M, groups=G)
    names, extra = BALANCED[row]
    assert spec.identify() in names
    assert_reduces(spec, row, backend, seed)
    if extra is not None:
        extra(spec, targets, r, M, G, seed)


@per_backend(max_examples=15, targets=matrices(), r=ranks, seed=seeds,
             name=st.sampled_from(["lora", "lokr", "lonkr", "lotr", "lorta", "cp", "dense"]))
def test_native_round_trip(backend, targets, r, seed, name):
    """from_native(to_native(params)) gives back the very same arrays (the maps are inverse)."""
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
