"""The compiled CPU kernels (numba) against the portable paths they replace."""

from __future__ import annotations

import numpy as np
import pytest

from superlora_tn import Fastfood, kernels
from superlora_tn.backends import get_backend
from superlora_tn.projection import two_pass_gather

pytestmark = pytest.mark.skipif(not kernels.available(), reason="numba not installed")


def test_gather_scatter_and_two_pass_equal_numpy(monkeypatch):
    rng = np.random.default_rng(0)
    perm = rng.permutation(1 << 19).astype(np.int32)
    x = rng.standard_normal(perm.size).astype(np.float32)
    np.testing.assert_array_equal(kernels.gather(x, perm), x[perm])
    y = np.empty_like(x)
    y[perm] = x
    np.testing.assert_array_equal(kernels.scatter(x, perm), y)
    assert two_pass_gather(perm) == {}  # the compiled one-pass gather replaces the two passes
    monkeypatch.setattr(kernels, "available", lambda: False)  # the NumPy fallback's two passes
    tp = two_pass_gather(perm)
    t = np.empty_like(x)
    t[tp["scatter"]] = x
    np.testing.assert_array_equal(t[tp["gather"]], x[perm])


def test_fastfood_with_and_without_kernels_agree(monkeypatch):
    F = Fastfood(0.3)
    n = 300_000
    c = F.constants([n], [F.generated_size(n)], 0, [0])
    u = np.random.default_rng(1).standard_normal((1, F.generated_size(n)))
    be = get_backend("numpy")
    fast = F.forward(u, c, be)
    g = np.random.default_rng(2).standard_normal((1, n))
    fast_t = F.transpose(g, c, be)
    monkeypatch.setattr(kernels, "available", lambda: False)
    np.testing.assert_allclose(F.forward(u, c, be), fast, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(F.transpose(g, c, be), fast_t, rtol=1e-10, atol=1e-10)
