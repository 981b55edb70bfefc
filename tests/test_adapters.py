"""Several named adapters: each runs as W + dW of its own spec, switching re-injects nothing,
merge of several adds every dW, save writes one subdirectory per adapter."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from superlora_tn.errors import SpecError
from superlora_tn.torch import from_pretrained, inject

GROUPED = dict(groups=1, fold="balanced", order=3, rank=3)


def net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 8))


def reference(model: nn.Sequential, deltas: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The formula: every layer with W + dW (dW = 0 where the adapter has no target)."""
    h = x
    for i, layer in enumerate(model):
        if isinstance(layer, nn.Linear):
            h = nn.functional.linear(h, layer.weight + deltas.get(str(i), 0.0), layer.bias)
        else:
            h = layer(h)
    return h


def two_adapters():
    a = inject(net(), targets=["0"], spec=dict(rank=2), zero_init=False, adapter_name="lora")
    a.add_adapter("grouped", GROUPED, targets=["0", "2"], zero_init=False)
    return a


def test_each_adapter_is_its_own_w_plus_dw_and_switching_reinjects_nothing():
    a = two_adapters()
    x = torch.randn(5, 12)
    forwards = {n: m.forward for n, m in a.base_model.named_children() if "forward" in m.__dict__}
    assert sorted(forwards) == ["0", "2"] and a.adapter_names == ["lora", "grouped"]
    lora = a.deltas()
    torch.testing.assert_close(a(x), reference(a.base_model, lora, x))
    a.set_adapter("grouped")
    assert a.active_adapter == "grouped" and sorted(a.layers) == ["0", "2"]
    grouped = a.deltas()
    assert a.spec.identify() != "lora" and all(d.abs().max() > 0 for d in grouped.values())
    y = a(x)
    torch.testing.assert_close(y, reference(a.base_model, grouped, x))
    y.sum().backward()
    assert all(p.grad is not None for p in a.adapter.values())
    assert all(not p.requires_grad and p.grad is None for p in a.inactive_adapters["lora"].values())
    assert {n: m.forward for n, m in a.base_model.named_children() if "forward" in m.__dict__} == forwards
    a.set_adapter("lora")
    torch.testing.assert_close(a(x), reference(a.base_model, lora, x))
    with a.disable_adapter():
        torch.testing.assert_close(a(x), reference(a.base_model, {}, x))


def test_merge_several_adds_each_dw_and_unmerge_restores():
    a = two_adapters()
    x = torch.randn(4, 12)
    lora = {k: v.detach() for k, v in a.deltas().items()}
    a.set_adapter("grouped")
    grouped = {k: v.detach() for k, v in a.deltas().items()}
    a.set_adapter("lora")
    w0 = {n: a.base_model[int(n)].weight.detach().clone() for n in ("0", "2")}
    total = {n: lora.get(n, 0.0) + grouped.get(n, 0.0) for n in ("0", "2")}
    want = reference(a.base_model, total, x)
    a.merge(adapter_names=["lora", "grouped"])
    assert a.active_adapter == "lora" and a.merged_adapters == ["lora", "grouped"]
    torch.testing.assert_close(a(x), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(SpecError, match="unmerge"):
        a.set_adapter("grouped")
    a.unmerge()
    for n in ("0", "2"):
        torch.testing.assert_close(a.base_model[int(n)].weight, w0[n], rtol=0, atol=1e-6)
    plain = a.merge_and_unload(adapter_names=["grouped"])
    torch.testing.assert_close(plain(x), reference(net(), grouped, x), rtol=1e-5, atol=1e-6)


def test_save_writes_one_subdirectory_per_adapter_and_loads_all(tmp_path):
    a = inject(net(), targets=["0"], spec=dict(rank=2), zero_init=False)  # "default"
    a.add_adapter("grouped", GROUPED, targets=["0", "2"], zero_init=False)
    a.save_pretrained(tmp_path)
    assert (tmp_path / "adapter_config.json").is_file() and (tmp_path / "grouped" / "adapter_config.json").is_file()
    b = from_pretrained(net(), tmp_path)
    assert b.adapter_names == ["default", "grouped"]
    x = torch.randn(3, 12)
    for name in ("default", "grouped"):
        a.set_adapter(name)
        b.set_adapter(name)
        assert torch.equal(a(x), b(x))


def test_state_dict_carries_every_adapter_and_refusals():
    a = two_adapters()
    sd = a.state_dict()
    assert any(k.startswith("inactive_adapters.grouped.") for k in sd)
    b = two_adapters()
    with torch.no_grad():
        for p in b.parameters():
            p.zero_()
    b.load_state_dict(sd)
    assert all(torch.equal(sd[k], v) for k, v in b.state_dict().items() if k != "_extra_state")
    c = inject(net(), targets=["0"], spec=dict(rank=2), adapter_name="lora")
    with pytest.raises(SpecError, match="inactive_adapters"):
        c.load_state_dict(sd)
    with pytest.raises(SpecError, match="inactive adapter"):
        a.delete_adapter("lora")
    with pytest.raises(SpecError, match="one of the adapters"):
        a.set_adapter("nope")
    with pytest.raises(SpecError, match="new name"):
        a.add_adapter("grouped", dict(rank=1), targets=["0"])
    with pytest.raises(SpecError, match="adapter_name"):
        a.add_adapter("a.b", dict(rank=1), targets=["0"])
    a.delete_adapter("grouped")
    assert a.adapter_names == ["lora"] and "inactive_adapters" not in {k.split(".")[0] for k in a.state_dict()}


def test_trainer_style_state_dict_file_loads_every_adapter(tmp_path):
    from safetensors.torch import save_file

    a = two_adapters()
    save_file(a.state_dict(), str(tmp_path / "model.safetensors"))  # what Trainer._save writes
    b = from_pretrained(net(), tmp_path)
    assert b.adapter_names == ["lora", "grouped"]
    x = torch.randn(2, 12)
    for name in ("lora", "grouped"):
        a.set_adapter(name)
        b.set_adapter(name)
        assert torch.equal(a(x), b(x))


# ----------------------------------------------------------------- per-adapter heads and dropout
class HeadNet(nn.Module):
    """Two Linear layers to adapt, a head with a BatchNorm buffer, and a second head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 10))
        self.head = nn.Sequential(nn.Linear(10, 4), nn.BatchNorm1d(4))
        self.aux = nn.Linear(10, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        return torch.cat([self.head(h), self.aux(h)], dim=-1)


def train_steps(a, x: torch.Tensor, steps: int = 3, mode: bool = True) -> None:
    """SGD steps on the trainable parameters; ``mode=False`` keeps BatchNorm statistics as they are
    (in train mode a frozen head's buffers move too, as in any model: they are not adapter state)."""
    opt = torch.optim.SGD([p for p in a.parameters() if p.requires_grad], lr=0.1)
    a.train(mode)
    for _ in range(steps):
        opt.zero_grad()
        a(x).square().mean().backward()
        opt.step()
    a.eval()


def heads_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """The head values the model runs (an AdaptedModel's base model, or a plain HeadNet)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return {k: v.clone() for k, v in base.state_dict().items() if k.startswith(("head.", "aux."))}


def test_each_adapter_trains_and_runs_its_own_heads():
    """As PEFT's ModulesToSaveWrapper: switching the adapter switches the head (parameters and
    buffers); an adapter that does not name a head runs the base's own; the formula is the
    plain model with that adapter's dW and that adapter's head values."""
    x = torch.randn(8, 6)
    original = heads_of(HeadNet())
    a = inject(HeadNet(), targets=["body.0"], spec=dict(rank=2), modules_to_save=["head"], adapter_name="a")
    a.add_adapter("b", dict(rank=3), targets=["body.0", "body.2"], modules_to_save=["head", "aux"])
    a.add_adapter("c", dict(rank=2), targets=["body.2"])  # no heads: runs the base's own
    train_steps(a, x)
    a.set_adapter("b")
    assert all(torch.equal(heads_of(a)[k], v) for k, v in original.items())  # b's copies start as the base's own
    train_steps(a, x)
    trained = {}
    for name in ("a", "b", "c"):
        a.set_adapter(name)
        trained[name] = heads_of(a)
        assert {n for n, p in a.named_parameters() if p.requires_grad} == \
            {f"adapter.{k}" for k in a.adapter} | {f"base_model.{h}.{k}" for h in a.head_names
                                                   for k, _ in a.base_model.get_submodule(h).named_parameters()}
    assert all(torch.equal(trained["c"][k], v) for k, v in original.items())  # c: the base's own heads
    assert not torch.equal(trained["a"]["head.0.weight"], original["head.0.weight"])  # a trained its head
    assert torch.equal(trained["a"]["aux.weight"], original["aux.weight"])  # a has no aux: the base's own
    assert not torch.equal(trained["b"]["aux.weight"], original["aux.weight"])
    assert not torch.equal(trained["a"]["head.1.running_mean"], trained["b"]["head.1.running_mean"])  # buffers too
    for name in ("a", "b", "c"):  # the formula: a fresh model with this adapter's dW and its head values
        a.set_adapter(name)
        plain = HeadNet().eval()
        deltas = a.deltas()
        with torch.no_grad():
            for target, d in deltas.items():
                plain.get_submodule(target).weight += d
        plain.load_state_dict({**plain.state_dict(), **trained[name]})
        torch.testing.assert_close(a(x), plain(x), rtol=1e-5, atol=1e-6)


def test_heads_per_adapter_survive_save_state_dict_and_trainer_files(tmp_path):
    from safetensors.torch import save_file

    x = torch.randn(8, 6)
    a = inject(HeadNet(), targets=["body.0"], spec=dict(rank=2), modules_to_save=["head"], dropout=0.2)
    a.add_adapter("b", dict(rank=3), targets=["body.2"], modules_to_save=["aux"], dropout=0.3)
    train_steps(a, x, mode=False)
    a.set_adapter("b")
    train_steps(a, x, mode=False)
    a.set_adapter("default")
    sd = a.state_dict()
    assert any(k.startswith("head_store.b.aux.") for k in sd) and not any(k.startswith("head_originals") for k in sd)
    a.save_pretrained(tmp_path / "dirs")
    save_file(sd, str(tmp_path / "model.safetensors"))
    for b in (from_pretrained(HeadNet(), tmp_path / "dirs"), from_pretrained(HeadNet(), tmp_path)):
        b.eval()
        assert b.adapter_names == ["default", "b"]
        assert b.dropout == 0.2 and b._slots["b"]["dropout"] == 0.3  # each adapter's dropout, inactive ones too
        for name in ("default", "b"):
            a.set_adapter(name)
            b.set_adapter(name)
            assert b.head_names == a.head_names
            assert torch.equal(a(x), b(x))
        b.set_adapter("default")
    a.set_adapter("default")
    c = inject(HeadNet(), targets=["body.0"], spec=dict(rank=2), modules_to_save=["head"])
    c.add_adapter("b", dict(rank=3), targets=["body.2"], modules_to_save=["head"])
    with pytest.raises(SpecError, match="inactive_heads"):
        c.load_state_dict(sd)


def test_head_refusals():
    a = inject(HeadNet(), targets=["body.0"], spec=dict(rank=2), modules_to_save=["head"])
    with pytest.raises(SpecError, match="modules_to_save"):
        a.add_adapter("b", dict(rank=2), targets=["body.2"], modules_to_save=["nope"])
    with pytest.raises(SpecError, match="not adapted"):
        a.add_adapter("b", dict(rank=2), targets=["body.2"], modules_to_save=["body"])
    with pytest.raises(SpecError, match="outside every adapter's heads"):
        a.add_adapter("b", dict(rank=2), targets=["head.0"])
    a.add_adapter("b", dict(rank=2), targets=["body.2"], modules_to_save=["aux"])
    a.delete_adapter("b")
    assert "head_store" not in {k.split(".")[0] for k in a.state_dict()}
