"""Every command's output fits 80 and 100 columns (piped), and no number in a table is cut."""

from __future__ import annotations

import re

import pytest

import superlora_tn as slt
from superlora_tn import demo
from superlora_tn.cli import main
from superlora_tn.console import fit_widths, wrap_cell
from superlora_tn.presets import preset_targets

LONG_NAMES = {f"model.encoder.layers.{i}.self_attention.{w}_projection.weight": (48, 32)
              for i in range(2) for w in ("query", "value")}

COMMANDS = {
    "plan": ["plan"],
    "plan llama-7b all": ["plan", "--preset", "llama-7b", "--targets", "all"],
    "plan per-group": ["plan", "--preset", "gpt2-medium", "--per-group", "--groups", "4", "--fold", "balanced",
                       "--order", "3", "--splits", "2", "--structure", "dense,tucker", "--rank", "[2, [4, 4, 4]]",
                       "--projection", "fastfood:0.25", "--shuffle", "3"],
    "budget": ["budget", "--budget", "1e4", "--top", "8", "--orders", "2,3", "--splits", "1,2"],
    "verify": ["verify", "--backends", "numpy"],
}


def render(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, columns: int, argv: list[str]) -> str:
    monkeypatch.setenv("COLUMNS", str(columns))
    assert main(argv) == 0
    return capsys.readouterr().out


def widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


@pytest.mark.parametrize("columns", [80, 100])
@pytest.mark.parametrize("name", list(COMMANDS))
def test_command_fits_the_width(capsys, monkeypatch, name, columns):
    out = render(capsys, monkeypatch, columns, COMMANDS[name])
    assert widest(out) <= columns, out


@pytest.mark.parametrize("columns", [80, 100])
def test_demo_fits_and_merges_identical_groups(capsys, monkeypatch, tmp_path, columns):
    # the demo's code path on small targets with long names (the ViT-B/16 contractions take seconds)
    monkeypatch.setattr(demo, "preset_targets", lambda name: LONG_NAMES)
    out = render(capsys, monkeypatch, columns, ["demo", "--backends", "numpy"])
    assert widest(out) <= columns, out
    assert "0-3 (x4)" in out  # four identical LoRA groups in one row


@pytest.mark.parametrize("columns", [80, 100])
def test_draw_fits(capsys, monkeypatch, tmp_path, columns):
    out = render(capsys, monkeypatch, columns, ["draw", "-o", str(tmp_path / "g.svg")])
    assert widest(out) <= columns


def test_plan_numbers_are_whole_at_80_columns(capsys, monkeypatch):
    out = render(capsys, monkeypatch, 80, COMMANDS["plan llama-7b all"])
    spec = slt.SuperLoRA(preset_targets("llama-7b", "all"))
    assert f"{spec.num_params:,}" in out
    for params in {g.num_params for g in spec.groups}:
        assert re.search(rf"\s{params:,}\s", out), params


def test_budget_params_are_whole_at_80_columns(capsys, monkeypatch):
    out = render(capsys, monkeypatch, 80, COMMANDS["budget"])
    counts = re.findall(r"^\s*\d+\s+([\d,]+)\s+[\d.]+%", out, flags=re.M)
    assert len(counts) == 8 and all(int(c.replace(",", "")) <= 10_000 for c in counts)


def test_wrapping_keeps_every_character():
    text = "groups=2 fold=balanced M=4 K=2 dense+tucker r=7 fastfood=0.25"
    for width in (6, 9, 17, 40):
        lines = wrap_cell(text, width)
        assert all(len(line) <= width for line in lines)
        assert "".join(lines).replace(" ", "") == text.replace(" ", "")


def test_numeric_columns_are_never_narrowed():
    assert fit_widths(["setting", "params"], [["x" * 50, "12,345,678"]], {"params"}, 20) == [10, 10]


def test_experiment_threads_and_jobs_reach_the_run(monkeypatch):
    import superlora_tn.experiments as experiments

    seen = {}
    monkeypatch.setattr(experiments, "run", lambda name, **kw: seen.update(name=name, **kw))
    assert main(["experiment", "digits", "--quick", "--jobs", "1", "--threads", "1"]) == 0
    assert seen["name"] == "digits" and seen["threads"] == 1 and seen["jobs"] == 1 and seen["quick"]


def test_pretraining_shows_a_bar_with_an_eta(capfd, monkeypatch):
    import torch

    from superlora_tn.experiments import _common

    monkeypatch.setenv("COLUMNS", "100")
    weight = torch.nn.Parameter(torch.zeros(3))
    model = torch.nn.Module()
    model.w = weight
    _common.train_loop(model, lambda b: (model.w - 1).pow(2).sum(), iter(range(10)), 5, 0.1, label="pretraining x")
    err = capfd.readouterr().err
    assert "pretraining x" in err and "5/5" in err and ".py:" not in err


def test_budget_spec_json_is_accepted_by_plan(capsys, monkeypatch, tmp_path):
    import json

    monkeypatch.setenv("COLUMNS", "100")
    assert main(["budget", "--budget", "5e3", "--top", "40", "--rank-by", "fewest-groups", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)["candidates"]
    assert [c["groups"] for c in found] == sorted(c["groups"] for c in found)
    targets = preset_targets("vit-b16")
    for c in found:
        path = tmp_path / "spec.json"
        path.write_text(json.dumps(c["spec"]))
        assert main(["plan", "--preset", "vit-b16", "--spec", str(path), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["totals"]["params"] == c["params"]
        namespace = {"slt": slt, "targets": targets, "group_by_kind": __import__("superlora_tn.presets").presets.group_by_kind}
        spec = eval(f"slt.SuperLoRA(targets, {c['python']})", {"Fastfood": slt.Fastfood, **namespace})
        assert spec.num_params == c["params"]


def test_budget_marks_the_measured_settings(capsys, monkeypatch):
    out = render(capsys, monkeypatch, 100, ["budget", "--budget", "4e4", "--orders", "2", "--splits", "1",
                                            "--ratios", "none", "--group-counts", "1,12"])
    assert "2-D G=L" in out and "2-D G=1" in out and "LoRA" in out


def test_bench_table_fits_100_columns():
    """``superlora-tn bench`` prints superlora_tn.bench.common.Table: long notes wrap under their row."""
    common = pytest.importorskip("superlora_tn.bench.common")
    t = common.Table()
    t.add("LoKr r=8 apply, 4096 tokens", "fwd ours factored (base + apply_delta)", 1.49, ref="base matmul x @ W.T")
    t.add("LoKr r=8 apply, 4096 tokens", "base matmul x @ W.T", 1.40, note="the reference " + "word " * 30)
    t.add("fastfood 2^24 float32", "radix-2 butterfly, obvious (numpy)", 0.57, ref="ours fwht (numpy)")
    lines = t.render().splitlines()
    assert max(len(line) for line in lines) <= 100
    assert any("the reference" in line for line in lines) and any("1.06x" in line for line in lines)
