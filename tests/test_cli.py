"""The command line: exit codes, parsed JSON against the library, every target source."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import superlora_tn as slt
from superlora_tn.cli import main
from superlora_tn.presets import _header_shapes, checkpoint_targets, list_presets, load_preset, preset_targets

ROOT = Path(__file__).resolve().parents[1]


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_plan_json_counts_equal_the_spec(capsys):
    out = run_json(capsys, "plan", "--preset", "vit-b16", "--rank", "8")
    spec = slt.SuperLoRA(preset_targets("vit-b16"), rank=8)
    assert out["totals"]["params"] == spec.num_params == sum(g["params"] for g in out["groups"]) == 24 * 8 * (768 + 768)
    assert len(out["groups"]) == 24 and out["totals"]["entries"] == 24 * 768 * 768
    assert slt.SuperLoRA.from_dict(out["spec"]) == spec


def test_plan_llama_70b_shapes_and_flags(capsys):
    out = run_json(capsys, "plan", "--preset", "llama-70b", "--groups", "kind", "--fold", "stack", "--identity-modes", "0")
    assert out["totals"]["groups"] == 2 and out["totals"]["targets"] == 160
    assert [g["fold"] for g in out["groups"]] == ["80x8192x8192", "80x1024x8192"]
    spec = slt.SuperLoRA.from_dict(out["spec"])
    assert out["totals"]["params"] == spec.num_params


def test_plan_projection_shuffle_per_factor_flags(capsys):
    out = run_json(capsys, "plan", "--preset", "gpt2-medium", "--targets", "all", "--groups", "8", "--fold", "balanced",
                   "--order", "3", "--splits", "2", "--structure", "dense,tucker", "--rank", "[2, [4, 4, 4]]",
                   "--projection", "fastfood:0.25", "--shuffle", "3")
    spec = slt.SuperLoRA.from_dict(out["spec"])
    assert spec.config["projection"] == slt.Fastfood(0.25) and spec.config["shuffle"] == 3
    assert out["totals"]["targets"] == 96 and out["totals"]["groups"] == 8
    assert out["totals"]["params"] == spec.num_params


def test_presets_have_the_documented_shapes():
    assert list_presets() == ["gpt2-medium", "llama-70b", "llama-7b", "vit-b16"]
    llama = load_preset("llama-70b").targets
    assert len(llama) == 80 * 7
    assert llama["model.layers.79.self_attn.k_proj.weight"] == (1024, 8192)
    assert llama["model.layers.0.mlp.down_proj.weight"] == (8192, 28672)
    assert load_preset("llama-7b").targets["model.layers.31.mlp.up_proj.weight"] == (11008, 4096)
    assert load_preset("gpt2-medium").targets["transformer.h.23.attn.c_attn.weight"] == (3072, 1024)
    assert len(preset_targets("gpt2-medium")) == 24
    assert load_preset("vit-b16").targets["vit.encoder.layer.11.intermediate.dense.weight"] == (3072, 768)


def test_targets_and_spec_files(tmp_path, capsys):
    targets = {"a": [16, 32], "b": [32, 16]}
    (tmp_path / "t.json").write_text(json.dumps(targets))
    (tmp_path / "t.yaml").write_text("targets:\n  a: [16, 32]\n  b: [32, 16]\n")
    (tmp_path / "s.yaml").write_text("groups: 1\nfold: balanced\norder: 3\nrank: 2\nprojection: fastfood:0.5\n")
    ref = slt.SuperLoRA(targets, groups=1, fold="balanced", order=3, rank=2, projection=slt.Fastfood(0.5))
    for tfile in ("t.json", "t.yaml"):
        out = run_json(capsys, "plan", "--targets-file", str(tmp_path / tfile), "--spec", str(tmp_path / "s.yaml"))
        assert out["totals"]["params"] == ref.num_params
    (tmp_path / "saved.json").write_text(json.dumps(ref.to_dict()))
    out = run_json(capsys, "plan", "--spec", str(tmp_path / "saved.json"))
    assert slt.SuperLoRA.from_dict(out["spec"]) == ref
    out = run_json(capsys, "plan", "--spec", str(tmp_path / "saved.json"), "--rank", "3")
    assert out["totals"]["params"] == slt.SuperLoRA(targets, groups=1, fold="balanced", order=3, rank=3,
                                                     projection=slt.Fastfood(0.5)).num_params
    # a saved LoRA spec (structure resolved to lora) refolded by flags chooses its structure again
    (tmp_path / "lora.json").write_text(json.dumps(slt.SuperLoRA(targets, rank=2).to_dict()))
    out = run_json(capsys, "plan", "--spec", str(tmp_path / "lora.json"), "--fold", "balanced", "--order", "3")
    assert slt.SuperLoRA.from_dict(out["spec"]) == slt.SuperLoRA(targets, rank=2, fold="balanced", order=3)
    assert slt.SuperLoRA.from_dict(out["spec"]).config.structure == "tucker"
    # ... and so does one applied to targets whose fold has more modes (conv kernels, fold="shape")
    (tmp_path / "shape.json").write_text(json.dumps(slt.SuperLoRA(targets, rank=2, fold="shape").to_dict()))
    (tmp_path / "conv.json").write_text(json.dumps({"c": [8, 4, 3, 3]}))
    out = run_json(capsys, "plan", "--spec", str(tmp_path / "shape.json"), "--targets-file", str(tmp_path / "conv.json"))
    assert slt.SuperLoRA.from_dict(out["spec"]) == slt.SuperLoRA({"c": (8, 4, 3, 3)}, rank=2, fold="shape")


def test_checkpoint_header_only(tmp_path, capsys):
    from safetensors.numpy import save_file

    tensors = {"model.layers.0.self_attn.q_proj.weight": np.zeros((8, 4), np.float32),
               "model.layers.0.self_attn.v_proj.weight": np.zeros((2, 4), np.float32),
               "model.layers.0.mlp.up_proj.weight": np.zeros((6, 4), np.float32),
               "model.norm.weight": np.zeros(4, np.float32)}
    save_file(tensors, str(tmp_path / "model.safetensors"))
    assert _header_shapes(tmp_path / "model.safetensors")["model.norm.weight"] == (4,)
    assert checkpoint_targets(tmp_path) == {k: v.shape for k, v in tensors.items() if v.ndim == 2}
    assert checkpoint_targets(tmp_path, conv1d=True)["model.layers.0.mlp.up_proj.weight"] == (4, 6)
    out = run_json(capsys, "plan", "--checkpoint", str(tmp_path / "model.safetensors"), "--rank", "1")
    assert out["totals"]["targets"] == 2  # default selection: attention q and v
    out = run_json(capsys, "plan", "--checkpoint", str(tmp_path), "--targets", "all", "--rank", "1")
    assert out["totals"]["params"] == (8 + 4) + (2 + 4) + (6 + 4)


@pytest.mark.parametrize("argv", [
    ["plan", "--preset", "vit-b16", "--rank", "0"],
    ["plan", "--preset", "nope"],
    ["plan", "--preset", "vit-b16", "--targets", "nothing-matches"],
    ["plan", "--preset", "vit-b16", "--targets", "("],
    ["plan", "--targets-file", "/nonexistent.json"],
    ["plan", "--preset", "vit-b16", "--projection", "fastfood:2"],
    ["plan", "--preset", "vit-b16", "--projection", "magic:0.5"],
    ["plan", "--preset", "vit-b16", "--groups", "3", "--fold", "natural"],
    ["plan", "--checkpoint", "/nonexistent.safetensors"],
    ["budget", "--preset", "vit-b16", "--budget", "0"],
    ["draw", "--preset", "vit-b16", "--group", "24"],
])
def test_bad_input_exits_2_with_a_message(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "expected" in err


def test_bad_flags_and_help(capsys):
    for argv in (["plan", "--bogus"], ["nocommand"], [], ["plan", "--order", "x"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    for cmd in ("demo", "plan", "budget", "draw", "verify", "bench", "experiment"):
        with pytest.raises(SystemExit) as exc:
            main([cmd, "--help"])
        assert exc.value.code == 0


def test_optional_parts_exit_3_or_run(capsys):
    import importlib.util

    have_reductions = importlib.util.find_spec("superlora_tn.reductions") is not None
    code = main(["verify", "--backends", "numpy"])
    assert code in ((0, 1) if have_reductions else (3,))
    if importlib.util.find_spec("superlora_tn.experiments") is None:
        assert main(["experiment", "digits", "--quick"]) == 3
    if importlib.util.find_spec("superlora_tn.bench") is None:
        assert main(["bench"]) == 3


def test_plan_table_and_budget_text(capsys):
    assert main(["plan", "--preset", "llama-70b"]) == 0
    out = capsys.readouterr().out
    assert "16,384,000 params" in out and "(x80)" in out
    assert main(["budget", "--preset", "vit-b16", "--budget", "1e4", "--top", "5"]) == 0
    out = capsys.readouterr().out
    assert "closest to the budget" in out and "best setting of each variant" in out


def test_demo_agreement_small():
    from superlora_tn.demo import agreement, demo_specs

    spec = slt.SuperLoRA({"a": (12, 8), "b": (8, 12)}, groups=2, fold="balanced", order=3, rank=2,
                         projection=slt.Fastfood(0.5), shuffle=1)
    result = agreement(spec)
    assert set(result) == set(slt.available_backends())
    for r in result.values():
        assert r["max_abs_diff"] < (1e-5 if r["dtype"] == "float32" else 1e-12)
    specs = demo_specs()
    assert specs["LoRA r=8"].num_params == 24 * 8 * 1536 and len(specs["LoTR-like stack (q | v)"].groups) == 2


def test_python_dash_m(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "superlora_tn", "plan", "--preset", "vit-b16", "--json"], cwd=ROOT,
                          capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": ""}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["totals"]["params"] == 294912


def test_verify_table_and_exit_code_with_reductions(monkeypatch, capsys):
    """verify against the reductions API (faked here when the module is not in this build)."""
    import types

    import superlora_tn

    class Report:
        def __init__(self, name):
            self.max_error = 1.0 if name == "broken" else 1e-17
            self.relative_error = self.max_error

    names = ("lora", "broken")
    fake_variants = types.SimpleNamespace(VARIANTS=names, build=lambda name, targets, rank: slt.SuperLoRA(targets, rank=rank))
    fake_reductions = types.ModuleType("superlora_tn.reductions")
    fake_reductions.check_reduction = lambda spec, name, backend, dtype, seed: Report(name)
    monkeypatch.setitem(sys.modules, "superlora_tn.reductions", fake_reductions)
    monkeypatch.setattr(superlora_tn, "variants", fake_variants, raising=False)
    assert main(["verify", "--backends", "numpy"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "pass" in out and "1/2 passed" in out


@pytest.mark.parametrize("flags", [["--fold", ""], ["--fold", "64xab"], ["--identity-modes", "a"], ["--groups", '[[["a"]]]']])
def test_bad_spec_flags_exit_2_with_the_flag_named(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--preset", "vit-b16", *flags]) == 2
    assert flags[0].lstrip("-").replace("-", "_") in capsys.readouterr().err.replace("-", "_")


@pytest.mark.parametrize("budget", ["nan", "inf", "0"])
def test_bad_budget_exits_2(budget: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["budget", "--preset", "vit-b16", "--budget", budget]) == 2
    assert "budget" in capsys.readouterr().err


def test_experiment_command_calls_the_experiment_runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import superlora_tn.experiments as experiments

    calls = []
    monkeypatch.setattr(experiments, "cli_experiment",
                        lambda name, quick, out_dir, jobs, threads: calls.append((name, quick, out_dir, jobs, threads)) or 0)
    assert main(["experiment", "minilm", "--quick", "--out-dir", str(tmp_path)]) == 0
    assert main(["experiment", "digits", "--jobs", "2", "--threads", "1"]) == 0
    assert calls == [("minilm", True, str(tmp_path), None, None), ("digits", False, "results", 2, 1)]


def test_bench_passes_its_flags_to_the_benchmark_runner(monkeypatch):
    bench = pytest.importorskip("superlora_tn.bench.__main__")
    seen = []
    monkeypatch.setattr(bench, "main", lambda argv: seen.append(argv) or 0)
    assert main(["bench", "--quick", "--only", "planning"]) == 0
    assert seen == [["--quick", "--only", "planning"]]
