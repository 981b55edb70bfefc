"""superlora_tn.jax.apply: a pure, jit/grad-friendly adapted pytree; trains a plain-JAX MLP with optax."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

from superlora_tn import SpecError, SuperLoRA  # noqa: E402
from superlora_tn.jax import apply, init, targets_from_params  # noqa: E402


def mlp_params(seed: int = 0, sizes=(6, 16, 12, 3)) -> dict:
    rng = np.random.default_rng(seed)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):  # noqa: RUF007 (python 3.10 has pairwise, but keep it plain)
        kernel = jnp.asarray(rng.standard_normal((a, b)) / np.sqrt(a), jnp.float32)
        layers.append({"kernel": kernel, "bias": jnp.asarray(rng.standard_normal(b) * 0.1, jnp.float32)})
    return {"layers": layers}


def mlp(params: dict, x: jnp.ndarray) -> jnp.ndarray:
    *hidden, last = params["layers"]
    for layer in hidden:
        x = jnp.tanh(x @ layer["kernel"] + layer["bias"])
    return x @ last["kernel"] + last["bias"]


def test_targets_from_params_in_flax_layout():
    base = mlp_params()
    targets = targets_from_params(base, r"layers/[01]/kernel", layout="in_out")
    assert targets == {"layers/0/kernel": (16, 6), "layers/1/kernel": (12, 16)}
    assert targets_from_params(base, r".*kernel", exclude=r"layers/2/.*") == {"layers/0/kernel": (6, 16), "layers/1/kernel": (16, 12)}
    with pytest.raises(SpecError, match="pattern"):
        targets_from_params(base, r"nothing")


@pytest.mark.parametrize("layout", ["in_out", "out_in"])
def test_apply_under_jit_equals_base_plus_dw(layout):
    base = mlp_params()
    spec = SuperLoRA(targets_from_params(base, r".*kernel", layout=layout), groups=2, fold="balanced", order=3, rank=3, alpha=5.0)
    adapter = init(spec, zero_init=False)
    new = jax.jit(lambda b, a: apply(b, a, spec, layout=layout))(base, adapter)
    deltas = spec.contract(adapter)
    for i, layer in enumerate(base["layers"]):
        d = np.asarray(deltas[f"layers/{i}/kernel"])
        expected = np.asarray(layer["kernel"]) + (d.T if layout == "in_out" else d)
        np.testing.assert_allclose(np.asarray(new["layers"][i]["kernel"]), expected, rtol=1e-5, atol=1e-6)
        assert np.array_equal(np.asarray(new["layers"][i]["bias"]), np.asarray(layer["bias"]))
        assert np.abs(d).max() > 1e-3
    assert base["layers"][0]["kernel"] is not new["layers"][0]["kernel"]  # pure: the input is untouched


def test_explicit_paths_conv_kernels_and_errors():
    rng = np.random.default_rng(1)
    base = {"conv": (jnp.asarray(rng.standard_normal((3, 3, 4, 5)), jnp.float32),), "w": jnp.ones((5, 4), jnp.float32)}
    spec = SuperLoRA({"c": (5, 4, 3, 3), "w": (5, 4)}, rank=2)
    adapter = init(spec, zero_init=False)
    new = apply(base, adapter, spec, {"c": ("conv", 0)}, layout={"c": "in_out"})
    d = spec.contract(adapter)
    expected = np.asarray(base["conv"][0]) + np.asarray(d["c"]).transpose(2, 3, 1, 0)  # (out, in, kh, kw) -> (kh, kw, in, out)
    np.testing.assert_allclose(np.asarray(new["conv"][0]), expected, rtol=1e-6)
    assert isinstance(new["conv"], tuple)
    np.testing.assert_allclose(np.asarray(new["w"]), 1 + np.asarray(d["w"]), rtol=1e-6)
    with pytest.raises(SpecError, match="paths"):
        apply(base, adapter, spec, {"c": ("conv", 3)}, layout={"c": "in_out"})
    with pytest.raises(SpecError, match="shape"):
        apply(base, adapter, spec, {"c": ("conv", 0)})  # (3, 3, 4, 5) is not (5, 4, 3, 3)
    with pytest.raises(SpecError, match="layout"):
        apply(base, adapter, spec, {"c": ("conv", 0)}, layout="oi")


def test_same_init_values_as_torch():
    torch = pytest.importorskip("torch")
    from superlora_tn.torch import inject

    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 12))
    spec = dict(groups=1, fold="balanced", order=3, rank=3, seed=11)
    adapted = inject(model, targets=["0", "2"], spec=spec)
    jspec = SuperLoRA({"0": (16, 6), "2": (12, 16)}, **spec)
    assert jspec == adapted.spec
    for zero_init in (True, False):
        j = init(jspec, zero_init=zero_init)
        t = inject(torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 12)), targets=["0", "2"],
                   spec=spec, zero_init=zero_init).adapter
        assert set(j) == set(t)
        for k in j:
            assert np.array_equal(np.asarray(j[k]), t[k].detach().numpy()), k
    assert any(np.abs(np.asarray(v)).max() > 0 for v in j.values())


def test_training_a_plain_jax_mlp_with_optax_lowers_the_loss():
    optax = pytest.importorskip("optax")
    base = mlp_params(0)
    teacher = mlp_params(5)
    x = jnp.asarray(np.random.default_rng(2).standard_normal((64, 6)), jnp.float32)
    y = mlp(teacher, x)
    spec = SuperLoRA(targets_from_params(base, r".*kernel", layout="in_out"), groups=1, fold="balanced", order=3, rank=6, alpha=12.0)
    adapter = init(spec)

    def loss_fn(a):
        return jnp.mean((mlp(apply(base, a, spec, layout="in_out"), x) - y) ** 2)

    opt = optax.adam(2e-2)
    state = opt.init(adapter)

    @jax.jit
    def step(a, s):
        loss, grads = jax.value_and_grad(loss_fn)(a)
        updates, s = opt.update(grads, s, a)
        return optax.apply_updates(a, updates), s, loss

    losses = []
    for _ in range(40):
        adapter, state, loss = step(adapter, state)
        losses.append(float(loss))
    assert losses[-1] < 0.2 * losses[0], losses[::8]  # 0.63 -> 0.016 here
    assert all(float(jnp.abs(v).max()) > 0 for v in adapter.values())
