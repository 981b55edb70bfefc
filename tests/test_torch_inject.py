"""superlora_tn.torch.inject: target matching, layer kinds, gradients, dtypes, one contraction per forward."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from superlora_tn import SpecError, SuperLoRA  # noqa: E402
from superlora_tn.torch import AdaptedModel, find_targets, inject  # noqa: E402

torch.set_num_threads(1)


class Block(nn.Module):
    def __init__(self, d: int = 12) -> None:
        super().__init__()
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.value = nn.Linear(d, d)
        self.out = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        att = torch.softmax(self.query(x) @ self.key(x).transpose(-1, -2) / 4.0, dim=-1)
        return x + self.out(att @ self.value(x))


class Net(nn.Module):
    def __init__(self, d: int = 12, layers: int = 2, classes: int = 3) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([Block(d) for _ in range(layers)])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in self.blocks:
            x = b(x)
        return self.head(self.norm(x).mean(1))


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 6, 3, padding=1)
        self.c2 = nn.Conv2d(6, 4, 3, stride=2, groups=2)
        self.t = nn.Conv1d(4, 5, 2, dilation=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c2(torch.relu(self.c1(x)))
        return self.t(h.flatten(2))


def net(seed: int = 0, **kw) -> Net:
    torch.manual_seed(seed)
    return Net(**kw)


def x_tokens(seed: int = 1, b: int = 3, t: int = 5, d: int = 12) -> torch.Tensor:
    return torch.randn(b, t, d, generator=torch.Generator().manual_seed(seed))


def reference_forward(model: nn.Module, deltas: dict[str, torch.Tensor], x: torch.Tensor, transpose=frozenset()) -> torch.Tensor:
    """The base model's forward with W + dW written into a copy of its weights (no hooks involved)."""
    import copy

    clone = copy.deepcopy(model)
    for h in getattr(clone, "_forward_hooks", {}).copy():
        clone._forward_hooks.pop(h)
    clone._forward_pre_hooks.clear()
    modules = dict(clone.named_modules())
    with torch.no_grad():
        for name, d in deltas.items():
            modules[name]._forward_hooks.clear()
            modules[name].__dict__.pop("forward", None)  # the adapted forward set on the instance
            modules[name].weight += d.T if name in transpose else d
    return clone(x)


# ----------------------------------------------------------------- matching
def test_regex_fullmatch_suffix_list_explicit_names_and_exclude():
    m = net()
    names = [i.name for i in find_targets(m, r".*\.(query|value)")]
    assert names == ["blocks.0.query", "blocks.0.value", "blocks.1.query", "blocks.1.value"]
    with pytest.raises(SpecError, match="targets"):  # fullmatch: a bare 'query' regex matches nothing
        find_targets(m, r"query")
    assert [i.name for i in find_targets(m, ["query", "head"])] == ["blocks.0.query", "blocks.1.query", "head"]
    assert [i.name for i in find_targets(m, ["blocks.1.key"])] == ["blocks.1.key"]
    assert [i.name for i in find_targets(m, ["query", "value"], exclude=r"blocks\.0\..*")] == ["blocks.1.query", "blocks.1.value"]
    assert [i.name for i in find_targets(m, r".*", exclude=["norm", "head", "query", "key", "value"])] == ["blocks.0.out", "blocks.1.out"]
    info = find_targets(m, ["head"])[0]
    assert (info.kind, info.shape) == ("linear", (3, 12))


def test_bad_selectors_are_refused():
    m = net()
    with pytest.raises(SpecError, match="norm"):  # matched a LayerNorm
        find_targets(m, ["norm", "query"])
    with pytest.raises(SpecError, match="missing_layer"):
        find_targets(m, ["query", "missing_layer"])
    with pytest.raises(SpecError, match="regular expression"):
        find_targets(m, "(")
    with pytest.raises(SpecError, match="targets"):
        inject(m, targets=[], spec=dict(rank=2))
    with pytest.raises(SpecError, match="targets"):
        inject(m, targets=["query"], spec=dict(targets={"a": (2, 2)}))
    with pytest.raises(SpecError, match="rank"):
        inject(m, targets=["query"], spec=dict(rank=0))


def test_a_model_cannot_be_injected_twice_until_unloaded():
    m = net()
    a = inject(m, targets=["query"], spec=dict(rank=2))
    with pytest.raises(SpecError, match="adapter"):
        inject(m, targets=["value"], spec=dict(rank=2))
    a.unload()
    inject(m, targets=["value"], spec=dict(rank=2))


# ----------------------------------------------------------------- forward equals W + dW
@pytest.mark.parametrize("spec", [
    dict(groups=1, fold="balanced", order=3, rank=3, alpha=5.0),
    dict(groups=[["blocks.0.query", "blocks.1.query"], ["blocks.0.value", "blocks.1.value"]], fold="stack", rank=(2, 3, 3),
         identity_modes=(0,)),
    dict(rank=2, splits=2, structure=["dense", "lora"], alpha=7.0),
])
def test_adapted_forward_equals_base_forward_with_merged_weights(spec):
    m = net()
    a = inject(m, targets=r".*\.(query|value)", spec=spec, zero_init=False)
    x = x_tokens()
    deltas = {k: v.detach() for k, v in a.deltas().items()}
    assert all(float(d.abs().max()) > 1e-3 for d in deltas.values())
    y = a(x)
    ref = reference_forward(m, deltas, x)
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)
    with a.disable_adapter():
        base = a(x)
    assert float((base - y).detach().abs().max()) > 1e-4


def test_conv1d_conv2d_layers_use_their_own_convolution_with_flattened_dw():
    torch.manual_seed(0)
    m = ConvNet()
    a = inject(m, targets=["c1", "c2", "t"], spec=dict(groups=2, fold="balanced", order=2, rank=3), zero_init=False)
    assert {n: i.kind for n, i in a.layers.items()} == {"c1": "conv2d", "c2": "conv2d", "t": "conv1d"}
    assert a.spec.target_shapes == {"c1": (6, 3, 3, 3), "c2": (4, 3, 3, 3), "t": (5, 4, 2)}
    x = torch.randn(2, 3, 7, 7, generator=torch.Generator().manual_seed(3))
    deltas = {k: v.detach() for k, v in a.deltas().items()}
    torch.testing.assert_close(a(x), reference_forward(m, deltas, x), atol=1e-5, rtol=1e-5)
    # the conv's own dW really is the spec's (out, in*kh*kw) matrix reshaped as the kernel
    torch.testing.assert_close(deltas["c1"].reshape(6, 27), deltas["c1"].flatten(1))
    h = F.conv2d(x, m.c1.weight + deltas["c1"], m.c1.bias, padding=1)
    torch.testing.assert_close(m.c1(x), h, atol=1e-5, rtol=1e-5)


def test_gpt2_conv1d_is_transposed_in_and_out():
    transformers = pytest.importorskip("transformers")
    from transformers.pytorch_utils import Conv1D

    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=1, n_embd=16, n_head=2, n_positions=16, vocab_size=50)
    gpt = transformers.GPT2Model(cfg).eval()
    a = inject(gpt, targets=["c_attn", "c_proj"], spec=dict(groups=1, fold="balanced", order=3, rank=2), zero_init=False)
    assert isinstance(gpt.h[0].attn.c_attn, Conv1D)
    assert a.spec.target_shapes["h.0.attn.c_attn"] == (48, 16)  # (out, in); the weight is stored (16, 48)
    assert a.layers["h.0.attn.c_attn"].kind == "gpt2_conv1d"
    ids = torch.randint(0, 50, (2, 6), generator=torch.Generator().manual_seed(0))
    deltas = {k: v.detach() for k, v in a.deltas().items()}
    adapted = a(input_ids=ids).last_hidden_state
    layer = gpt.h[0].attn.c_attn
    h = torch.randn(3, 16)
    torch.testing.assert_close(layer(h), h @ (layer.weight + deltas["h.0.attn.c_attn"].T) + layer.bias, atol=1e-5, rtol=1e-5)
    a.merge()
    torch.testing.assert_close(a(input_ids=ids).last_hidden_state, adapted, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------- training
def test_one_step_trains_only_adapter_and_heads():
    m = net()
    a = inject(m, targets=r".*\.(query|value)", spec=dict(groups=1, fold="balanced", order=3, rank=3), modules_to_save=["head"])
    assert a.head_names == ["head"]
    trainable = {n for n, p in a.named_parameters() if p.requires_grad}
    assert trainable == {f"adapter.{k}" for k in a.adapter} | {"base_model.head.weight", "base_model.head.bias"}
    before = {n: p.detach().clone() for n, p in a.named_parameters()}
    opt = torch.optim.Adam([p for p in a.parameters() if p.requires_grad], lr=1e-2)
    labels = torch.tensor([0, 2, 1])
    for _ in range(2):  # step 0 only moves the zero block; step 1 moves every adapter parameter
        opt.zero_grad()
        F.cross_entropy(a(x_tokens()), labels).backward()
        opt.step()
    for n, p in a.named_parameters():
        changed = not torch.equal(p, before[n])
        assert changed == p.requires_grad, n
    assert all(torch.equal(p, before[f"base_model.{n}"]) for n, p in m.named_parameters() if not n.startswith("head"))


def test_print_trainable_parameters_counts(capsys):
    m = net()
    a = inject(m, targets=["query", "value"], spec=dict(rank=4), modules_to_save=["head"])
    c = a.trainable_parameters()
    base = sum(p.numel() for p in m.parameters())
    assert c["adapter"] == a.spec.num_params == 4 * (12 * 4 + 12 * 4)
    assert c["heads"] == 3 * 12 + 3
    assert c["all"] == base + c["adapter"]
    assert c["percent"] == pytest.approx(100 * (c["adapter"] + c["heads"]) / c["all"])
    assert a.print_trainable_parameters() is None  # prints, returns None (as PEFT)
    line = capsys.readouterr().out
    assert line.startswith("trainable params: ") and f"{c['adapter']:,}" in line


# ----------------------------------------------------------------- one contraction per forward, factored path
def test_cross_layer_groups_contract_once_per_forward(monkeypatch):
    m = net(layers=3)
    a = inject(m, targets=r".*\.(query|key|value|out)", spec=dict(groups=3, fold="balanced", order=3, rank=2), zero_init=False)
    calls = []
    original = SuperLoRA.contract
    monkeypatch.setattr(SuperLoRA, "contract", lambda self, *ar, **kw: calls.append(1) or original(self, *ar, **kw))
    y = a(x_tokens())
    assert len(calls) == 1 and a.stats["contract"] == 1
    y.sum().backward()
    a(x_tokens(2))
    assert len(calls) == 2
    assert all(p.grad is not None and float(p.grad.abs().max()) > 0 for p in a.adapter.values())


@pytest.mark.parametrize("structure", [dict(rank=4, alpha=16.0), dict(rank=2, splits=2, structure=["dense", "lora"], alpha=3.0)])
def test_factored_path_equals_materialised_dw(structure):
    x = x_tokens()
    outs, grads = [], []
    for factored in (True, False):
        m = net()
        a = inject(m, targets=["query", "value"], spec=structure, factored=factored, zero_init=False)
        y = a(x)
        y.sum().backward()
        outs.append(y)
        grads.append({k: p.grad.clone() for k, p in a.adapter.items()})
        assert (a.stats["factored"] == 4) == factored and (a.stats["contract"] + a.stats["target"] == 0) == factored
    torch.testing.assert_close(outs[0], outs[1], atol=1e-5, rtol=1e-5)
    for k in grads[0]:
        torch.testing.assert_close(grads[0][k], grads[1][k], atol=1e-4, rtol=1e-4)


def test_auto_mode_picks_factored_for_lora_and_materialises_grouped_specs():
    a = inject(net(), targets=["query"], spec=dict(rank=2), zero_init=False)
    a(x_tokens())
    assert a.stats["factored"] == 2 and a.stats["contract"] == 0  # LoRA: x A^T B^T is always cheaper
    b = inject(net(), targets=["query"], spec=dict(groups=1, fold="balanced", order=3, rank=2), zero_init=False)
    b(x_tokens())
    assert b.stats["factored"] == 0 and b.stats["contract"] == 1


# ----------------------------------------------------------------- dtypes
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_base_keeps_float32_adapter_and_its_own_output_dtype(dtype):
    m = net().to(dtype)
    a = inject(m, targets=["query", "value"], spec=dict(groups=1, fold="balanced", order=3, rank=2), zero_init=False)
    assert all(p.dtype == torch.float32 for p in a.adapter.values())
    x = x_tokens().to(dtype)
    y = a(x)
    assert y.dtype == dtype
    y.float().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 and float(p.grad.abs().max()) > 0 for p in a.adapter.values())
    ref = reference_forward(net().float(), {k: v.detach() for k, v in a.deltas().items()}, x.float())
    torch.testing.assert_close(y.float(), ref, atol=0.1, rtol=0.05)


@pytest.mark.parametrize("spec", [dict(rank=2, alpha=4.0), dict(groups=1, fold="balanced", order=3, rank=2)])
def test_autocast_bfloat16(spec):
    m = net()
    a = inject(m, targets=["query", "value"], spec=spec, zero_init=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = a(x_tokens())
    y.float().sum().backward()
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 and p.grad.abs().max() > 0 for p in a.adapter.values())
    torch.testing.assert_close(y.float(), a(x_tokens()), atol=0.1, rtol=0.05)


def test_init_is_the_specs_seeded_init():
    a = inject(net(), targets=["query"], spec=dict(rank=3, seed=7), zero_init=False)
    ref = a.spec.init("numpy", zero_init=False)
    for k, v in ref.items():
        assert torch.equal(a.adapter[k], torch.from_numpy(v).float())
    b = inject(net(), targets=["query"], spec=dict(rank=3, seed=7))
    zero = {k for k, p in b.adapter.items() if not p.any()}
    assert zero == {g.zero_block for g in b.spec.groups}
    assert isinstance(b, AdaptedModel) and float(b.deltas()["blocks.0.query"].detach().abs().max()) == 0.0


def test_a_ready_spec_keeps_its_order_and_must_fit_the_model():
    m = net()
    spec = SuperLoRA({"blocks.1.value": (12, 12), "blocks.0.query": (12, 12)}, groups=1, fold="balanced", order=3, rank=2)
    a = inject(m, spec=spec, zero_init=False)
    assert a.spec is spec and list(a.layers) == ["blocks.1.value", "blocks.0.query"]
    x = x_tokens()
    torch.testing.assert_close(a(x), reference_forward(m, {k: v.detach() for k, v in a.deltas().items()}, x), atol=1e-5, rtol=1e-5)
    with pytest.raises(SpecError, match=r"blocks\.0\.query.*\(12, 13\)"):
        inject(net(), targets=["blocks.0.query"], spec=SuperLoRA({"blocks.0.query": (12, 13)}, rank=2))
    with pytest.raises(SpecError, match="nope"):
        inject(net(), spec=SuperLoRA({"nope": (12, 12)}, rank=2))


def test_calling_the_base_model_or_a_single_layer_also_adapts():
    m = net()
    a = inject(m, targets=["query", "value"], spec=dict(groups=1, fold="balanced", order=3, rank=2), zero_init=False)
    x = x_tokens()
    assert torch.equal(m(x), a(x))  # the hooks live on the base model itself
    layer = m.blocks[0].query
    d = a.deltas()["blocks.0.query"].detach()
    torch.testing.assert_close(layer(x), x @ (layer.weight + d).T + layer.bias, atol=1e-5, rtol=1e-5)
    assert a._cache is None and a._depth == 0  # nothing is left over between forward passes
    with pytest.raises(RuntimeError):
        a(torch.randn(2, 5, 7))  # wrong width: the forward fails inside a layer
    assert a._cache is None and a._depth == 0
    assert torch.equal(m(x), a(x))
