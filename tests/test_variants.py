"""Named variants: parameter-count formulas, identify() on built and hand-made specs, the reference formulas
against numpy/tensorly, and the SpecErrors of bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import superlora_tn as slt
from superlora_tn import SpecError, reductions, reference, variants
from superlora_tn.factorize import peft_factorization

SETTINGS = settings(max_examples=30, deadline=None)
dims = st.sampled_from([1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 16, 17, 31, 64])


@st.composite
def matrices(draw, max_targets=4):
    return {f"t{j}": (draw(dims), draw(dims)) for j in range(draw(st.integers(1, max_targets)))}


@SETTINGS
@given(targets=matrices(), r=st.integers(1, 8), factor=st.sampled_from([-1, 2, 4]), both=st.booleans(),
       K=st.integers(3, 4), M=st.integers(3, 4), G=st.integers(1, 3))
def test_parameter_count_formulas(targets, r, factor, both, K, M, G):
    mats = list(targets.values())
    assert variants.dense(targets).num_params == sum(o * i for o, i in mats)
    assert variants.lora(targets, r).num_params == r * sum(o + i for o, i in mats)
    lokr = 0
    for o, i in mats:
        (a, b), (c, d) = peft_factorization(o, factor), peft_factorization(i, factor)
        lokr += (r * (a + c) if both else a * c) + r * (b + d)
    assert variants.lokr(targets, r, factor=factor, decompose_both=both).num_params == lokr
    lonkr = variants.lonkr(targets, r, splits=K)
    assert lonkr.num_params == sum(r * sum(f.shape) for g in lonkr.groups for f in g.factors)
    by_shape = {}
    for o, i in mats:
        by_shape[(o, i)] = by_shape.get((o, i), 0) + 1
    assert variants.lotr(targets, r).num_params == sum(L * r * r + r * (o + i) for (o, i), L in by_shape.items())
    G = min(G, sum(o * i for o, i in mats))
    N = sum(o * i for o, i in mats)
    sizes = [N // G + (1 if g < N % G else 0) for g in range(G)]
    sides = [math.ceil(round(n ** (1 / M), 9)) for n in sizes]
    sides = [s - 1 if (s - 1) ** M >= n else s for s, n in zip(sides, sizes)]
    assert variants.lorta(targets, r, order=M, groups=G).num_params == sum(r**M + M * s * r for s in sides)
    assert variants.cp(targets, r, order=M, groups=G).num_params == sum(M * s * r for s in sides)


VIT = {f"blocks.{i}.attn.{p}": (768, 768) for i in range(12) for p in ("q", "v")}
VIT_TABLE = {  # (variant, kwargs) -> params; the table of docs/reductions.md
    ("dense", ()): 14_155_776,
    ("lora", (("rank", 8),)): 294_912,
    ("lokr", (("rank", 8),)): 26_112,
    ("lokr", (("rank", 8), ("decompose_both", True))): 12_288 + 24 * 8 * 48,
    ("lonkr", (("rank", 8),)): 10_752,
    ("lotr", (("rank", 8),)): 13_824,
    ("lorta", (("rank", 8),)): 6_320,
    ("cp", (("rank", 8),)): 5_808,
}


@pytest.mark.parametrize("key", list(VIT_TABLE), ids=lambda k: k[0] + "".join(f"-{a}{b}" for a, b in k[1]))
def test_vit_b16_qv_table(key):
    name, kwargs = key
    spec = variants.build(name, VIT, **dict(kwargs))
    assert spec.num_params == VIT_TABLE[key]
    assert spec.identify() == name


def test_identify_hand_built_and_general():
    t = {"a": (12, 10), "b": (6, 9)}
    assert slt.SuperLoRA(t, rank=3).identify() == "lora"
    assert slt.SuperLoRA(t, rank=3, structure="cp").identify() == "lora"
    assert slt.SuperLoRA(t, rank=(2, 3), structure="tucker").identify() == "lora"
    assert slt.SuperLoRA(t, groups=[["a"], ["b"]], rank=3).identify() == "lora"
    assert slt.SuperLoRA(t, fold=(12, 10), groups=[["a"], ["b"]], rank=2).identify() == "superlora"  # b is not (12, 10)
    assert slt.SuperLoRA(t, order=1).identify() == "dense"
    assert slt.SuperLoRA(t, structure="dense", groups=3, fold="balanced").identify() == "dense"
    assert slt.SuperLoRA(t, splits=2, rank=2, exact_splits=True).identify() == "lokr"
    assert slt.SuperLoRA({"p": (7, 7)}, splits=2, rank=2).identify() == "lonkr"  # 7 -> (3, 3) truncated: not PEFT's LoKr
    assert slt.SuperLoRA(t, splits=3, rank=2, groups=2, fold="balanced").identify() == "lonkr"
    assert slt.SuperLoRA(t, groups=1, fold="balanced", order=3, rank=2).identify() == "lorta"
    assert slt.SuperLoRA(t, groups=1, fold="balanced", order=3, rank=2, structure="cp").identify() == "cp"
    assert slt.SuperLoRA(t, groups=1, fold="balanced", order=2, rank=2).identify() == "superlora"
    assert slt.SuperLoRA(t, groups=1, fold="balanced", order=3, splits=2, rank=2).identify() == "superlora"
    assert slt.SuperLoRA(t, groups=1, fold="balanced", rank=2, projection=slt.Fastfood(0.5)).identify() == "superlora"
    assert slt.SuperLoRA(t, rank=2, shuffle=3).identify() == "superlora"
    same = {"q0": (8, 6), "q1": (8, 6)}
    assert slt.SuperLoRA(same, groups=1, fold="stack", rank=2, identity_modes=(0,)).identify() == "lotr"
    assert reductions.reduces_to(variants.lotr(same, 2)) == ["lotr", "lorta"]
    assert reductions.reduces_to(variants.lokr(t, 2)) == ["lokr", "lonkr"]


rng = np.random.default_rng(0)


@settings(max_examples=25, deadline=None)
@given(shapes=st.lists(st.tuples(st.integers(1, 7), st.integers(1, 7)), min_size=2, max_size=3))
def test_reference_kron_matches_numpy(shapes):
    mats = [rng.standard_normal(s) for s in shapes[:2]]
    np.testing.assert_allclose(reference.kron(*mats), np.kron(*mats), rtol=0, atol=0)
    all_mats = [rng.standard_normal(s) for s in shapes]
    want = all_mats[0]
    for m in all_mats[1:]:
        want = np.kron(want, m)
    np.testing.assert_allclose(reference.lonkr_delta(all_mats, 2.0), 2.0 * want, rtol=1e-13, atol=1e-13)


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 6), min_size=2, max_size=4), data=st.data())
def test_reference_tucker_and_cp_match_tensorly(shape, data):
    tl = pytest.importorskip("tensorly")
    ranks = [data.draw(st.integers(1, 4)) for _ in shape]
    core = rng.standard_normal(ranks)
    factors = [rng.standard_normal((n, r)) for n, r in zip(shape, ranks)]
    np.testing.assert_allclose(reference.tucker_to_tensor(core, factors), tl.tucker_to_tensor((core, factors)), rtol=1e-12, atol=1e-12)
    R = ranks[0]
    cps = [rng.standard_normal((n, R)) for n in shape]
    np.testing.assert_allclose(reference.cp_to_tensor(cps), tl.cp_to_tensor((np.ones(R), cps)), rtol=1e-12, atol=1e-12)
    # the identity factor (None) keeps the mode
    np.testing.assert_allclose(reference.tucker_to_tensor(core, [None] * len(shape)), core)


def test_reference_shares_no_code_with_the_contraction_path():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(reference))
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert imported <= {"__future__", "collections.abc", "typing", "numpy"}, imported
    assert "einsum" not in inspect.getsource(reference).replace("none of them calls ``einsum``", "")


def test_bad_input_names_field_value_and_valid_choices():
    t = {"a": (8, 8)}
    cases = [
        (lambda: variants.lora(t, 0), "rank"),
        (lambda: variants.lokr(t, 2, decompose_both="yes"), "decompose_both"),
        (lambda: variants.lokr(t, 2, factor=0), "split_factor"),
        (lambda: variants.lonkr(t, 2, splits=2), "splits"),
        (lambda: variants.lorta(t, 2, order=2), "order"),
        (lambda: variants.cp(t, 2, order=1), "order"),
        (lambda: variants.build("boft", t), "variant"),
        (lambda: slt.check_reduction(variants.lora(t, 2), "lokr"), "variant"),
        (lambda: slt.check_reduction(variants.lora(t, 2), "nope"), "variant"),
        (lambda: reductions.from_lora(variants.lora(t, 2), {"a": (np.zeros((3, 8)), np.zeros((8, 3)))}), "native"),
        (lambda: reductions.from_lora(variants.lora(t, 2), {"b": (np.zeros((2, 8)), np.zeros((8, 2)))}), "native"),
        (lambda: reductions.from_lora(variants.lora(t, 2), {"a": (np.zeros((2, 8)), np.zeros((8, 2)), 7.0)}), "scale"),
        (lambda: reductions.from_lokr(variants.lokr(t, 2), {"a": (np.zeros((2, 2)), np.zeros((4, 4)))}), "w2"),
    ]
    for make, field in cases:
        with pytest.raises(SpecError) as info:
            make()
        assert field in info.value.field and "expected" in str(info.value), (field, info.value)


def test_check_reduction_report():
    rep = slt.check_reduction(variants.lotr({"a": (5, 7), "b": (5, 7)}, 2), backend="torch")
    assert rep.variant == "lotr" and rep.backend == "torch" and rep.dtype == "float64"
    assert float(rep) == rep.max_error <= 1e-12 and rep.max_abs > 0 and set(rep.per_target) == {"a", "b"}
    assert rep.relative_error <= 1e-12
