"""The experiment pipelines run end to end (tiny budgets) and training beats zero-shot."""

from __future__ import annotations

import csv

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
                    show_progress=False)
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


def test_worker_processes_give_the_numbers_of_a_serial_run(tmp_path):
    """jobs=2 (forked workers, one thread each) == jobs=1 with one thread, run for run."""
    names = ["zero-shot", "LoRA r=1", "SuperLoRA 3-D G=1 r=2 ff=0.01", "full FT (adapted W)"]
    budget = DigitsBudget(pretrain_steps=40, steps=15, batch_size=32)
    common = dict(quick=True, methods=names, budget=budget, show_progress=False, threads=1,
                  seeds=[0, 1])
    serial = run("digits", out_dir=tmp_path / "serial", jobs=1, **common)
    pooled = run("digits", out_dir=tmp_path / "pooled", jobs=2, **common)
    assert [s.method for s in pooled] == [s.method for s in serial] == names
    for a, b in zip(serial, pooled):
        assert a.mean == b.mean and a.std == b.std and a.adapter_params == b.adapter_params
    trained = [s for s in serial if s.method != "zero-shot"]
    assert len({s.mean["accuracy"] for s in trained}) > 1  # the runs differ from each other
    assert "worker processes: 2" in (tmp_path / "pooled" / "digits_results.md").read_text()


def test_every_method_builds_with_its_parameter_count():
    """Each method of the table resolves on the ViT targets; dW == 0 at init."""
    info = target_info(ViT())
    for method in select(quick=False):
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
