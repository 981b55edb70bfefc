"""The registries, one table row per variant and per structure: adding one is one entry plus one row here.

Every registered variant, on every backend, from its own builder: the spec reduces to it, its
parameter-count formula equals the spec's count, the contracted network equals its independent
reference formula on random non-zero parameters, and its native maps are inverse. Every registered
structure: its terms fit its parameter shapes, zero_init gives dW == 0 (non-zero without it), and
it draws.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_reductions_properties import TOL, dims, params_for, per_backend_and_row, ranks, seeds, to_np

import superlora_tn as slt
from superlora_tn import SpecError, reductions, variants
from superlora_tn.registry import VARIANT_REGISTRY, Variant, register_variant, variant_named
from superlora_tn.structures import STRUCTURE_REGISTRY, FactorSpec, register_structure, structure_named


@st.composite
def matrices(draw: st.DrawFn) -> dict[str, tuple[int, int]]:
    return {f"t{i}": (draw(dims), draw(dims)) for i in range(draw(st.integers(1, 3)))}


@st.composite
def layers(draw: st.DrawFn) -> dict[str, tuple[int, int]]:
    """Same-shape targets (a LoTR group), maybe a second shape."""
    o, i = draw(dims), draw(dims)
    return {f"q{l}": (o, i) for l in range(draw(st.integers(1, 3)))} | {f"v{l}": (i, o) for l in range(draw(st.integers(0, 2)))}


# variant -> (targets strategy, builder keyword arguments drawn from these strategies)
VARIANT_ROWS: dict[str, tuple[st.SearchStrategy, dict[str, st.SearchStrategy]]] = {
    "dense": (matrices(), {}),
    "lora": (matrices(), {"alpha": st.sampled_from([None, 4.0])}),
    "lokr": (matrices(), {"factor": st.sampled_from([-1, 2, 3]), "decompose_both": st.booleans()}),
    "lonkr": (matrices(), {"splits": st.integers(3, 4)}),
    "lotr": (layers(), {"alpha": st.sampled_from([None, 2.0])}),
    "lorta": (matrices(), {"order": st.integers(3, 4), "groups": st.integers(1, 2)}),
    "cp": (matrices(), {"order": st.integers(3, 4), "groups": st.integers(1, 2)}),
    "loha": (matrices(), {"alpha": st.sampled_from([None, 8.0])}),
    "tt": (matrices(), {"order": st.integers(3, 5), "alpha": st.sampled_from([None, 4.0])}),
}


def test_every_registered_variant_has_a_row():
    assert set(VARIANT_ROWS) == set(VARIANT_REGISTRY) == set(variants.VARIANTS)


@per_backend_and_row(sorted(VARIANT_ROWS), max_examples=8, data=st.data(), r=ranks, seed=seeds)
def test_variant_row(backend, row, data, r, seed):
    """Builder, recognition, count formula, reference formula and native maps of one registered variant."""
    entry = variant_named(row)
    targets_strategy, kwarg_strategies = VARIANT_ROWS[row]
    targets = data.draw(targets_strategy)
    kwargs = {k: data.draw(s) for k, s in kwarg_strategies.items()}
    if "groups" in kwargs:
        kwargs["groups"] = min(kwargs["groups"], sum(a * b for a, b in targets.values()))
    spec = variants.build(row, targets, r, **kwargs)
    assert getattr(variants, row) is entry.build
    assert entry.recognise(spec) and row in reductions.reduces_to(spec)  # (a tiny balanced fold can be a stack fold too)
    assert entry.num_params(spec) == spec.num_params
    params = params_for(spec, backend, seed)
    report = slt.check_reduction(spec, row, backend=backend, params=params)
    assert report.max_error <= TOL * max(1.0, report.max_abs), report
    native = reductions.to_native(spec, params, row)
    assert sorted(map(str, native)) == sorted(map(str, entry.keys(spec)))
    assert getattr(reductions, f"to_{row}")(spec, params).keys() == native.keys()
    back = getattr(reductions, f"from_{row}")(spec, native)
    assert back.keys() == params.keys()
    for k in params:
        np.testing.assert_array_equal(to_np(back[k]), to_np(params[k]))


# structure -> spec keyword arguments that use it on a fold of M modes (a SuperLoRA of one factor per group)
STRUCTURE_ROWS: dict[str, dict] = {
    "tucker": dict(groups=1, fold="balanced", order=3, rank=(2, 3, 2)),
    "cp": dict(groups=1, fold="balanced", order=3, rank=3),
    "lora": dict(rank=3),
    "dense": dict(groups=2, fold="balanced", order=2),
    "tt": dict(groups=1, fold="balanced", order=4, rank=(2, 3, 2)),
}


def test_every_registered_structure_has_a_row():
    assert set(STRUCTURE_ROWS) == set(STRUCTURE_REGISTRY)


@pytest.mark.parametrize("row", sorted(STRUCTURE_ROWS))
def test_structure_row(row, tmp_path):
    """Terms fit shapes, the zero block is a parameter, zero_init zeroes dW (and only then), the network draws."""
    targets = {"a": (12, 10), "b": (6, 9)}
    spec = slt.SuperLoRA(targets, structure=row, **STRUCTURE_ROWS[row])
    for g in spec.groups:
        f = g.factors[0]
        assert f.structure == row and f.kind is structure_named(row)
        shapes = f.param_shapes()
        assert f.zero_block in shapes and f.num_params == sum(math.prod(s) for s in shapes.values())
        for t in g.tensors:
            assert len(t.subscripts) == len(t.shape) == len(shapes[t.local])
    zero = spec.contract(spec.init(seed=3))
    assert all(not np.any(zero[t]) for t in targets)
    nonzero = spec.contract(spec.init(seed=3, zero_init=False))
    assert all(np.abs(nonzero[t]).max() > 0 for t in targets)
    spec.draw(0, tmp_path / f"{row}.png")
    assert (tmp_path / f"{row}.png").stat().st_size > 1000


def test_registries_refuse_a_second_entry_of_one_name():
    with pytest.raises(SpecError, match="new name"):
        register_variant(VARIANT_REGISTRY["lora"])
    with pytest.raises(SpecError, match="new name"):
        register_structure(STRUCTURE_REGISTRY["cp"])
    with pytest.raises(SpecError, match="Variant instance"):
        register_variant("lora")
    with pytest.raises(SpecError, match="structure"):
        FactorSpec("nope", (2, 3), (1,)).param_shapes()


def test_a_registered_variant_is_looked_up_everywhere():
    """A new entry is enough: variants.<name>, identify(), to_/from_<name> and check_reduction find it."""
    lora = VARIANT_REGISTRY["lora"]

    class Square(type(lora)):  # LoRA of square weights only, named first
        name, display, priority = "square-lora-example", "SquareLoRA", 0

        def recognise(self, spec):
            return lora.recognise(spec) and all(t.matrix_shape[0] == t.matrix_shape[1] for t in spec.targets)

    register_variant(Square())
    try:
        spec = getattr(variants, "square-lora-example")({"w": (5, 5)}, 2)
        assert spec.identify() == "square-lora-example"
        assert reductions.reduces_to(spec) == ["square-lora-example", "lora"]
        assert slt.check_reduction(spec).max_error < 1e-12
        assert getattr(reductions, "to_square-lora-example")(spec, spec.init()).keys() == {"w"}
        assert slt.SuperLoRA({"w": (5, 4)}, rank=2).identify() == "lora"
    finally:
        del VARIANT_REGISTRY["square-lora-example"]
    assert "square-lora-example" not in variants.VARIANTS


@settings(max_examples=20, deadline=None)
@given(name=st.sampled_from(sorted(VARIANT_ROWS)))
def test_variant_entries_are_complete(name):
    entry = VARIANT_REGISTRY[name]
    assert isinstance(entry, Variant) and entry.name == name and entry.display and entry.formula and entry.native_form
    assert entry.key in ("target", "group") and callable(entry.build) and entry.build.__doc__
