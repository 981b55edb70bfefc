"""Issue 12: the public API's bad inputs are SpecErrors (JAX, torch devices and dtypes, helpers),
and aliased ``out=`` buffers are refused instead of returning a wrong dW (item 7)."""

from __future__ import annotations

import numpy as np
import pytest

import superlora_tn as slt
from superlora_tn.errors import SpecError

T = {"a": (8, 8), "b": (8, 8)}


# ----------------------------------------------------------------- 7. aliased out= buffers
def test_aliased_numpy_out_buffers_are_refused():
    spec = slt.SuperLoRA(T, rank=2)
    params = spec.init(zero_init=False)
    shared = np.zeros((8, 8))
    with pytest.raises(SpecError) as info:
        spec.contract(params, out={"a": shared, "b": shared})
    assert info.value.field == "out" and set(info.value.value) == {"a", "b"}
    big = np.zeros((16, 8))
    with pytest.raises(SpecError):
        spec.contract(params, out={"a": big[:8], "b": big[4:12]})  # overlapping views
    got = spec.contract(params, out={"a": big[:8], "b": big[8:]})  # disjoint views of one buffer: fine
    want = spec.contract(params)
    np.testing.assert_allclose(got["a"], want["a"])
    np.testing.assert_allclose(got["b"], want["b"])


def test_aliased_torch_out_buffers_are_refused():
    torch = pytest.importorskip("torch")
    spec = slt.SuperLoRA(T, rank=2)
    params = spec.init("torch", zero_init=False, dtype=torch.float64)
    shared = torch.zeros(8, 8, dtype=torch.float64)
    with pytest.raises(SpecError):
        spec.contract(params, out={"a": shared, "b": shared})
    with pytest.raises(SpecError):
        spec.contract(params, out={"a": shared, "b": shared.T})


# ----------------------------------------------------------------- JAX

@pytest.fixture
def jx():
    return pytest.importorskip("jax")


def test_jax_out_is_a_spec_error(jx):
    spec = slt.SuperLoRA(T, rank=2)
    p = spec.init("jax", zero_init=False)
    with pytest.raises(SpecError) as info:
        spec.contract(p, out={n: jx.numpy.zeros((8, 8), dtype=jx.numpy.float32) for n in T})
    assert info.value.field == "out"


@pytest.mark.parametrize("paths,field", [
    (5, "paths"), ({"a": 5}, "paths['a']"), ({"a": ()}, "paths['a']"), ({"a": "seq/-1"}, "paths['a']"),
    ({"a": "seq/5"}, "paths['a']"), ({"a": ("seq", True)}, "paths['a']"),
])
def test_jax_apply_bad_paths(jx, paths, field):
    from superlora_tn.jax import apply, init

    spec = slt.SuperLoRA({"a": (8, 8)}, rank=2)
    base = {"a": jx.numpy.zeros((8, 8)), "seq": [jx.numpy.zeros((4, 4)), jx.numpy.zeros((8, 8))]}
    with pytest.raises(SpecError) as info:
        apply(base, init(spec), spec, paths=paths)
    assert info.value.field == field


def test_jax_list_position_path_still_works(jx):
    from superlora_tn.jax import apply, init

    spec = slt.SuperLoRA({"a": (8, 8)}, rank=2)
    base = {"seq": [jx.numpy.zeros((4, 4)), jx.numpy.zeros((8, 8))]}
    new = apply(base, init(spec, zero_init=False), spec, paths={"a": "seq/1"})
    assert float(abs(new["seq"][1]).max()) > 0 and float(abs(new["seq"][0]).max()) == 0


@pytest.mark.parametrize("pattern,exclude,field", [("(", None, "pattern"), (5, None, "pattern"), ("w", "[", "exclude")])
def test_jax_targets_from_params_bad_regex(jx, pattern, exclude, field):
    from superlora_tn.jax import targets_from_params

    with pytest.raises(SpecError) as info:
        targets_from_params({"w": np.zeros((2, 2))}, pattern, exclude=exclude)
    assert info.value.field == field


def test_jax_unknown_device(jx):
    with pytest.raises(SpecError) as info:
        slt.SuperLoRA(T).init("jax", device="cuda")
    assert info.value.field == "device"


# ----------------------------------------------------------------- torch
def test_torch_unknown_device_and_meta():
    torch = pytest.importorskip("torch")
    from superlora_tn.torch import inject

    for device in ("nope", "meta"):
        with pytest.raises(SpecError) as info:
            slt.SuperLoRA(T).init("torch", device=device)
        assert info.value.field == "device"
    with torch.device("meta"):
        model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    with pytest.raises(SpecError):
        inject(model, ["0"], spec=dict(rank=2))
    assert not model[0]._forward_hooks and "forward" not in model[0].__dict__ and model[0].weight.requires_grad


def test_torch_to_float64_then_forward():
    torch = pytest.importorskip("torch")
    from superlora_tn.torch import inject

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    adapted = inject(model, ["0"], spec=dict(rank=2), zero_init=False)
    x = torch.randn(3, 4)
    y32 = adapted(x)
    adapted.to(torch.float64)
    y64 = adapted(x.double())
    assert y64.dtype == torch.float64 and adapted.adapter_dtype == torch.float64
    torch.testing.assert_close(y64.float(), y32, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------- other helpers
def test_check_reduction_and_get_backend_bad_arguments():
    with pytest.raises(SpecError) as info:
        slt.check_reduction("x", "lora")
    assert info.value.field == "spec"
    with pytest.raises(SpecError) as info:
        slt.get_backend(["numpy"])
    assert info.value.field == "backend"
