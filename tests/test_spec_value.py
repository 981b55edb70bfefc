"""The spec is an immutable value: one canonical spelling, equality and hash over (targets,
configuration), no mutation, ``replace``, and a JSON-ready ``to_dict`` (docs/design.md §2).

The tables below are the contract, as einops tabulates equivalent patterns: each row of
``EQUIVALENT`` lists spellings that must give one spec (equal, equal hashes, the same networks,
the same dW for the same parameters); each row of ``DISTINCT`` two spellings that must not.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import specs

import superlora_tn as slt
from superlora_tn.config import PerFactor, SpecConfig

QV = {"q": (16, 16), "v": (16, 16)}
ABCD = {"a": (4, 4), "b": (4, 4), "c": (4, 4), "d": (4, 4)}
STACK = {"l0.q": (8, 8), "l1.q": (8, 8), "l2.q": (8, 8)}
CONV = {"conv": (8, 4, 3, 3)}

# name -> (targets, [spelling, spelling, ...]); every spelling builds the same spec.
EQUIVALENT: dict[str, tuple[dict, list[dict]]] = {
    "rank int / per-mode tuple / per-factor list": (QV, [
        dict(rank=4), dict(rank=(4, 4)), dict(rank=[4]), dict(rank=[(4, 4)]), dict(rank=np.int64(4)),
        dict(rank=np.array([4, 4]))]),
    "groups weight / one-target lists / count": (QV, [
        dict(groups="weight"), dict(groups=[["q"], ["v"]]), dict(groups=(("q",), ("v",))), dict(groups=2)]),
    "groups one chunk / one list": (QV, [
        dict(groups=1, fold="balanced"), dict(groups=[["q", "v"]], fold="balanced"), dict(groups=np.int64(1), fold="balanced")]),
    "groups explicit lists that are the balanced chunks": (ABCD, [
        dict(groups=2, fold="balanced"), dict(groups=[["a", "b"], ["c", "d"]], fold="balanced")]),
    "fold tuple / list / array, order implied": (QV, [
        dict(groups=1, fold=(16, 32)), dict(groups=1, fold=[16, 32]), dict(groups=1, fold=np.array([16, 32])),
        dict(groups=1, fold=(16, 32), order=2)]),
    "structure lora / None / per-factor list (M = 2)": (QV, [
        dict(rank=2), dict(rank=2, structure="lora"), dict(rank=2, structure=["lora"])]),
    "structure tucker / None (M = 3)": (QV, [
        dict(order=3, rank=2), dict(order=3, rank=2, structure="tucker"), dict(order=3, rank=(2, 2, 2), structure=["tucker"])]),
    "order implied by the fold": (STACK, [
        dict(groups=1, fold="stack", rank=2), dict(groups=1, fold="stack", order=3, rank=2),
        dict(groups=[list(STACK)], fold="stack", order=np.int32(3), rank=2, structure="tucker")]),
    "order of the natural fold": (QV, [dict(rank=2), dict(rank=2, order=2)]),
    "order does nothing with fold='shape'": (CONV, [dict(fold="shape", rank=2), dict(fold="shape", rank=2, order=4)]),
    "identity modes: order and repeats": (STACK, [
        dict(groups=1, fold="stack", rank=2, identity_modes=(0, 2)), dict(groups=1, fold="stack", rank=2, identity_modes=[2, 0, 2]),
        dict(groups=1, fold="stack", rank=2, identity_modes=np.array([2, 0]))]),
    "an identity mode's rank is its size": (STACK, [
        dict(groups=1, fold="stack", rank=2, identity_modes=(0,)),
        dict(groups=1, fold="stack", rank=(3, 2, 2), identity_modes=(0,))]),
    "per-factor ranks that agree": (QV, [
        dict(splits=2, rank=2), dict(splits=2, rank=[2, 2]), dict(splits=2, rank=[(2, 2), 2]), dict(splits=2, rank=(2, 2))]),
    "per-factor structures that agree": (QV, [
        dict(splits=2, rank=2, structure="cp"), dict(splits=2, rank=2, structure=["cp", "cp"])]),
    "a dense factor's rank does nothing (LoKr)": (QV, [
        dict(splits=2, structure=["dense", "lora"], rank=8, exact_splits=True),
        dict(splits=2, structure=["dense", "lora"], rank=[3, 8], exact_splits=True),
        dict(splits=2, structure=["dense", "lora"], rank=[(5, 5), (8, 8)], exact_splits=True)]),
    "all-dense: rank does nothing": (QV, [dict(structure="dense"), dict(structure="dense", rank=3), dict(structure="dense", rank=(2, 5))]),
    "numbers: NumPy and Python, int and float": (QV, [
        dict(rank=4, seed=3, alpha=8, shuffle=5, split_factor=-1),
        dict(rank=np.int32(4), seed=np.uint8(3), alpha=np.float32(8.0), shuffle=np.int64(5), split_factor=np.int8(-1)),
        dict(rank=4, seed=3, alpha=8.0, shuffle=5)]),
    "scale: order of the entries, int / float / NumPy": (QV, [
        dict(scale={"q": 2.0, "v": 0.5}), dict(scale={"v": 0.5, "q": 2}), dict(scale={"q": np.float64(2.0), "v": np.float32(0.5)})]),
    "no scale: None / empty / ones": (QV, [dict(scale=None), dict(scale={}), dict(scale={"q": 1, "v": 1.0})]),
    "a scale of 1 is no scale": (QV, [dict(alpha=2.0, scale={"q": 3.0}), dict(alpha=2.0, scale={"v": 1.0, "q": 3.0})]),
    "projection: NumPy ratio and seed": (QV, [
        dict(groups=1, fold="balanced", projection=slt.Fastfood(0.5, seed=1)),
        dict(groups=1, fold="balanced", projection=slt.Fastfood(np.float64(0.5), seed=np.int64(1)))]),
    "projection: ratio 1 as int or float": (QV, [
        dict(groups=1, fold="balanced", projection=slt.Gaussian(1)), dict(groups=1, fold="balanced", projection=slt.Gaussian(1.0))]),
}

# name -> (targets, spelling a, spelling b, why they differ: "networks", "init", "dW", or the
# arguments of a ``replace`` after which they are different adapters); never one spec.
DISTINCT: dict[str, tuple[dict, dict, dict, str | dict]] = {
    "per-mode tuple vs per-factor list": (QV, dict(splits=2, structure="tucker", rank=(2, 3)),
                                          dict(splits=2, structure="tucker", rank=[2, 3]), "networks"),
    "tucker ranks": (QV, dict(order=3, rank=(2, 3, 2)), dict(order=3, rank=2), "networks"),
    "the order of the groups": (QV, dict(groups=[["v"], ["q"]]), dict(groups="weight"), "networks"),
    "one group vs one per weight": (QV, dict(groups=1, fold="balanced"), dict(groups=2, fold="balanced"), "networks"),
    "the order of the fold": (QV, dict(rank=2, order=3), dict(rank=2), "networks"),
    "cp vs lora (same dW, another variant)": (QV, dict(rank=2, structure="cp"), dict(rank=2, structure="lora"), "networks"),
    "kron vs hadamard": (QV, dict(splits=2, rank=2), dict(splits=2, rank=2, compose="hadamard"), "networks"),
    "Fastfood vs Gaussian": (QV, dict(groups=1, fold="balanced", projection=slt.Fastfood(0.5)),
                             dict(groups=1, fold="balanced", projection=slt.Gaussian(0.5)), "networks"),
    "the seed (init)": (QV, dict(seed=0), dict(seed=1), "init"),
    "the shuffle": (QV, dict(groups=1, fold="balanced", shuffle=1), dict(groups=1, fold="balanced", shuffle=2), "dW"),
    "alpha": (QV, dict(alpha=4.0), dict(alpha=8.0), "dW"),
    # Same networks and dW for these targets, but different rules: each behaves differently on a change.
    "alpha = r vs no alpha (scale 1 either way)": (QV, dict(rank=4, alpha=4.0), dict(rank=4), {"rank": 8}),
    "a fold name vs the shape it gives here": (QV, dict(fold="natural"), dict(groups="weight", fold=(16, 16)),
                                               {"targets": {"w": (8, 8)}}),
    "a projection's own seed vs the spec's seed": (QV, dict(groups=1, fold="balanced", seed=3, projection=slt.Fastfood(0.5)),
                                                   dict(groups=1, fold="balanced", seed=3, projection=slt.Fastfood(0.5, seed=3)),
                                                   "networks"),
    "exact splits where every split is exact": (QV, dict(splits=2, rank=2, exact_splits=True), dict(splits=2, rank=2),
                                                {"targets": {"w": (11, 7)}}),
}


def _same_adapter(a: slt.SuperLoRA, b: slt.SuperLoRA) -> None:
    """The same networks, parameters and dW (for the same parameters), bit for bit."""
    assert a.groups == b.groups and a.param_shapes == b.param_shapes and a.rank_ref == b.rank_ref
    assert a.scale_factor == b.scale_factor and [a.target_scale(t.name) for t in a.targets] == [b.target_scale(t.name) for t in b.targets]
    params = a.init(zero_init=False)
    da, db = a.contract(params), b.contract(params)
    assert all(np.array_equal(da[name], db[name]) for name in da) and any(np.abs(d).max() > 0 for d in da.values())


@pytest.mark.parametrize("row", list(EQUIVALENT))
def test_equivalent_spellings_are_one_spec(row):
    targets, spellings = EQUIVALENT[row]
    built = [slt.SuperLoRA(targets, **kwargs) for kwargs in spellings]
    first = built[0]
    for spec in built[1:]:
        assert spec == first and hash(spec) == hash(first) and spec.config == first.config
        assert spec.to_dict() == first.to_dict() and json.dumps(spec.to_dict()) == json.dumps(first.to_dict())
        assert repr(spec) == repr(first)
        _same_adapter(spec, first)
    assert len(set(built)) == 1


def _differs(a: slt.SuperLoRA, b: slt.SuperLoRA) -> bool:
    """Another adapter: other networks, or other dW for the same parameters."""
    if a.groups != b.groups:
        return True
    params = a.init(zero_init=False)
    da, db = a.contract(params), b.contract(params)
    return any(not np.array_equal(da[name], db[name]) for name in da)


@pytest.mark.parametrize("row", list(DISTINCT))
def test_distinct_spellings_are_distinct_specs(row):
    targets, kwargs_a, kwargs_b, why = DISTINCT[row]
    a, b = slt.SuperLoRA(targets, **kwargs_a), slt.SuperLoRA(targets, **kwargs_b)
    assert a != b and a.config != b.config and a.to_dict() != b.to_dict()
    if why == "networks":
        assert a.groups != b.groups
    elif why == "init":
        assert not _differs(a, b)
        ia, ib = a.init(zero_init=False), b.init(zero_init=False)
        assert any(not np.array_equal(ia[k], ib[k]) for k in ia)
    elif why == "dW":
        assert a.groups == b.groups and _differs(a, b)
    else:  # the same adapter for these targets, but another rule: the change ``why`` tells them apart
        assert not _differs(a, b)
        a2, b2 = a.replace(**why), b.replace(**why)
        assert a2 != b2 and _differs(a2, b2)


def test_canonical_values_are_plain_and_simple():
    spec = slt.SuperLoRA(QV, splits=2, rank=[np.int64(2), (3, 3)], structure=["cp", "lora"], groups=[["q"], ["v"]],
                         alpha=np.float32(0.5), identity_modes=(), scale={"v": np.float64(2.0)})
    c = spec.config
    assert isinstance(c, SpecConfig) and c.groups == "weight" and c.rank == PerFactor([2, 3]) and c.structure == ["cp", "lora"]
    assert type(c.alpha) is float and type(c.scale["v"]) is float and c.order is None
    assert spec.to_dict()["config"]["rank"] == {"per_factor": [2, 3]}
    assert slt.SuperLoRA(STACK, groups=1, fold="stack", rank=2).config.structure == "tucker"


def test_mutation_raises():
    spec = slt.SuperLoRA(QV, rank=2)
    before, h = spec.to_dict(), hash(spec)
    with pytest.raises(TypeError, match="immutable"):
        spec.config["rank"] = 4
    with pytest.raises(TypeError, match="immutable"):
        del spec.config["rank"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.config.rank = 4
    for name, value in (("rank_ref", 4), ("groups", ()), ("targets", ()), ("config", {}), ("anything", 1)):
        with pytest.raises(AttributeError, match="immutable"):
            setattr(spec, name, value)
    with pytest.raises(AttributeError, match="immutable"):
        del spec.groups
    with pytest.raises(TypeError):
        slt.SuperLoRA(QV, scale={"q": 2.0}).config.scale["q"] = 3.0
    with pytest.raises(AttributeError):
        slt.SuperLoRA(QV, splits=2, rank=[2, 3]).config.rank.append(4)
    assert spec.to_dict() == before and hash(spec) == h and spec == slt.SuperLoRA(QV, rank=2)
    spec.plan()  # the cached plan is not an assignment
    assert hash(spec) == h


def test_config_reads_as_a_mapping_and_as_attributes():
    spec = slt.SuperLoRA(QV, rank=2, shuffle=3, projection=None)
    c = spec.config
    assert c["shuffle"] == c.shuffle == 3 and "rank" in c and "nonsense" not in c and len(c) == len(list(c))
    assert dict(c) == {k: getattr(c, k) for k in c} and set(c) == set(slt.spec.SPEC_ARGUMENTS)
    assert slt.SuperLoRA(QV, **dict(c)) == spec and slt.SuperLoRA(QV, **c) == spec
    with pytest.raises(KeyError):
        c["nonsense"]


def test_replace_returns_a_new_checked_spec():
    spec = slt.SuperLoRA(QV, rank=2, alpha=4.0)
    wider = spec.replace(rank=4)
    assert wider == slt.SuperLoRA(QV, rank=4, alpha=4.0) and wider.scale_factor == 1.0 and spec.config.rank == 2
    assert spec.replace() == spec and spec.replace(targets={"w": (8, 8)}) == slt.SuperLoRA({"w": (8, 8)}, rank=2, alpha=4.0)
    with pytest.raises(slt.SpecError, match="rank"):
        spec.replace(rank=0)
    with pytest.raises(slt.SpecError, match="SuperLoRA arguments only"):
        spec.replace(rnak=4)
    assert spec.replace(order=3, structure=None).config.structure == "tucker"


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_json_round_trip_with_numpy_scalars(backend):
    pytest.importorskip(backend)
    spec = slt.SuperLoRA(
        {"q": (np.int64(16), np.int32(16)), "v": np.array([16, 8])}, groups=np.int64(1), fold=np.array([8, 48]),
        splits=np.int64(2), rank=[np.int64(2), (np.int32(2), np.int8(3))], structure=["tucker", np.str_("tucker")],
        projection=slt.Gaussian(np.float64(0.5), seed=np.int64(7)), shuffle=np.uint16(4), alpha=np.float32(3.0),
        seed=np.int64(9), scale={"v": np.float64(0.25)}, split_factor=np.int64(-1), exact_splits=np.bool_(False))
    text = json.dumps(spec.to_dict())  # no NumPy value survives construction
    back = slt.SuperLoRA.from_dict(json.loads(text))
    assert back == spec and hash(back) == hash(spec) and back.to_dict() == spec.to_dict()
    assert json.dumps(back.to_dict()) == text
    params = spec.init(backend, zero_init=False)
    assert all(np.allclose(np.asarray(x), np.asarray(y)) for x, y in zip(spec.contract(params).values(), back.contract(params).values()))


def test_pickle_and_copy_keep_the_value():
    spec = slt.SuperLoRA(QV, splits=2, rank=[2, 3], scale={"q": 2.0}, projection=None)
    spec.plan()
    back = pickle.loads(pickle.dumps(spec))
    assert back == spec and hash(back) == hash(spec) and type(back) is slt.SuperLoRA and "_plan" not in vars(back)
    assert copy.copy(spec) is spec and copy.deepcopy(spec) is spec


def test_every_spec_has_the_operations():
    """The facade provides them, whatever built the spec (constructor, from_dict, replace, a variant)."""
    for spec in (slt.SuperLoRA(QV, rank=2), slt.SuperLoRA.from_dict(slt.SuperLoRA(QV, rank=2).to_dict()),
                 slt.SuperLoRA(QV, rank=2).replace(rank=3), slt.variants.lokr(QV, 2)):
        assert type(spec) is slt.SuperLoRA
        assert spec.contract()["q"].shape == (16, 16) and spec.identify() in ("lora", "lokr")
        assert set(spec.init()) == set(spec.param_shapes) and isinstance(spec.summary(), str) and spec.summary()


def _respell(draw: st.DrawFn, spec: slt.SuperLoRA) -> tuple[object, dict]:
    """Another spelling of ``spec``'s arguments (see EQUIVALENT), drawn at random."""
    c = dict(spec.config)
    K = c["splits"]
    orders = {len(g.fold) for g in spec.groups}
    if isinstance(c["rank"], int) and len(orders) == 1 and not c["identity_modes"] and draw(st.booleans()):
        c["rank"] = (c["rank"],) * orders.pop()
    if not isinstance(c["rank"], PerFactor) and draw(st.booleans()):
        c["rank"] = [c["rank"]] * K
    elif isinstance(c["rank"], PerFactor):
        c["rank"] = list(c["rank"])
    if isinstance(c["structure"], str) and draw(st.booleans()):
        c["structure"] = [c["structure"]] * K
    if c["groups"] == "weight" and draw(st.booleans()):
        c["groups"] = [[t.name] for t in spec.targets]
    elif isinstance(c["groups"], tuple):
        c["groups"] = [list(g) for g in c["groups"]]
    if c["order"] is None and c["fold"] != "shape" and draw(st.booleans()):
        c["order"] = len(c["fold"]) if isinstance(c["fold"], tuple) else 3 if c["fold"] == "stack" else 2
    if isinstance(c["fold"], tuple) and draw(st.booleans()):
        c["fold"] = np.array(c["fold"])
    for key in ("seed", "splits"):
        if draw(st.booleans()):
            c[key] = np.int64(c[key])
    if c["alpha"] is not None and draw(st.booleans()):
        c["alpha"] = np.float64(c["alpha"])
    targets = [(t.name, t.shape) for t in spec.targets] if draw(st.booleans()) else spec.target_shapes
    return targets, c


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_spelling_reduces_to_the_canonical_one(data):
    spec = data.draw(specs())
    canonical = slt.SuperLoRA(spec.target_shapes, **spec.config)
    assert canonical == spec and hash(canonical) == hash(spec)
    assert canonical.groups == spec.groups  # the canonical spelling builds what the given one built
    assert canonical.config == spec.config  # canonical is a fixed point
    targets, spelling = _respell(data.draw, spec)
    other = slt.SuperLoRA(targets, **spelling)
    assert other == spec and hash(other) == hash(spec) and other.groups == spec.groups
    back = slt.SuperLoRA.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert back == spec and back.groups == spec.groups
