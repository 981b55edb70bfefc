"""merge / unmerge / safe_merge / merge_and_unload, and save / load (bit-exact, versioned, checked)."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
from torch import nn  # noqa: E402

from superlora_tn import SpecError, SuperLoRA  # noqa: E402
from superlora_tn.torch import inject, load, read  # noqa: E402

torch.set_num_threads(1)

SPEC_3D = dict(groups=2, fold="balanced", order=3, rank=3, alpha=6.0)
SPEC_LORA = dict(rank=4, alpha=10.0)


class Net(nn.Module):
    def __init__(self, d: int = 10, hidden: int = 14, classes: int = 3) -> None:
        super().__init__()
        self.enc = nn.ModuleDict({"q": nn.Linear(d, hidden), "v": nn.Linear(hidden, hidden), "conv": nn.Conv1d(1, 2, 3, padding=1)})
        self.head = nn.Linear(2 * hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.enc["v"](torch.tanh(self.enc["q"](x))))
        c = self.enc["conv"](h.unsqueeze(1)).flatten(1)
        return self.head(c)


def make(seed: int = 0, **kw) -> Net:
    torch.manual_seed(seed)
    return Net(**kw)


def x_batch(seed: int = 1, n: int = 6, d: int = 10) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def trained(spec=SPEC_3D, seed: int = 0, **kw):
    """An adapted Net whose adapter (and head) moved away from init, so nothing is zero."""
    a = inject(make(seed), targets=r"enc\..*", spec=spec, zero_init=False, **kw)
    opt = torch.optim.SGD([p for p in a.parameters() if p.requires_grad], lr=0.05)
    for step in range(2):
        opt.zero_grad()
        a(x_batch(step)).pow(2).mean().backward()
        opt.step()
    return a


# ----------------------------------------------------------------- merge
@pytest.mark.parametrize("spec", [SPEC_3D, SPEC_LORA])
def test_adapter_forward_equals_merged_equals_factored(spec):
    x = x_batch(5)
    a = trained(spec, factored=True)
    y_adapter = a(x)
    b = trained(spec, factored=False)
    torch.testing.assert_close(b(x), y_adapter, atol=1e-5, rtol=1e-5)
    base = {n: p.detach().clone() for n, p in a.base_model.named_parameters()}
    a.merge()
    assert a.merged and not torch.equal(a.base_model.enc["q"].weight, base["enc.q.weight"])
    torch.testing.assert_close(a(x), y_adapter, atol=1e-5, rtol=1e-5)
    a.unmerge()
    for n, p in a.base_model.named_parameters():
        torch.testing.assert_close(p, base[n], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(a(x), y_adapter, atol=1e-5, rtol=1e-5)
    if spec is SPEC_LORA:
        assert a.stats["factored"] > 0 and b.stats["factored"] == 0


def test_merge_state_errors():
    a = trained()
    with pytest.raises(SpecError, match="unmerge"):
        a.unmerge()
    a.merge()
    with pytest.raises(SpecError, match="merge"):
        a.merge()
    with pytest.raises(SpecError, match="disable_adapter"):
        with a.disable_adapter():
            pass


def test_safe_merge_refuses_non_finite_and_changes_nothing():
    a = trained()
    before = {n: p.detach().clone() for n, p in a.base_model.named_parameters()}
    with torch.no_grad():
        next(iter(a.adapter.values()))[0, 0] = float("nan")
    with pytest.raises(SpecError, match="non-finite"):
        a.merge(safe_merge=True)
    assert not a.merged
    assert all(torch.equal(p, before[n]) for n, p in a.base_model.named_parameters())
    with pytest.raises(ValueError, match="non-finite"):  # SpecError is a ValueError
        a.merge_and_unload(safe_merge=True)


def test_merge_and_unload_returns_a_plain_model():
    x = x_batch(3)
    a = trained()
    y = a(x).detach()
    model = a.merge_and_unload()
    assert isinstance(model, Net)
    assert not model._forward_hooks and not model._forward_pre_hooks
    assert all(not m._forward_hooks for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())
    torch.testing.assert_close(model(x), y, atol=1e-5, rtol=1e-5)
    with pytest.raises(SpecError, match="unloaded"):
        a.merge()
    inject(model, targets=["q"], spec=dict(rank=2))  # the returned model takes a new adapter


# ----------------------------------------------------------------- save / load
def test_save_load_round_trip_is_bit_exact_with_heads(tmp_path):
    a = trained(modules_to_save=["head"])
    a.save(tmp_path)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["format"] == "superlora_tn.adapter" and config["version"] == 1
    assert config["layers"] == {"enc.q": "linear", "enc.v": "linear", "enc.conv": "conv1d"}
    assert SuperLoRA.from_dict(config["spec"]) == a.spec
    fresh = make(0)  # same base weights, head at its pretrained values
    b = load(fresh, tmp_path)
    assert b.spec == a.spec and b.head_names == ["head"]
    for k, p in a.adapter.items():
        assert torch.equal(b.adapter[k], p) and b.adapter[k].requires_grad
    assert torch.equal(b.base_model.head.weight, a.base_model.head.weight)
    x = x_batch(4)
    assert torch.equal(b(x), a(x))
    c = load(make(0), tmp_path, is_trainable=False)
    assert not any(p.requires_grad for p in c.parameters())


def test_load_adapter_into_an_adapted_model_and_spec_mismatch(tmp_path):
    a = trained()
    a.save(tmp_path)
    b = inject(make(0), targets=r"enc\..*", spec=SPEC_3D)
    b.load_adapter(tmp_path)
    assert all(torch.equal(b.adapter[k], p) for k, p in a.adapter.items())
    other = inject(make(0), targets=r"enc\..*", spec=dict(SPEC_3D, rank=2))
    with pytest.raises(SpecError, match="rank: 3 vs 2"):
        other.load_adapter(tmp_path)
    with pytest.raises(SpecError, match="rank: 3 vs 4"):
        load(make(0), tmp_path, spec=dict(SPEC_3D, rank=4))
    with pytest.raises(SpecError, match="fold"):
        load(make(0), tmp_path, spec=dict(SPEC_3D, fold="natural"))
    load(make(0), tmp_path, spec=SPEC_3D)  # the matching spec loads


def test_load_into_a_model_of_other_shapes_names_the_target(tmp_path):
    trained().save(tmp_path)
    with pytest.raises(SpecError, match=r"enc\.q.*\(14, 10\).*\(16, 10\)"):
        load(make(0, hidden=16), tmp_path)
    renamed = nn.Sequential()
    renamed.add_module("body", make(0))
    with pytest.raises(SpecError, match=r"enc\.q"):
        load(renamed, tmp_path)


def test_truncated_corrupted_or_foreign_files_are_refused(tmp_path):
    trained().save(tmp_path)
    weights = tmp_path / "adapter_model.safetensors"
    config = tmp_path / "adapter_config.json"
    good_w, good_c = weights.read_bytes(), config.read_text()
    weights.write_bytes(good_w[: len(good_w) // 2])
    with pytest.raises(SpecError, match="truncated"):
        load(make(0), tmp_path)
    flipped = bytearray(good_w)
    flipped[-5] ^= 0x40
    weights.write_bytes(bytes(flipped))
    with pytest.raises(SpecError, match="corrupted"):
        read(tmp_path)
    weights.write_bytes(good_w)
    config.write_text(good_c[:-20])
    with pytest.raises(SpecError, match="JSON"):
        read(tmp_path)
    config.write_text(good_c.replace('"version": 1', '"version": 99'))
    with pytest.raises(SpecError, match="version=99"):
        read(tmp_path)
    config.write_text(good_c.replace('"superlora_tn.adapter"', '"peft"'))
    with pytest.raises(SpecError, match="format"):
        read(tmp_path)
    (tmp_path / "adapter_config.json").unlink()
    with pytest.raises(SpecError, match=r"adapter_config\.json"):
        read(tmp_path)
