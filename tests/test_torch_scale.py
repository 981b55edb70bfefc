"""Training at model scale: memory modes, folded GEMMs, one gradient per group, checkpointing.

Every mode is checked against an independent path: dW from ``spec.contract`` (autograd through
the plain contraction) written into the weights with ``torch.func.functional_call``, in float64,
with ``alpha != rank`` and random non-zero parameters.
"""

from __future__ import annotations

import copy
import io
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from superlora_tn import Fastfood, Gaussian, SpecError, SuperLoRA  # noqa: E402
from superlora_tn.slices import target_delta  # noqa: E402
from superlora_tn.torch import inject  # noqa: E402

torch.set_num_threads(1)


class Conv1D(nn.Module):
    """GPT-2's Conv1D: weight stored (in, out), y = x @ W + b."""

    def __init__(self, nf: int, nx: int) -> None:
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.randn(nx, nf) * 0.1)
        self.bias = nn.Parameter(torch.randn(nf) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).reshape(*x.shape[:-1], self.nf)


class Block(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.q = nn.Linear(d, d)
        self.up = Conv1D(2 * d, d)
        self.down = nn.Linear(2 * d, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + torch.tanh(self.q(x))
        return x + self.down(torch.relu(self.up(x)))


class Net(nn.Module):
    def __init__(self, d: int = 8, layers: int = 3) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([Block(d) for _ in range(layers)])
        self.checkpoint = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in self.blocks:
            if self.checkpoint:
                x = torch.utils.checkpoint.checkpoint(b, x, use_reentrant=False)
            else:
                x = b(x)
        return x


TARGETS = r".*\.(q|up|down)"
SPECS = {
    "tucker_g1": dict(groups=1, fold="balanced", order=3, rank=3, alpha=5.0),
    "tucker_g4_truncated": dict(groups=4, fold="balanced", order=3, rank=2, alpha=3.0),
    "cp_g2_splits2": dict(groups=2, fold="balanced", order=3, splits=2, structure="cp", rank=2, alpha=2.0),
    "fastfood_g1": dict(groups=1, fold="balanced", order=3, rank=2, projection=Fastfood(0.3), alpha=4.0),
    "gaussian_g2": dict(groups=2, fold="balanced", order=2, rank=2, projection=Gaussian(0.5), alpha=3.0),
    "shuffled": dict(groups=2, fold="balanced", order=3, rank=2, shuffle=5, alpha=3.0),
    "weight_balanced": dict(groups="weight", fold="balanced", order=3, rank=2, alpha=3.0),
}


def model(seed: int = 0, dtype: torch.dtype = torch.float64) -> Net:
    torch.manual_seed(seed)
    return Net().to(dtype)


def x_tokens(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(3), dtype=dtype)


def reference(net: Net, adapted, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Output and adapter gradients through the plain contraction and functional_call (no hooks)."""
    params = {k: v.detach().clone().requires_grad_(True) for k, v in adapted.adapter.items()}
    deltas = adapted.spec.contract(params)
    weights = {}
    for name, d in deltas.items():
        module = net.get_submodule(name)
        w = module.weight.detach()
        weights[f"{name}.weight"] = w + (d.T if isinstance(module, Conv1D) else d)
    with adapted.disable_adapter():
        y = torch.func.functional_call(net, weights, (x,))
    y.square().sum().backward()
    return y.detach(), {k: p.grad for k, p in params.items()}


@pytest.mark.parametrize("memory", ["fast", "low"])
@pytest.mark.parametrize("name", list(SPECS))
def test_every_memory_mode_equals_the_plain_contraction(name, memory):
    net = model()
    a = inject(net, targets=TARGETS, spec=SPECS[name], zero_init=False, adapter_dtype=torch.float64, memory=memory)
    assert a.memory == memory
    x = x_tokens()
    y = a(x)
    y.square().sum().backward()
    grads = {k: p.grad.clone() for k, p in a.adapter.items()}
    ref_y, ref_grads = reference(net, a, x)
    torch.testing.assert_close(y.detach(), ref_y, rtol=1e-10, atol=1e-12)
    for k in grads:
        assert float(grads[k].abs().max()) > 0
        torch.testing.assert_close(grads[k], ref_grads[k], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["tucker_g1", "fastfood_g1", "shuffled"])
def test_checkpointed_blocks_give_the_same_gradients_and_contract_once(name):
    results = []
    for checkpoint in (False, True):
        net = model()
        net.checkpoint = checkpoint
        a = inject(net, targets=TARGETS, spec=SPECS[name], zero_init=False, adapter_dtype=torch.float64, memory="fast")
        a(x_tokens()).square().sum().backward()
        results.append({k: p.grad.clone() for k, p in a.adapter.items()})
        assert a.stats["contract"] == 1  # once per step, also with every block recomputed
        assert not a._last  # nothing of the step is kept after its backward
    for k in results[0]:
        torch.testing.assert_close(results[1][k], results[0][k], rtol=1e-12, atol=1e-14)


def test_no_per_target_slice_of_the_group_output_in_the_graph():
    """One split of the group's output: a slice per target would give each target a zero-filled
    gradient the size of the whole group (O(targets x N) per step)."""
    net = model()
    a = inject(net, targets=TARGETS, spec=SPECS["tucker_g1"], zero_init=False, adapter_dtype=torch.float64)
    y = a(x_tokens())
    seen, stack, kinds = set(), [y.grad_fn], []
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        kinds.append(type(fn).__name__)
        stack.extend(f for f, _ in fn.next_functions)
    assert kinds.count("SplitWithSizesBackward0") == 1
    assert not [k for k in kinds if k.startswith(("SliceBackward", "SelectBackward"))]


def test_transformers_gradient_checkpointing_with_a_grouped_spec():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(n_embd=16, n_head=2, n_layer=2, n_positions=8, vocab_size=32)
    ids = torch.randint(0, 32, (2, 8), generator=torch.Generator().manual_seed(0))
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        m = transformers.GPT2LMHeadModel(cfg)
        if checkpointing:
            m.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        m.train()
        a = inject(m, targets=r".*\.(c_attn|c_fc)", spec=dict(groups=1, fold="balanced", order=3, rank=2, alpha=4.0),
                   zero_init=False, memory="fast")
        torch.manual_seed(1)  # same dropout masks
        a(ids, labels=ids).loss.backward()
        assert a.stats["contract"] <= 2
        grads.append({k: p.grad.clone() for k, p in a.adapter.items()})
    for k in grads[0]:
        torch.testing.assert_close(grads[1][k], grads[0][k], rtol=1e-4, atol=1e-6)


def test_folded_linear_is_used_for_float32_and_not_for_half_precision():
    net = model(dtype=torch.float32)
    a = inject(net, targets=TARGETS, spec=SPECS["tucker_g1"], zero_init=False)
    a(x_tokens(torch.float32))
    assert a.stats["folded"] == 9
    net16 = model(dtype=torch.bfloat16)
    b = inject(net16, targets=TARGETS, spec=SPECS["tucker_g1"], zero_init=False)
    assert b(x_tokens(torch.bfloat16)).dtype == torch.bfloat16
    assert b.stats["folded"] == 0  # W + dW in bfloat16 would round dW away: added in float32 instead


def test_memory_auto_picks_by_budget_and_bad_values_are_refused():
    assert inject(model(), targets=TARGETS, spec=SPECS["tucker_g1"]).memory == "fast"
    assert inject(model(), targets=TARGETS, spec=SPECS["tucker_g1"], memory=100).memory == "low"
    assert inject(model(), targets=TARGETS, spec=dict(rank=2), memory=100).memory == "fast"  # nothing shared
    for bad in ("small", 0, -5, True, 1.5):
        with pytest.raises(SpecError, match="memory"):
            inject(model(), targets=TARGETS, spec=SPECS["tucker_g1"], memory=bad)


def test_low_memory_mode_never_holds_dw_all():
    net = model()
    a = inject(net, targets=TARGETS, spec=SPECS["tucker_g1"], zero_init=False, adapter_dtype=torch.float64, memory="low")
    a(x_tokens()).sum().backward()
    assert a.stats["contract"] == 0 and a.stats["target"] == 2 * 9  # each target built, then rebuilt in backward


@pytest.mark.parametrize("name", list(SPECS))
def test_target_delta_equals_the_whole_contraction(name):
    spec = SuperLoRA({"a": (6, 10), "b": (12, 8), "c": (7, 9), "d": (5, 16)}, **SPECS[name])
    p = spec.init(zero_init=False)
    whole = spec.contract(p)
    for t in spec.targets:
        np.testing.assert_allclose(target_delta(spec, p, t.name), whole[t.name], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("projection", [Fastfood(0.3), Gaussian(0.4)])
def test_projection_transpose_is_its_adjoint_and_the_torch_gradient(projection):
    from superlora_tn.backends import get_backend

    spec = SuperLoRA({"a": (40, 30), "b": (20, 50)}, groups=2, fold="balanced", order=2, rank=2, projection=projection)
    be = get_backend("numpy")
    batch = spec.plan().batches[0]
    consts = spec.plan().constants(be, np.zeros(1))["projections"][0]
    rng = np.random.default_rng(0)
    u = rng.standard_normal((len(batch.groups), batch.template.generated))
    g = rng.standard_normal((len(batch.groups), batch.template.size))
    lhs = float((projection.forward(u, consts, be) * g).sum())
    rhs = float((u * projection.transpose(g, consts, be)).sum())
    assert abs(lhs - rhs) < 1e-9 * max(1.0, abs(lhs))
    tb = get_backend("torch")
    tconsts = spec.plan().constants(tb, torch.zeros(1, dtype=torch.float64))["projections"][0]
    ut = torch.tensor(u, requires_grad=True)
    (projection.apply(ut, tconsts, tb) * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(ut.grad.numpy(), projection.transpose(g, consts, be), rtol=1e-10, atol=1e-12)


def test_deepcopy_is_independent_and_pickling_round_trips():
    net = model()
    a = inject(net, targets=TARGETS, spec=SPECS["tucker_g1"], zero_init=False, adapter_dtype=torch.float64)
    x = x_tokens()
    y = a(x).detach()
    b = copy.deepcopy(a)
    b(x).sum().backward()
    assert all(p.grad is None for p in a.adapter.values())
    assert all(p.grad is not None for p in b.adapter.values())
    with torch.no_grad():
        for p in a.adapter.values():
            p.mul_(0.5)
    torch.testing.assert_close(b(x).detach(), y)  # the copy keeps its own adapter
    del a
    torch.testing.assert_close(b(x).detach(), y)
    buf = io.BytesIO()
    torch.save(b, buf)
    buf.seek(0)
    c = torch.load(buf, weights_only=False)
    torch.testing.assert_close(c(x).detach(), y)
    torch.testing.assert_close(pickle.loads(pickle.dumps(b))(x).detach(), y)


@pytest.mark.parametrize("memory", ["fast", "low"])
def test_stack_fold_groups_are_applied_factored_and_never_contracted(memory):
    """LoTR-like groups (one stack per layer kind) keep each target's rows and columns on their own
    modes: x joins the network and no dW is built, like LoRA."""
    groups = [[f"blocks.{i}.{kind}" for i in range(3)] for kind in ("q", "up", "down")]
    spec = dict(groups=groups, fold="stack", rank=(2, 3, 3), alpha=5.0)
    net = model()
    a = inject(net, targets=TARGETS, spec=spec, zero_init=False, adapter_dtype=torch.float64, factored=True, memory=memory)
    x = x_tokens()
    y = a(x)
    y.square().sum().backward()
    assert a.stats["factored"] == 9 and a.stats["contract"] == 0 and a.stats["target"] == 0
    ref_y, ref_grads = reference(net, a, x)
    torch.testing.assert_close(y.detach(), ref_y, rtol=1e-10, atol=1e-12)
    for k, p in a.adapter.items():
        torch.testing.assert_close(p.grad, ref_grads[k], rtol=1e-9, atol=1e-12)
