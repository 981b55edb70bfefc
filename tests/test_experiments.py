"""The experiment pipelines run end to end (tiny budgets) and training beats zero-shot."""

from __future__ import annotations

import csv
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")
pytest.importorskip("rich")

from superlora_tn.experiments import report, run  # noqa: E402
from superlora_tn.experiments._common import Row  # noqa: E402
from superlora_tn.experiments.digits import DigitsBudget, ViT, target_info  # noqa: E402
from superlora_tn.experiments.methods import all_methods, build_generator, select  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_quick_digits_pipeline_beats_zero_shot(tmp_path):
    """Quick digits run with a tiny budget: files are written and adaptation helps."""
    names = [m.name for m in select(quick=True) if m.kind in ("zero-shot", "lora", "spec")]
    budget = DigitsBudget(pretrain_steps=150, steps=80, batch_size=64)
    summaries = run("digits", quick=True, out_dir=tmp_path, methods=names, budget=budget,
                    show_progress=False, jobs=1)
    by_name = {s.method: s for s in summaries}
    zero = by_name["zero-shot"].mean["accuracy"]
    trained = [s for s in summaries if s.method != "zero-shot"]
    assert trained and all(s.adapter_params > 0 for s in trained)
    assert by_name["LoRA r=1"].mean["accuracy"] > zero + 0.1
    assert max(s.mean["accuracy"] for s in trained) > zero + 0.1
    for suffix in ("runs.csv", "summary.csv", "results.md", "plot.png"):
        assert (tmp_path / f"digits_{suffix}").stat().st_size > 0
    with (tmp_path / "digits_summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == [s.method for s in summaries]
    assert "| method |" in (tmp_path / "digits_results.md").read_text()


_SERIAL_VS_POOLED = """
import json, sys
from superlora_tn.experiments import run
from superlora_tn.experiments.digits import DigitsBudget
names = ["zero-shot", "LoRA r=1", "SuperLoRA 3-D G=1 r=2 ff=0.01", "full FT (adapted W)"]
common = dict(quick=True, methods=names, budget=DigitsBudget(pretrain_steps=40, steps=15, batch_size=32),
              show_progress=False, threads=1, seeds=[0, 1])
out = {jobs: [[s.method, s.adapter_params, s.mean, s.std] for s in
              run("digits", out_dir=f"{sys.argv[1]}/{jobs}", jobs=jobs, **common)] for jobs in (1, 2)}
print(json.dumps(out))
"""


def test_worker_processes_give_the_numbers_of_a_serial_run(tmp_path):
    """jobs=2 (forked workers, one thread each) == jobs=1 with one thread, run for run.

    In a fresh interpreter: this test session may have loaded JAX, where run() refuses to fork.
    """
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, "-c", _SERIAL_VS_POOLED, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=300, check=True)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    serial, pooled = out["1"], out["2"]
    assert [r[0] for r in serial] == ["zero-shot", "LoRA r=1", "SuperLoRA 3-D G=1 r=2 ff=0.01",
                                      "full FT (adapted W)"]
    assert pooled == serial
    assert len({r[2]["accuracy"] for r in serial[1:]}) > 1  # the runs differ from each other
    assert "worker processes: 2" in (tmp_path / "2" / "digits_results.md").read_text()
    assert "worker processes: 1" in (tmp_path / "1" / "digits_results.md").read_text()


def test_no_fork_where_jax_is_loaded(monkeypatch, tmp_path):
    from superlora_tn.experiments import _pool

    monkeypatch.setitem(sys.modules, "jax", object())
    assert "jax" in (_pool.fork_blocker() or "") and not _pool.can_fork()
    budget = DigitsBudget(pretrain_steps=5, steps=2, batch_size=16)
    with pytest.warns(RuntimeWarning, match="serially: jax"):
        run("digits", quick=True, out_dir=tmp_path, methods=["zero-shot", "LoRA r=1"],
            budget=budget, show_progress=False, jobs=2)
    assert "worker processes: 1" in (tmp_path / "digits_results.md").read_text()


def test_every_method_builds_with_its_parameter_count():
    """Each method of the table resolves on the ViT targets; dW == 0 at init."""
    info = target_info(ViT())
    for method in (m for m in select(quick=False) if m.runs_on("digits")):
        gen = build_generator(method, info, seed=0)
        if gen is None:
            continue
        deltas = gen.deltas()
        assert set(deltas) == set(info.targets)
        for name, shape in info.targets.items():
            assert tuple(deltas[name].shape) == shape
            assert float(deltas[name].detach().abs().max()) == 0.0
        assert gen.num_params == sum(p.numel() for p in gen.parameters())
    assert len({m.name for m in all_methods()}) == len(all_methods())


def test_lora_parameter_count_matches_formula():
    info = target_info(ViT())
    lora = next(m for m in all_methods() if m.name == "LoRA r=2")
    assert build_generator(lora, info, 0).num_params == 2 * sum(o + i for o, i in info.targets.values())


def _row(method: str, family: str, params: int, acc: float) -> Row:
    return Row("t", method, family, "x", params, 0, 0, {"accuracy": acc}, 1.0)


def test_efficiency_factor_picks_smallest_superlora_reaching_lora():
    rows = [
        _row("LoRA r=1", "LoRA", 1000, 0.70),
        _row("S big", "SuperLoRA 3-D Tucker", 500, 0.80),
        _row("S small", "SuperLoRA 2-D", 100, 0.71),
        _row("S tiny", "SuperLoRA 2-D", 10, 0.50),
        _row("LoKr", "LoKr", 5, 0.99),
    ]
    effs = report.efficiency(report.aggregate(rows), "accuracy")
    assert len(effs) == 1 and effs[0].superlora == "S small" and effs[0].factor == pytest.approx(10)
    none = report.efficiency(report.aggregate([_row("LoRA r=1", "LoRA", 1000, 0.9), rows[3]]), "accuracy")
    assert none[0].factor is None


def test_equal_quality_reads_lora_params_off_the_log_linear_curve():
    rows = [
        _row("LoRA r=1", "LoRA", 1000, 0.70),
        _row("LoRA r=2", "LoRA", 2000, 0.80),
        _row("LoRA r=4", "LoRA", 4000, 0.78),  # a dip: the first crossing counts
        _row("S mid", "SuperLoRA 2-D", 100, 0.75),
        _row("S at r=1", "SuperLoRA 2-D", 500, 0.70),
        _row("S below", "SuperLoRA 3-D Tucker", 10, 0.60),
        _row("S above", "SuperLoRA 3-D Tucker", 50, 0.90),
        _row("LoKr", "LoKr", 5, 0.75),
    ]
    got = {e.method: e for e in report.equal_quality(report.aggregate(rows), "accuracy")}
    assert set(got) == {"S mid", "S at r=1", "S below", "S above"}
    assert got["S mid"].lora_params == pytest.approx(1000 * 2**0.5)
    assert got["S mid"].factor == pytest.approx(10 * 2**0.5)
    assert got["S at r=1"].factor == pytest.approx(2.0)
    assert got["S below"].factor is None and got["S above"].factor is None
    # lower is better (a distance): the curve falls with parameters
    assert report.lora_params_for([(1000, 50.0), (4000, 30.0)], 40.0, higher_is_better=False) == pytest.approx(2000)
    table = report.equal_quality_markdown(list(got.values()), "accuracy")
    assert table.index("S mid") < table.index("S at r=1") and "2 settings lie outside" in table
