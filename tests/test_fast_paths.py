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
from superlora_tn.factored import apply_delta
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
    jax = pytest.importorskip("jax")
    spec = slt.SuperLoRA(TARGETS, rank=2)
    p = {k: jax.numpy.asarray(v, dtype="float32") for k, v in spec.init(zero_init=False, dtype="float32").items()}
    with pytest.raises(SpecError):
        spec.contract(p, out=jax.numpy.zeros(spec.num_entries))


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


def test_two_pass_gather_is_the_permutation():
    perm = np.random.default_rng(0).permutation(1 << 18)
    c = two_pass_gather(perm)
    x = np.random.default_rng(1).standard_normal(perm.size)
    t = np.empty_like(x)
    t[c["scatter"]] = x
    np.testing.assert_array_equal(t[c["gather"]], x[perm])


@pytest.mark.parametrize("backend", BACKENDS)
def test_fastfood_two_pass_equals_plain(backend):
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
