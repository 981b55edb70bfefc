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
