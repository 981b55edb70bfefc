"""load_peft / save_peft: one call each, forward parity with PEFT itself (GPT-2 Conv1D LoRA,
conv LoRA, Linear LoKr), and the refusals (conv LoKr: tests/test_peft_lokr_conv.py)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from superlora_tn.errors import SpecError
from superlora_tn.interop.peft import load_peft, save_peft
from superlora_tn.torch import inject

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")
ERRORS: dict[str, float] = {}


def gpt2() -> nn.Module:
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_embd=24, n_head=2, vocab_size=40, n_positions=16)
    return transformers.GPT2LMHeadModel(config).eval()


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max().detach() / b.abs().max().detach())


def test_gpt2_conv1d_lora_both_ways(tmp_path):
    base = gpt2()
    pm = peft.get_peft_model(copy.deepcopy(base), peft.LoraConfig(r=3, lora_alpha=5, target_modules=["c_attn", "c_proj"],
                                                                   init_lora_weights=False, fan_in_fan_out=True,
                                                                   rank_pattern={"h.1.attn.c_attn": 2}, use_rslora=True))
    pm.eval()
    ids = torch.tensor([[1, 5, 9, 3, 7]])
    want = pm(ids).logits
    pm.save_pretrained(tmp_path / "peft")
    for source in (pm, tmp_path / "peft"):
        a = load_peft(copy.deepcopy(base), source)
        assert {i.kind for i in a.layers.values()} == {"gpt2_conv1d"}
        ERRORS["lora_conv1d"] = max(ERRORS.get("lora_conv1d", 0.0), rel(a(ids).logits, want))
        torch.testing.assert_close(a(ids).logits, want, rtol=2e-5, atol=2e-6)
    save_peft(a, tmp_path / "ours")
    back = peft.PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "ours").eval()
    torch.testing.assert_close(back(ids).logits, want, rtol=2e-5, atol=2e-6)


def test_linear_lokr_both_ways(tmp_path):
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(12, 20), nn.ReLU(), nn.Linear(20, 6))
    pm = peft.get_peft_model(copy.deepcopy(base), peft.LoKrConfig(r=2, alpha=3, target_modules=["0", "2"], init_weights=False,
                                                                   decompose_both=True))
    x = torch.randn(4, 12)
    want = pm(x)
    a = load_peft(copy.deepcopy(base), pm)
    ERRORS["lokr_linear"] = rel(a(x), want)
    torch.testing.assert_close(a(x), want, rtol=2e-5, atol=2e-6)
    save_peft(a, tmp_path / "ours")
    back = peft.PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "ours")
    torch.testing.assert_close(back(x), want, rtol=2e-5, atol=2e-6)


def test_refusals(tmp_path):
    net = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8))
    grouped = inject(copy.deepcopy(net), targets=["0", "1"], spec=dict(groups=1, fold="balanced", order=3, rank=2))
    with pytest.raises(SpecError, match="not representable as PEFT"):
        save_peft(grouped, tmp_path / "x")
    long = nn.Sequential(*[nn.Linear(8, 8) for _ in range(13)])  # PEFT's suffix rule: "2" would also select "12"
    heads = inject(copy.deepcopy(long), targets=["0"], spec=dict(rank=2), modules_to_save=["2"])
    with pytest.raises(SpecError, match="would also select"):
        save_peft(heads, tmp_path / "y")
    dora = peft.get_peft_model(copy.deepcopy(net), peft.LoraConfig(r=2, target_modules=["0"], use_dora=True))
    with pytest.raises(SpecError, match="magnitude"):
        load_peft(copy.deepcopy(net), dora)
    loha = peft.get_peft_model(copy.deepcopy(net), peft.LoHaConfig(r=2, target_modules=["0"]))
    loha.save_pretrained(tmp_path / "loha")
    with pytest.raises(SpecError, match="Hadamard"):
        load_peft(copy.deepcopy(net), tmp_path / "loha")


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 6, 1)
        self.c3 = nn.Conv1d(6, 5, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c2(torch.relu(self.c1(x)))
        return self.c3(h.flatten(2))


def test_conv_lora_both_ways(tmp_path):
    torch.manual_seed(0)
    base = ConvNet()
    pm = peft.get_peft_model(copy.deepcopy(base), peft.LoraConfig(r=2, lora_alpha=3, target_modules=["c1", "c2", "c3"],
                                                                   init_lora_weights=False, rank_pattern={"c2": 3},
                                                                   alpha_pattern={"c3": 7}))
    x = torch.randn(2, 3, 6, 6)
    want = pm(x)
    pm.save_pretrained(tmp_path / "peft")
    for source in (pm, tmp_path / "peft"):
        a = load_peft(copy.deepcopy(base), source)
        assert [i.kind for i in a.layers.values()] == ["conv2d", "conv2d", "conv1d"]
        ERRORS["lora_conv"] = max(ERRORS.get("lora_conv", 0.0), rel(a(x), want))
        torch.testing.assert_close(a(x), want, rtol=2e-5, atol=2e-6)
    save_peft(a, tmp_path / "ours")
    back = peft.PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "ours")
    torch.testing.assert_close(back(x), want, rtol=2e-5, atol=2e-6)


def test_gpt2_sequence_classification_task_type_heads_both_ways(tmp_path):
    """task_type="SEQ_CLS" (PEFT adds the classification head to modules_to_save): the head is read as
    the adapter's own head and written back; PEFT's forward equal both ways."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_embd=24, n_head=2, vocab_size=40, n_positions=16, num_labels=3, pad_token_id=0)
    base = transformers.GPT2ForSequenceClassification(config).eval()
    pm = peft.get_peft_model(copy.deepcopy(base), peft.LoraConfig(task_type="SEQ_CLS", r=2, lora_alpha=4, target_modules=["c_attn"],
                                                                   init_lora_weights=False, fan_in_fan_out=True))
    with torch.no_grad():
        pm.base_model.model.score.modules_to_save["default"].weight.normal_()
    pm.eval()
    ids = torch.tensor([[1, 5, 9, 3, 7], [2, 4, 6, 8, 0]])
    want = pm(input_ids=ids).logits
    pm.save_pretrained(tmp_path / "peft")
    for source in (pm, tmp_path / "peft"):
        a = load_peft(copy.deepcopy(base), source).eval()
        assert a.head_names == ["score"]
        ERRORS["lora_seq_cls_head"] = max(ERRORS.get("lora_seq_cls_head", 0.0), rel(a(input_ids=ids).logits, want))
        torch.testing.assert_close(a(input_ids=ids).logits, want, rtol=2e-5, atol=2e-6)
    save_peft(a, tmp_path / "ours")
    back = peft.PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "ours").eval()
    torch.testing.assert_close(back(input_ids=ids).logits, want, rtol=2e-5, atol=2e-6)


def test_report_largest_errors(capsys):
    with capsys.disabled():
        print(f"\nlargest relative forward error vs PEFT: {ERRORS}")

