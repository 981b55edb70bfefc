"""Every fast path against the plain path (np.einsum / the old opt_einsum expression), every backend.

No timing assertions: speed is measured by ``python -m benchmarks``.
"""

from __future__ import annotations

import numpy as np
import opt_einsum
import pytest

import superlora_tn as slt
from superlora_tn.backends import get_backend
from superlora_tn.errors import SpecError
from superlora_tn.execute import run_program
from superlora_tn.factored import apply_delta, factored_supported
from superlora_tn.hadamard import fwht, hadamard_blocks, sylvester
from superlora_tn.projection import Fastfood, two_pass_gather

BACKENDS = ["numpy", "torch"]
TARGETS = {"a": (16, 24), "b": (16, 24), "c": (12, 20)}
CONFIGS = [
    dict(rank=3),
    dict(splits=2, structure=["dense", "lora"], rank=2, exact_splits=True),
    dict(splits=2, rank=2),
    dict(splits=3, rank=2),
    dict(fold="balanced", order=3, rank=2),
    dict(fold="balanced", order=4, rank=2, structure="cp"),
    dict(groups=2, fold="balanced", order=3, rank=2),
    dict(groups=[["a", "b"], ["c"]], fold="balanced", order=2, rank=2, alpha=3.0),
    dict(fold="balanced", order=3, rank=2, projection=slt.Fastfood(0.5)),
    dict(rank=2, shuffle=3),
    # a target cut over several groups, each group one whole-group piece of it (out= used to crash)
    dict(groups=6, fold="balanced", order=2, rank=2),
]


@pytest.mark.parametrize("kw", CONFIGS)
def test_program_matches_einsum(kw):
    spec = slt.SuperLoRA(TARGETS, **{k: v for k, v in kw.items() if v is not None})
    p = spec.init(zero_init=False)
    for batch in spec.plan().batches:
        ops = [np.stack([p[g.tensors[i].name] for g in batch.groups]) if batch.batched else p[batch.template.tensors[i].name]
               for i in range(len(batch.template.tensors))]
        want = np.einsum(batch.equation, *ops)
        got = run_program(batch.program, ops, get_backend("numpy"))
        assert got.flags.c_contiguous
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
        buf = np.empty(want.shape)
        run_program(batch.program, ops, get_backend("numpy"), out=buf)
        np.testing.assert_allclose(buf, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kw", CONFIGS)
def test_contract_fresh_and_out_match(backend, kw):
    spec = slt.SuperLoRA(TARGETS, **{k: v for k, v in kw.items() if v is not None})
    p64 = spec.init(zero_init=False)
    want = spec.contract(p64)
    be = get_backend(backend)
    p = {k: be.asarray(v) for k, v in p64.items()}
    got = spec.contract(p)
    for name in want:
        np.testing.assert_allclose(be.to_numpy(got[name]), want[name], rtol=1e-10, atol=1e-12)
    # expression path (the old executor) agrees with the lowered program
    for batch in spec.plan().batches:
        ops = [np.stack([p64[g.tensors[i].name] for g in batch.groups]) if batch.batched else p64[batch.template.tensors[i].name]
               for i in range(len(batch.template.tensors))]
        np.testing.assert_allclose(run_program(batch.program, ops, get_backend("numpy")),
                                   batch.expression(*ops, backend="numpy"), rtol=1e-10, atol=1e-12)
    flat = be.asarray(np.full(spec.num_entries, np.nan))
    views = spec.contract(p, out=flat)
    start = 0
    for t in spec.targets:
        np.testing.assert_allclose(be.to_numpy(views[t.name]), want[t.name], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(be.to_numpy(flat[start:start + t.size]).reshape(t.shape), want[t.name], rtol=1e-10, atol=1e-12)
        start += t.size
    bufs = {t.name: be.asarray(np.full(t.shape, np.nan)) for t in spec.targets}
    res = spec.contract(p, out=bufs)
    for name in want:
        assert res[name] is bufs[name]
        np.testing.assert_allclose(be.to_numpy(bufs[name]), want[name], rtol=1e-10, atol=1e-12)


def test_out_errors():
    spec = slt.SuperLoRA(TARGETS, rank=2)
    p = spec.init(zero_init=False)
    with pytest.raises(SpecError):
        spec.contract(p, out=np.empty(3))
    with pytest.raises(SpecError):
        spec.contract(p, out={"a": np.empty((16, 24))})
    with pytest.raises(SpecError):
        spec.contract(p, out=np.empty(spec.num_entries, dtype=np.float32))


def test_out_refused_on_jax():
    """A buffer right in every way but mutability (float32, like the parameters, of num_entries) is
    refused because JAX declares ``supports_out = False``, not for its dtype or shape."""
    jax = pytest.importorskip("jax")
    spec = slt.SuperLoRA(TARGETS, rank=2)
    p = {k: jax.numpy.asarray(v, dtype="float32") for k, v in spec.init(zero_init=False, dtype="float32").items()}
    buffer = jax.numpy.zeros(spec.num_entries, dtype="float32")
    assert buffer.dtype == p[next(iter(p))].dtype and not slt.get_backend("jax").supports_out
    with pytest.raises(SpecError, match="immutable"):
        spec.contract(p, out=buffer)


def test_jax_matches():
    jax = pytest.importorskip("jax")
    for kw in CONFIGS[:6]:
        spec = slt.SuperLoRA(TARGETS, **kw)
        p = spec.init(zero_init=False, dtype="float32")
        want = spec.contract(p)
        got = jax.jit(lambda q, spec=spec: spec.contract(q))({k: jax.numpy.asarray(v) for k, v in p.items()})
        for name in want:
            np.testing.assert_allclose(np.asarray(got[name]), want[name], rtol=1e-4, atol=1e-5)


def test_torch_autograd_through_program():
    torch = pytest.importorskip("torch")
    spec = slt.SuperLoRA(TARGETS, splits=2, rank=2)
    p = {k: torch.from_numpy(v).requires_grad_(True) for k, v in spec.init(zero_init=False).items()}
    sum(d.square().sum() for d in spec.contract(p).values()).backward()
    assert all(v.grad is not None and torch.isfinite(v.grad).all() for v in p.values())


@pytest.mark.parametrize("backend", BACKENDS)
def test_small_network_einsum_path(backend):
    spec = slt.SuperLoRA({"w": (16, 256)}, fold=(16, 16, 16), rank=4)
    assert spec.plan().batches[0].program.small
    p64 = spec.init(zero_init=False)
    be = get_backend(backend)
    got = spec.contract({k: be.asarray(v) for k, v in p64.items()})["w"]
    g = spec.groups[0]
    want = np.einsum(g.equation, *[p64[t.name] for t in g.tensors]).reshape(16, 256)
    np.testing.assert_allclose(be.to_numpy(got), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("rotate", [True, False])
@pytest.mark.parametrize("backend", BACKENDS)
def test_fwht_matches_dense(rotate, backend):
    be = get_backend(backend)
    for L in (1, 2, 8, 128, 4096):
        x = np.random.default_rng(L).standard_normal((3, 2, L))
        blocks = [be.asarray(b) for b in hadamard_blocks(L)]
        got = be.to_numpy(fwht(be.asarray(x), blocks, rotate=rotate))
        np.testing.assert_allclose(got, x @ sylvester(L), rtol=1e-9, atol=1e-8)


def test_two_pass_gather_is_the_permutation(monkeypatch):
    from superlora_tn import kernels

    monkeypatch.setattr(kernels, "available", lambda: False)  # the two passes are the fallback without numba
    perm = np.random.default_rng(0).permutation(1 << 18)
    c = two_pass_gather(perm)
    x = np.random.default_rng(1).standard_normal(perm.size)
    t = np.empty_like(x)
    t[c["scatter"]] = x
    np.testing.assert_array_equal(t[c["gather"]], x[perm])


@pytest.mark.parametrize("backend", BACKENDS)
def test_fastfood_two_pass_equals_plain(backend, monkeypatch):
    from superlora_tn import kernels

    monkeypatch.setattr(kernels, "available", lambda: False)  # the two passes are the fallback without numba
    be = get_backend(backend)
    F = Fastfood(0.75)
    n = 1 << 18
    c = F.constants([n], [F.generated_size(n)], 0, [0])
    assert "scatter" in c
    u = np.random.default_rng(2).standard_normal((1, F.generated_size(n)))
    conv = {k: (be.asarray(v) if isinstance(v, np.ndarray) else [be.asarray(b) for b in v] if isinstance(v, list) else v)
            for k, v in c.items()}
    fast = be.to_numpy(F.apply(be.asarray(u), conv, be))
    plain = {k: v for k, v in conv.items() if k not in ("scatter", "gather")}
    slow = be.to_numpy(F.apply(be.asarray(u), plain, be))
    np.testing.assert_array_equal(fast, slow)


@pytest.mark.parametrize("kw", CONFIGS[:4])
def test_apply_delta_matches_materialised(kw):
    torch = pytest.importorskip("torch")
    spec = slt.SuperLoRA({"w": (16, 24)}, **kw)
    p = spec.init(zero_init=False)
    x = np.random.default_rng(0).standard_normal((5, 24))
    want = x @ spec.contract(p)["w"].T
    np.testing.assert_allclose(apply_delta(spec, p, "w", x), want, rtol=1e-10, atol=1e-12)
    pt = {k: torch.from_numpy(v) for k, v in p.items()}
    np.testing.assert_allclose(apply_delta(spec, pt, "w", torch.from_numpy(x)).numpy(), want, rtol=1e-10, atol=1e-12)


def test_expression_cache_keyed_on_structure():
    a = slt.SuperLoRA({"x": (8, 8)}, rank=2).plan().batches[0]
    b = slt.SuperLoRA({"y": (8, 8)}, rank=2).plan().batches[0]
    assert a.program is b.program
    assert opt_einsum.contract_path  # planner still opt_einsum's


@pytest.mark.parametrize("kw", [CONFIGS[0], CONFIGS[1], CONFIGS[4], CONFIGS[8]])
def test_contract_and_apply_under_autocast(kw):
    torch = pytest.importorskip("torch")
    spec = slt.SuperLoRA({"w": (16, 24)}, **kw)
    p = {k: torch.from_numpy(v) for k, v in spec.init(zero_init=False, dtype="float32").items()}
    want = spec.contract(p)["w"]
    x = torch.randn(5, 24)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = spec.contract(p)["w"]
        fac = apply_delta(spec, p, "w", x) if factored_supported(spec, "w") else None
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want)
    if fac is not None:
        assert fac.dtype == torch.float32
        torch.testing.assert_close(fac, x @ want.T, rtol=1e-4, atol=1e-5)


def test_runner_matches_general_path():
    from superlora_tn.execute import contract_general

    torch = pytest.importorskip("torch")
    targets = {f"l{i}": (300, 260) for i in range(3)} | {"s": (8, 12)}
    for kw in [dict(rank=2, alpha=3.0), dict(splits=2, structure=["dense", "lora"], rank=2, exact_splits=True),
               dict(fold="balanced", order=3, rank=2, scale={"l1": 0.5})]:
        spec = slt.SuperLoRA(targets, **kw)
        p = {k: torch.from_numpy(v) for k, v in spec.init(zero_init=False).items()}
        got = spec.contract(p)
        want = contract_general(spec, p, get_backend("torch"))
        assert list(got) == list(want) == [t.name for t in spec.targets]
        for name in want:
            assert got[name].is_contiguous()
            torch.testing.assert_close(got[name], want[name], rtol=1e-12, atol=1e-12)
        flat = torch.full((spec.num_entries,), float("nan"), dtype=torch.float64)
        views = spec.contract(p, out=flat)  # truncated folds write in place, spilling into the next group
        bufs = spec.contract(p, out={t.name: torch.full(t.shape, float("nan"), dtype=torch.float64) for t in spec.targets})
        for name in want:
            torch.testing.assert_close(views[name], want[name], rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(bufs[name], want[name], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("order", [3, 4, 5])
def test_tucker_rotation_matches_einsum(backend, order):
    from superlora_tn.rotation import detect, run_rotation

    be = get_backend(backend)
    spec = slt.SuperLoRA({"a": (40, 48), "b": (40, 48)}, fold="balanced", order=order, rank=3)
    p = spec.init(zero_init=False)
    for batch in spec.plan().batches:
        rot = detect(batch.equation)
        assert rot is not None and batch.program.rotation == rot
        ops = [np.stack([p[g.tensors[i].name] for g in batch.groups]) if batch.batched else p[batch.template.tensors[i].name]
               for i in range(len(batch.template.tensors))]
        want = np.einsum(batch.equation, *ops)
        got = be.to_numpy(run_rotation(rot, [be.asarray(o) for o in ops], be, want.shape))
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
        buf = be.asarray(np.full(want.shape, np.nan))
        run_rotation(rot, [be.asarray(o) for o in ops], be, want.shape, out=buf)
        np.testing.assert_allclose(be.to_numpy(buf), want, rtol=1e-10, atol=1e-12)


def test_torch_fastfood_numpy_route_and_autograd():
    torch = pytest.importorskip("torch")
    spec = slt.SuperLoRA({"w": (64, 96)}, fold="balanced", order=3, rank=2, projection=slt.Fastfood(0.5))
    p64 = spec.init(zero_init=False)
    want = spec.contract(p64)["w"]
    p = {k: torch.from_numpy(v) for k, v in p64.items()}
    np.testing.assert_allclose(spec.contract(p)["w"].numpy(), want, rtol=1e-10, atol=1e-12)  # NumPy route (no grad)
    pg = {k: v.clone().requires_grad_(True) for k, v in p.items()}
    got = spec.contract(pg)["w"]  # torch route with the NumPy-backed autograd FWHT
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-10, atol=1e-12)
    got.square().sum().backward()
    be = get_backend("torch")
    x = torch.randn(3, 64, dtype=torch.float64, requires_grad=True)
    blocks = [torch.from_numpy(b) for b in hadamard_blocks(64, 8)]
    assert torch.autograd.gradcheck(lambda t: be.fwht(t, blocks), (x,))
    assert all(v.grad is not None and torch.isfinite(v.grad).all() for v in pg.values())


@pytest.mark.parametrize("kw", [
    dict(groups=[["a", "b", "c"]], fold="stack", rank=(2, 3, 3), alpha=5.0),  # LoTR-like
    dict(groups=[["a", "b", "c"]], fold="stack", rank=(3, 3, 3), identity_modes=(0,)),
    dict(groups=[["a", "b", "c"]], fold=(3, 4, 2, 12), rank=2, structure="cp"),  # per layer: rows 4 x 2, columns 12
    dict(groups=[["a"], ["b", "c"]], fold="stack", rank=(1, 2, 2), alpha=3.0),
])
def test_grouped_targets_aligned_with_their_rows_apply_factored(kw):
    spec = slt.SuperLoRA({"a": (8, 12), "b": (8, 12), "c": (8, 12)}, **kw)
    p = spec.init(zero_init=False)
    x = np.random.default_rng(0).standard_normal((2, 5, 12))
    whole = spec.contract(p)
    for name in ("a", "b", "c"):
        assert factored_supported(spec, name)
        np.testing.assert_allclose(apply_delta(spec, p, name, x), x @ whole[name].T, rtol=1e-10, atol=1e-12)
    torch = pytest.importorskip("torch")
    pt = {k: torch.from_numpy(v) for k, v in p.items()}
    np.testing.assert_allclose(apply_delta(spec, pt, "b", torch.from_numpy(x)).numpy(), x @ whole["b"].T, rtol=1e-10, atol=1e-12)


def test_grouped_targets_not_aligned_with_their_rows_are_not_factored():
    spec = slt.SuperLoRA({"a": (8, 12), "b": (8, 12)}, groups=1, fold="balanced", order=3, rank=2)
    assert not factored_supported(spec, "a") and not factored_supported(spec, "b")
    with pytest.raises(SpecError, match="target"):
        apply_delta(spec, spec.init(), "a", np.ones((1, 12)))
