"""Conversions between variants: exact where the algebra allows (LoKr -> LoRA, LoTR -> LoRA), else reported."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import superlora_tn as slt
from superlora_tn import SpecError, reductions, reference, variants

SETTINGS = settings(max_examples=20, deadline=None)
dims = st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 16])


@st.composite
def matrices(draw, max_targets=3):
    return {f"t{j}": (draw(dims), draw(dims)) for j in range(draw(st.integers(1, max_targets)))}


def close(conv, spec, params):
    before = spec.contract(params)
    after = conv.spec.contract(conv.params)
    err = max(float(np.abs(np.asarray(before[k]) - np.asarray(after[k])).max()) for k in before)
    assert abs(err - conv.max_error) <= 1e-12  # the reported error is the measured one
    return err


@SETTINGS
@given(targets=matrices(), r=st.integers(1, 3), factor=st.sampled_from([-1, 2, 3]), both=st.booleans(), seed=st.integers(0, 999),
       alpha=st.sampled_from([None, 5.0]))
def test_lokr_to_lora_is_exact(targets, r, factor, both, seed, alpha):
    spec = variants.lokr(targets, r, factor=factor, decompose_both=both, alpha=alpha)
    params = spec.init("numpy", zero_init=False, seed=seed)
    conv = reductions.lokr_to_lora(spec, params)
    assert conv.exact and conv.spec.identify() == "lora"
    assert close(conv, spec, params) <= 1e-10
    # kron(w1, B A) = kron(w1, B) kron(I, A): rank (w1 side or w1 rank) * r
    expected = max((r if both else min(g.factors[0].shape)) * r for g in spec.groups)
    assert conv.spec.groups[0].factors[0].ranks[0] == expected


@SETTINGS
@given(o=dims, i=dims, L=st.integers(1, 4), r=st.integers(1, 4), seed=st.integers(0, 999))
def test_lotr_to_lora_is_exact(o, i, L, r, seed):
    spec = variants.lotr({f"l{j}": (o, i) for j in range(L)}, r, alpha=2.0)
    params = spec.init("numpy", zero_init=False, seed=seed)
    conv = reductions.lotr_to_lora(spec, params)
    assert conv.exact and conv.spec.groups[0].factors[0].ranks[0] == r
    assert close(conv, spec, params) <= 1e-10


@SETTINGS
@given(targets=matrices(), r=st.integers(1, 3), M=st.integers(3, 4), seed=st.integers(0, 999))
def test_any_spec_to_lora_by_svd_reports_its_error(targets, r, M, seed):
    spec = variants.lorta(targets, r, order=M)
    params = spec.init("numpy", zero_init=False, seed=seed)
    exact = reductions.to_lora_spec(spec, params)  # rank=None: the numerical rank, nothing discarded
    assert exact.exact and close(exact, spec, params) <= 1e-10
    cut = reductions.svd_to_lora(spec, params, rank=1)
    err = close(cut, spec, params)
    dWs = {k: np.asarray(v).reshape(spec._by_name[k].matrix_shape) for k, v in spec.contract(params).items()}
    second = max((np.linalg.svd(W, compute_uv=False)[1:2].max(initial=0.0)) for W in dWs.values())
    assert err <= second + 1e-12  # |entry| <= spectral norm of the residual = the first dropped singular value
    assert cut.exact == all(reference.numerical_rank(W, 1e-12) <= 1 for W in dWs.values())


def test_to_lora_spec_dispatch_and_refusal():
    t = {"a": (6, 4), "b": (6, 4)}
    for spec, note in ((variants.lora(t, 2), "already"), (variants.lokr(t, 1), "kron"), (variants.lotr(t, 2), "per layer")):
        params = spec.init("numpy", zero_init=False, seed=1)
        conv = reductions.to_lora_spec(spec, params)
        assert conv.exact and note in conv.note and conv.max_error <= 1e-12
    with pytest.raises(SpecError, match="variant"):
        reductions.lokr_to_lora(variants.lora(t, 2), variants.lora(t, 2).init())
    with pytest.raises(SpecError, match="rank"):
        reductions.svd_to_lora(variants.lora(t, 2), variants.lora(t, 2).init(), rank=0)


def test_conversion_of_torch_params():
    torch = pytest.importorskip("torch")
    spec = variants.lokr({"w": (12, 10)}, 2)
    params = spec.init("torch", zero_init=False, dtype=torch.float64, seed=3)
    conv = reductions.to_lora_spec(spec, params)
    assert conv.exact and conv.max_error <= 1e-12
    assert isinstance(slt.check_reduction(conv.spec, "lora").max_error, float)
