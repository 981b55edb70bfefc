"""Structural facts of docs/design.md section 3, checked on dW alone (ranks, shared spaces), never on parameters."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import superlora_tn as slt
from superlora_tn import reference, variants

SETTINGS = settings(max_examples=30, deadline=None)
dims = st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 16, 17, 24])


def deltas(spec, seed):
    return {k: np.asarray(v) for k, v in spec.contract(spec.init("numpy", zero_init=False, seed=seed)).items()}


@SETTINGS
@given(o=dims, i=dims, r=st.integers(1, 6), seed=st.integers(0, 999))
def test_lora_rank_at_most_r(o, i, r, seed):
    dW = deltas(variants.lora({"w": (o, i)}, r), seed)["w"]
    rank = reference.numerical_rank(dW)
    assert rank <= r
    assert rank == min(r, o, i)  # generic parameters reach it


@SETTINGS
@given(o=dims, i=dims, r=st.integers(1, 4), factor=st.sampled_from([-1, 2, 3]), both=st.booleans(), seed=st.integers(0, 999))
def test_lokr_van_loan_rank_one(o, i, r, factor, both, seed):
    spec = variants.lokr({"w": (o, i)}, r, factor=factor, decompose_both=both)
    f1, f2 = spec.groups[0].factors
    dW = deltas(spec, seed)["w"]
    R = reference.van_loan(dW, f1.shape, f2.shape)
    assert reference.numerical_rank(R) == 1
    # the rank-1 factors are w1 and w2 up to scale: their Kronecker product gives dW back
    U, S, Vt = np.linalg.svd(R)
    rebuilt = np.kron(U[:, 0].reshape(f1.shape) * S[0], Vt[0].reshape(f2.shape))
    np.testing.assert_allclose(rebuilt, dW, atol=1e-10 * max(1, np.abs(dW).max()))


@SETTINGS
@given(o=dims, i=dims, L=st.integers(2, 5), r=st.integers(1, 4), seed=st.integers(0, 999))
def test_lotr_shared_column_and_row_spaces(o, i, L, r, seed):
    spec = variants.lotr({f"l{j}": (o, i) for j in range(L)}, r)
    dWs = list(deltas(spec, seed).values())
    cols = np.concatenate(dWs, axis=1)  # [dW_1 ... dW_L]: every column in span(U)
    rows = np.concatenate(dWs, axis=0)  # every row in span(V)
    assert reference.numerical_rank(cols) <= r and reference.numerical_rank(rows) <= r
    assert reference.numerical_rank(cols) == min(r, o, L * i)
    # one space for all layers: each layer's column space lies inside the stacked one
    Q = np.linalg.svd(cols)[0][:, : reference.numerical_rank(cols)]
    for dW in dWs:
        np.testing.assert_allclose(Q @ (Q.T @ dW), dW, atol=1e-10 * max(1, np.abs(dW).max()))


@SETTINGS
@given(fold=st.lists(st.integers(2, 6), min_size=3, max_size=4), ranks=st.lists(st.integers(1, 4), min_size=4, max_size=4),
       seed=st.integers(0, 999))
def test_tucker_fold_multilinear_ranks(fold, ranks, seed):
    M = len(fold)
    rank = tuple(ranks[:M])
    n = math.prod(fold)
    spec = slt.SuperLoRA({"w": (fold[0], n // fold[0])}, groups=1, fold=tuple(fold), rank=rank, structure="tucker")
    X = deltas(spec, seed)["w"].reshape(fold)  # the fold holds exactly the target's entries
    mr = reference.multilinear_ranks(X)
    assert all(m <= r for m, r in zip(mr, rank))


@SETTINGS
@given(fold=st.lists(st.integers(2, 6), min_size=3, max_size=4), r=st.integers(1, 4), seed=st.integers(0, 999))
def test_cp_fold_rank(fold, r, seed):
    n = math.prod(fold)
    spec = slt.SuperLoRA({"w": (fold[0], n // fold[0])}, groups=1, fold=tuple(fold), rank=r, structure="cp")
    X = deltas(spec, seed)["w"].reshape(fold)
    assert all(m <= r for m in reference.multilinear_ranks(X))
