"""Every bad input of docs/design.md §5 gets a SpecError naming the field, the value and what is valid."""

from __future__ import annotations

import numpy as np
import pytest

import superlora_tn as slt

T = {"a": (8, 8), "b": (8, 4)}

CASES = [
    # (kwargs, targets, field, fragment of the message)
    (dict(rank=0), T, "rank", "positive int"),
    (dict(rank=-2), T, "rank", "positive int"),
    (dict(rank=2.5), T, "rank", "positive int"),
    (dict(rank=(2, 2, 2)), T, "rank", "tuple of 2"),
    (dict(rank=[2, 2]), T, "rank", "list of 1"),
    (dict(order=0), T, "order", "positive integer"),
    (dict(splits=0), T, "splits", "positive integer"),
    (dict(splits=1.5), T, "splits", "positive integer"),
    (dict(structure="hosvd"), T, "structure", "tucker"),
    (dict(structure="lora", order=3, fold="balanced", groups=1), T, "structure", "2-mode"),
    (dict(structure="cp", rank=(2, 3)), T, "rank", "single rank"),
    (dict(groups="layer"), T, "groups", '"weight"'),
    (dict(groups=0), T, "groups", "between 1"),
    (dict(groups=[["a"], ["a", "b"]]), T, "groups", "exactly one group"),
    (dict(groups=[["a"]]), T, "groups", "missing"),
    (dict(groups=[["a"], ["c"]]), T, "groups", "names of targets"),
    (dict(groups=1), T, "fold", "natural fold needs"),
    (dict(fold="natural", projection=slt.Fastfood(0.5)), T, "fold", "natural fold needs"),
    (dict(fold="stack", groups=1), T, "fold", "one shape"),
    (dict(fold="stack", groups=1, order=2), {"a": (4, 4), "b": (4, 4)}, "order", "3"),
    (dict(fold=(2, 2), groups=1), T, "fold", "at least 96"),
    (dict(fold="round"), T, "fold", "natural"),
    (dict(fold=(3, 0)), T, "fold", "positive"),
    (dict(order=3, fold=(4, 4)), T, "order", "length of fold"),
    (dict(shuffle=-1), T, "shuffle", "non-negative"),
    (dict(seed="x"), T, "seed", "non-negative"),
    (dict(alpha=float("nan")), T, "alpha", "finite"),
    (dict(split_factor=0), T, "split_factor", "-1"),
    (dict(identity_modes=(5,), structure="tucker"), T, "identity_modes", "mode indices"),
    (dict(identity_modes=(0,), structure="tucker", rank=(3, 2)), T, "rank", "identity mode"),
    (dict(scale={"zz": 2.0}), T, "scale", "target names"),
    (dict(projection="fastfood"), T, "projection", "Fastfood"),
    (dict(alpha=0), T, "alpha", "dead adapter"),
    (dict(split_factor=4, splits=3), T, "split_factor", "splits=2"),
    (dict(exact_splits="yes"), T, "exact_splits", "True or False"),
    (dict(identity_modes=(0,), structure="lora"), T, "identity_modes", "tucker"),
    (dict(identity_modes=0), T, "identity_modes", "tuple of mode indices"),
    (dict(identity_modes=None), T, "identity_modes", "tuple of mode indices"),
    (dict(scale=5), T, "scale", "mapping"),
    (dict(groups=[[["a"]], ["b"]]), T, "groups", "names of targets"),
    ({}, None, "targets", "non-empty mapping"),
    ({}, 5, "targets", "non-empty mapping"),
    ({}, {}, "targets", "non-empty"),
    ({}, {"a": (8, 0)}, "targets['a']", "positive integers"),
    ({}, {"a": (8, -1)}, "targets['a']", "positive integers"),
    ({}, {"a": 8}, "targets['a']", "shape tuple"),
    ({}, [("a", (2, 2)), ("a", (2, 2))], "targets", "unique"),
]


@pytest.mark.parametrize("kwargs,targets,field,fragment", CASES, ids=[f"{c[2]}-{i}" for i, c in enumerate(CASES)])
def test_bad_spec_arguments(kwargs: dict, targets: dict, field: str, fragment: str) -> None:
    with pytest.raises(slt.SpecError) as info:
        slt.SuperLoRA(targets, **kwargs)
    assert info.value.field == field
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("ratio", [0, -0.1, 1.5, float("nan"), True])
def test_projection_ratio_outside_unit_interval(ratio: float) -> None:
    with pytest.raises(slt.SpecError, match=r"projection.ratio.*\(0, 1\]"):
        slt.Fastfood(ratio=ratio)


def test_unknown_backend_lists_the_installed_ones() -> None:
    spec = slt.SuperLoRA(T, rank=2)
    with pytest.raises(slt.SpecError, match=r"backend='mxnet'.*numpy"):
        spec.contract(backend="mxnet")
    with pytest.raises(slt.SpecError, match="backend"):
        spec.init(backend="mxnet")


def test_parameters_with_wrong_names_shapes_or_dtypes() -> None:
    spec = slt.SuperLoRA(T, rank=2)
    good = spec.init()
    with pytest.raises(slt.SpecError, match="missing"):
        spec.contract({k: v for k, v in list(good.items())[1:]})
    with pytest.raises(slt.SpecError, match="unexpected"):
        spec.contract({**good, "extra": np.zeros(2)})
    bad_shape = dict(good, g0_k0_A0=np.zeros((8, 3)))
    with pytest.raises(slt.SpecError, match=r"g0_k0_A0.*shape \(8, 3\).*shape \(8, 2\)"):
        spec.contract(bad_shape)
    mixed = dict(good, g0_k0_A0=good["g0_k0_A0"].astype(np.float32))
    with pytest.raises(slt.SpecError, match="one dtype"):
        spec.contract(mixed)
    with pytest.raises(slt.SpecError, match="mapping"):
        spec.contract([1, 2])


def test_bad_zero_init_and_seed() -> None:
    spec = slt.SuperLoRA(T, rank=2)
    with pytest.raises(slt.SpecError, match="zero_init"):
        spec.init(zero_init=["nope"])
    with pytest.raises(slt.SpecError, match="zero_init"):
        spec.init(zero_init="g0_k0_A0")
    with pytest.raises(slt.SpecError, match="seed"):
        spec.init(seed=-1)
    with pytest.raises(slt.SpecError, match="dtype"):
        spec.init(dtype="complex-ish")
    with pytest.raises(slt.SpecError, match="zero_init"):
        spec.init(zero_init=[["g0_k0_A0"]])


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("dtype", ["int32", "int64", "bool"])
def test_integer_dtypes_are_refused_not_truncated_to_zero(backend: str, dtype: str) -> None:
    pytest.importorskip(backend)
    spec = slt.SuperLoRA(T, rank=2)
    with pytest.raises(slt.SpecError, match="floating dtype"):
        spec.init(backend, dtype=dtype)
    with pytest.raises(slt.SpecError, match="floating dtype"):
        spec.contract(backend=backend, dtype=dtype)
    ints = {k: np.ones(s, dtype=dtype) for k, s in spec.param_shapes.items()}
    with pytest.raises(slt.SpecError, match="floating dtype"):
        spec.contract(ints, backend=backend)


def test_numpy_integers_are_accepted_where_ints_are() -> None:
    spec = slt.SuperLoRA(T, groups=np.int64(2), fold="balanced", rank=np.int64(2), seed=np.int64(3), shuffle=np.int32(1))
    assert len(spec.groups) == 2 and spec.config["seed"] == 3


def test_jax_float64_without_x64_is_refused() -> None:
    jax = pytest.importorskip("jax")
    spec = slt.SuperLoRA(T, rank=2)
    try:
        jax.config.update("jax_enable_x64", False)
        with pytest.raises(slt.SpecError, match="jax_enable_x64"):
            spec.init("jax", dtype="float64")
        assert str(spec.init("jax")["g0_k0_A0"].dtype) == "float32"
    finally:
        jax.config.update("jax_enable_x64", True)
