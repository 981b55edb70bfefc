"""spec.contract equals the independent reference of docs/design.md §2, on every backend."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import BACKENDS, reference_contract, to_numpy
from hypothesis import HealthCheck, given, settings
from strategies import specs

import superlora_tn as slt

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@SETTINGS
@given(spec=specs())
def test_contract_equals_reference_numpy(spec: slt.SuperLoRA) -> None:
    params = spec.init(zero_init=False, dtype="float64")
    got = spec.contract(params)
    want = reference_contract(spec, params)
    for name, shape in spec.target_shapes.items():
        assert got[name].shape == shape
        np.testing.assert_allclose(got[name], want[name], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(spec=specs())
def test_backends_agree_float64(backend: str, spec: slt.SuperLoRA) -> None:
    ref = spec.contract(spec.init("numpy", zero_init=False, dtype="float64"))
    got = spec.contract(spec.init(backend, zero_init=False, dtype="float64"))
    for name in ref:
        np.testing.assert_allclose(to_numpy(got[name]), ref[name], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(spec=specs())
def test_float32_within_round_off(backend: str, spec: slt.SuperLoRA) -> None:
    ref = spec.contract(spec.init("numpy", zero_init=False, dtype="float64"))
    got = spec.contract(spec.init(backend, zero_init=False, dtype="float32"))
    scale = max(float(np.abs(v).max()) for v in ref.values()) or 1.0
    for name in ref:
        out = to_numpy(got[name])
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, ref[name], atol=1e-5 * scale, rtol=1e-5)


def test_lora_is_b_at_a() -> None:
    spec = slt.SuperLoRA({"w": (5, 7)}, rank=3, alpha=6)
    p = spec.init(zero_init=False)
    np.testing.assert_allclose(spec.contract(p)["w"], 2.0 * p["g0_k0_A0"] @ p["g0_k0_A1"].T, rtol=1e-13)


def test_kronecker_first_factor_is_coarse() -> None:
    spec = slt.SuperLoRA({"w": (6, 10)}, splits=2, structure="dense", exact_splits=True)
    p = spec.init(zero_init=False)
    assert p["g0_k0_dense"].shape == (2, 2) and p["g0_k1_dense"].shape == (3, 5)
    np.testing.assert_allclose(spec.contract(p)["w"], np.kron(p["g0_k0_dense"], p["g0_k1_dense"]), rtol=1e-13)


def test_row_major_flattening_and_balanced_chunks() -> None:
    # dense M=1 over 2 groups: dW_all is the concatenation of row-major flattened targets
    spec = slt.SuperLoRA({"a": (2, 3), "b": (3,)}, groups=2, fold="balanced", order=1, structure="dense")
    assert [g.size for g in spec.groups] == [5, 4]  # first N mod G chunks get one more entry
    p = spec.init(zero_init=False)
    z = np.concatenate([p["g0_k0_dense"], p["g1_k0_dense"]])
    d = spec.contract(p)
    np.testing.assert_array_equal(d["a"], z[:6].reshape(2, 3))
    np.testing.assert_array_equal(d["b"], z[6:])


def test_explicit_groups_concatenate_in_given_order() -> None:
    spec = slt.SuperLoRA({"q0": (2, 2), "v0": (2, 2), "q1": (2, 2)}, groups=[["q1", "q0"], ["v0"]],
                         fold="balanced", order=1, structure="dense")
    p = spec.init(zero_init=False)
    d = spec.contract(p)
    np.testing.assert_array_equal(d["q1"].ravel(), p["g0_k0_dense"][:4])
    np.testing.assert_array_equal(d["q0"].ravel(), p["g0_k0_dense"][4:])
    np.testing.assert_array_equal(d["v0"].ravel(), p["g1_k0_dense"])


def test_shuffle_is_a_permutation_of_the_unshuffled_output() -> None:
    targets = {"a": (4, 5), "b": (3, 3)}
    plain = slt.SuperLoRA(targets, groups=2, fold="balanced", order=2, rank=2)
    mixed = slt.SuperLoRA(targets, groups=2, fold="balanced", order=2, rank=2, shuffle=11)
    p = plain.init(zero_init=False)
    a = np.concatenate([v.ravel() for v in plain.contract(p).values()])
    b = np.concatenate([v.ravel() for v in mixed.contract(p).values()])
    perm = mixed.plan().permutation()
    assert sorted(perm.tolist()) == list(range(29)) and not np.array_equal(perm, np.arange(29))
    np.testing.assert_array_equal(b, a[perm])
    np.testing.assert_allclose(np.sort(a), np.sort(b))


def test_shuffle_scatters_into_dw_all_in_target_order_even_with_reordered_groups() -> None:
    targets = {"a": (3, 5), "b": (4, 2)}
    spec = slt.SuperLoRA(targets, groups=[["b", "a"]], fold="balanced", rank=2, shuffle=3)
    unshuffled = slt.SuperLoRA(targets, groups=[["b", "a"]], fold="balanced", rank=2)
    p = spec.init(zero_init=False)
    plain = unshuffled.contract(p)
    z = np.concatenate([plain["b"].ravel(), plain["a"].ravel()])  # the generator output, group order
    got = spec.contract(p)
    dw_all = np.concatenate([got["a"].ravel(), got["b"].ravel()])  # target order
    np.testing.assert_array_equal(dw_all, z[spec.plan().permutation()])


def test_natural_fold_modes_split_rows_and_columns() -> None:
    spec = slt.SuperLoRA({"w": (12, 20)}, order=4, structure="tucker", rank=2)
    assert spec.groups[0].fold == (3, 4, 4, 5)


def test_truncation_keeps_the_leading_entries() -> None:
    spec = slt.SuperLoRA({"w": (7, 7)}, splits=2, structure="dense")  # 7 is prime: 3x3 factors, cut to 7
    g = spec.groups[0]
    assert g.kron_shape == (9, 9) and g.fold == (7, 7)
    p = spec.init(zero_init=False)
    full = np.kron(p["g0_k0_dense"], p["g0_k1_dense"])
    np.testing.assert_allclose(spec.contract(p)["w"], full[:7, :7], rtol=1e-13)


def test_per_target_scale_and_alpha() -> None:
    spec = slt.SuperLoRA({"a": (3, 3), "b": (3, 3)}, rank=2, alpha=1.0, scale={"b": 3.0})
    p = spec.init(zero_init=False)
    d = spec.contract(p)
    np.testing.assert_allclose(d["a"], 0.5 * p["g0_k0_A0"] @ p["g0_k0_A1"].T, rtol=1e-13)
    np.testing.assert_allclose(d["b"], 1.5 * p["g1_k0_A0"] @ p["g1_k0_A1"].T, rtol=1e-13)
