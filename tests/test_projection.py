"""The projection F: linear, 0 -> 0, near-isometric, same statistics as the Gaussian reference."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import BACKENDS, dense_projection, to_numpy

import superlora_tn as slt
from superlora_tn.backends import get_backend
from superlora_tn.hadamard import fwht, hadamard_blocks, sylvester


def _apply(proj: slt.Projection, u: np.ndarray, n: int, backend: str = "numpy", group: int = 0) -> np.ndarray:
    be = get_backend(backend)
    consts = proj.constants([n], [u.shape[-1]], 0, [group])
    like = be.asarray(u)
    conv = {k: (be.asarray(v, dtype=u.dtype if v.dtype.kind == "f" else None) if isinstance(v, np.ndarray)
                else [be.asarray(b, dtype=u.dtype) for b in v] if isinstance(v, list) else v) for k, v in consts.items()}
    return to_numpy(proj.apply(like.reshape(1, -1), conv, be))[0]


@pytest.mark.parametrize("length", [1, 2, 8, 64, 512, 2048])
@pytest.mark.parametrize("backend", BACKENDS)
def test_fwht_equals_dense_sylvester(length: int, backend: str) -> None:
    be = get_backend(backend)
    x = np.random.default_rng(length).standard_normal((3, length))
    blocks = [be.asarray(b) for b in hadamard_blocks(length, max_block=16)]
    got = to_numpy(fwht(be.asarray(x), blocks))
    np.testing.assert_allclose(got, x @ sylvester(length), rtol=1e-10, atol=1e-9)


def test_sylvester_is_orthogonal_up_to_scale() -> None:
    H = sylvester(32)
    np.testing.assert_array_equal(H @ H.T, 32 * np.eye(32))


@pytest.mark.parametrize("n,ratio", [(100, 0.5), (1000, 0.1), (37, 1.0), (513, 0.3)])
def test_fastfood_is_linear_and_maps_zero_to_zero(n: int, ratio: float) -> None:
    F = slt.Fastfood(ratio=ratio)
    m = F.generated_size(n)
    rng = np.random.default_rng(0)
    u, v = rng.standard_normal(m), rng.standard_normal(m)
    np.testing.assert_allclose(_apply(F, 2.0 * u - 3.0 * v, n), 2.0 * _apply(F, u, n) - 3.0 * _apply(F, v, n), atol=1e-10)
    assert not np.any(_apply(F, np.zeros(m), n))


@pytest.mark.parametrize("backend", BACKENDS)
def test_fastfood_equals_its_dense_definition(backend: str) -> None:
    spec = slt.SuperLoRA({"w": (9, 11)}, groups=1, fold="balanced", rank=2, projection=slt.Fastfood(0.4))
    g = spec.groups[0]
    u = np.random.default_rng(3).standard_normal(g.generated)
    np.testing.assert_allclose(_apply(g.projection, u, g.size, backend), dense_projection(g, 0) @ u, atol=1e-10)


@pytest.mark.parametrize("kind", [slt.Fastfood, slt.Gaussian])
def test_norm_preserving_on_average(kind: type) -> None:
    rng = np.random.default_rng(5)
    n, ratios = 2000, []
    for trial in range(40):
        F = kind(ratio=0.25)
        u = rng.standard_normal(F.generated_size(n))
        y = _apply(F, u, n, group=trial)
        ratios.append(np.sum(y**2) / np.sum(u**2))
    assert abs(np.mean(ratios) - 1.0) < 0.05


def test_fastfood_statistics_agree_with_gaussian_reference() -> None:
    """Entries of F u are ~ N(0, ||u||^2 / n) for both projections; compare moments."""
    rng = np.random.default_rng(7)
    n = 4096
    stats = {}
    for kind in (slt.Fastfood, slt.Gaussian):
        ys = []
        for trial in range(8):
            F = kind(ratio=0.125)
            u = rng.standard_normal(F.generated_size(n))
            ys.append(_apply(F, u / np.linalg.norm(u), n, group=trial) * np.sqrt(n))
        y = np.concatenate(ys)
        stats[kind.__name__] = (y.mean(), y.var(), np.mean(y**4) / y.var() ** 2)
    (m1, v1, k1), (m2, v2, k2) = stats["Fastfood"], stats["Gaussian"]
    assert abs(m1 - m2) < 0.05 and abs(v1 - v2) < 0.1 and abs(k1 - k2) < 0.5  # kurtosis of a normal is 3


def test_each_group_gets_an_independent_projection() -> None:
    spec = slt.SuperLoRA({"a": (8, 8), "b": (8, 8)}, groups=2, fold="balanced", structure="dense", order=1,
                         projection=slt.Fastfood(0.5))
    A, B = dense_projection(spec.groups[0], 0), dense_projection(spec.groups[1], 0)
    assert A.shape == B.shape and not np.allclose(A, B)


def test_projection_seed_overrides_the_spec_seed() -> None:
    t = {"w": (16, 16)}
    a = slt.SuperLoRA(t, groups=1, fold="balanced", rank=2, projection=slt.Fastfood(0.5, seed=3), seed=0)
    b = slt.SuperLoRA(t, groups=1, fold="balanced", rank=2, projection=slt.Fastfood(0.5, seed=3), seed=1)
    np.testing.assert_array_equal(dense_projection(a.groups[0], 0), dense_projection(b.groups[0], 1))


@pytest.mark.parametrize("projection", [slt.Fastfood(0.3), slt.Gaussian(0.4)])
def test_jax_gradient_of_a_projection_is_its_transpose(projection):
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    spec = slt.SuperLoRA({"a": (40, 30), "b": (20, 50)}, groups=2, fold="balanced", order=2, rank=2, projection=projection)
    batch = spec.plan().batches[0]
    rng = np.random.default_rng(0)
    u = rng.standard_normal((len(batch.groups), batch.template.generated)).astype(np.float32)
    g = rng.standard_normal((len(batch.groups), batch.template.size)).astype(np.float32)
    be, nb = get_backend("jax"), get_backend("numpy")
    consts = spec.plan().constants(be, jnp.zeros(1, dtype=jnp.float32))["projections"][0]
    f = jax.jit(lambda v: (projection.apply(v, consts, be) * jnp.asarray(g)).sum())
    grad = np.asarray(jax.grad(f)(jnp.asarray(u)))
    host = spec.plan().constants(nb, np.zeros(1, dtype=np.float32))["projections"][0]
    np.testing.assert_allclose(grad, projection.transpose(g, host, nb), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(jax.jit(lambda v: projection.apply(v, consts, be))(jnp.asarray(u))),
                               projection.forward(u, host, nb), rtol=1e-4, atol=1e-4)
