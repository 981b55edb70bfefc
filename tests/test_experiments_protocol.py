"""The tuning protocol (grid, choice, widening, CSV), the random-subspace control and the
efficiency/intrinsic-dimension statistics of the experiments, on synthetic data."""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("scipy")

from experiment_helpers import count_scoring  # noqa: E402

from superlora_tn.experiments import protocol, report  # noqa: E402
from superlora_tn.experiments._common import Row  # noqa: E402
from superlora_tn.experiments.methods import TargetInfo, build_generator, by_name, random_subspace, select  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs" / "experiments"


# --- grid and choice -------------------------------------------------------------------------


def test_grid_is_log_spaced_and_centred():
    grid = protocol.lr_grid(3e-2)
    assert len(grid) == 5 and grid[2] == 3e-2
    ratios = np.diff(np.log10(grid))
    assert np.allclose(ratios, 0.5, atol=1e-5)
    assert protocol.beyond(grid, "high") == pytest.approx(3e-2 * 10**1.5, rel=1e-5)
    assert protocol.beyond(grid, "low") == pytest.approx(3e-2 * 10**-1.5, rel=1e-5)
    with pytest.raises(ValueError):
        protocol.lr_grid(0.0)
    with pytest.raises(ValueError):
        protocol.beyond(grid, "middle")


def test_choice_uses_the_mean_of_the_seeds_and_reports_the_edge():
    # rate 0.1 has the best single seed but the worse mean: the mean decides
    scores = {0.01: [0.60, 0.62], 0.03: [0.70, 0.72], 0.1: [0.90, 0.40], 0.3: [0.5, 0.5]}
    assert protocol.choose_rate(scores) == (0.03, None)
    assert protocol.choose_rate({0.01: [0.9], 0.03: [0.5], 0.1: [0.4]}) == (0.01, "low")
    assert protocol.choose_rate({0.01: [0.1], 0.03: [0.5], 0.1: [0.6]}) == (0.1, "high")
    # lower is better (a loss), a diverged rate (NaN) is the worst, a tie goes to the smaller rate
    assert protocol.choose_rate({0.01: [0.3], 0.03: [0.2], 0.1: [0.25]}, higher_is_better=False) == (0.03, None)
    assert protocol.choose_rate({0.01: [0.5], 0.03: [0.6], 0.1: [math.nan]}) == (0.03, None)
    assert protocol.choose_rate({0.01: [0.5], 0.03: [0.6], 0.1: [0.6]})[0] == 0.03
    with pytest.raises(ValueError):
        protocol.choose_rate({})


def _synthetic_eval(best: float, calls: list):
    """Validation score peaked at ``best`` in log rate, slightly different per seed."""

    def evaluate(jobs):
        calls.append(list(jobs))
        return [protocol.TuningRecord("t", m, "f", 10, lr, s, "acc",
                                      1.0 - (math.log10(lr) - math.log10(best)) ** 2 + 0.001 * s, 0.1)
                for m, lr, s in jobs]

    return evaluate


def test_search_widens_past_the_edge_until_the_best_is_inside():
    calls: list = []
    records = protocol.search(["a", "b"], {"a": 1e-2, "b": 1e-2}, _synthetic_eval(1.0, calls))
    got = protocol.choices(records)
    # a: optimum at 1.0, two half-decades past the initial grid's top (0.1): widened to 0.316, 1
    # and 3.16, where 1.0 is inside
    assert got["a"].lr == pytest.approx(1.0) and got["a"].settled
    assert max(got["a"].grid) == pytest.approx(10**0.5, rel=1e-5) and len(got["a"].grid) == 8
    assert len(calls[0]) == 2 * 5 * 2  # round 1: both methods, 5 rates, 2 tuning seeds
    assert all(s in protocol.TUNING_SEEDS for c in calls for _, _, s in c)
    assert not set(protocol.FINAL_SEEDS) & set(protocol.TUNING_SEEDS)


def test_search_stops_after_max_widen_and_reuses_known_records():
    calls: list = []
    records = protocol.search(["a"], {"a": 1e-2}, _synthetic_eval(1e6, calls), max_widen=2)
    c = protocol.choices(records)["a"]
    assert len(c.grid) == 7 and c.edge == "high" and not c.settled  # still on the edge: reported
    again: list = []
    protocol.search(["a"], {"a": 1e-2}, _synthetic_eval(1e6, again), max_widen=2, known=records)
    assert again == []  # the cached records already hold the allowed widenings: nothing rerun
    more: list = []
    protocol.search(["a"], {"a": 1e-2}, _synthetic_eval(1e6, more), max_widen=3, known=records)
    assert [len(j) for j in more] == [2]  # one more rate, two seeds


def test_tuning_csv_round_trip(tmp_path):
    recs = [protocol.TuningRecord("digits", "LoRA r=1", "LoRA", 1024, lr, s, "accuracy", v, 9.87, steps)
            for lr, s, v, steps in [(0.00316228, 100, 0.5, None), (0.01, 101, 0.625, 150), (0.0316228, 100, 0.75, 300)]]
    path = tmp_path / "t.csv"
    protocol.write_tuning_csv(recs, path)
    assert protocol.read_tuning_csv(path) == recs
    assert protocol.choices(protocol.read_tuning_csv(path)) == protocol.choices(recs)


def test_a_choice_in_the_sweep_is_the_choice_from_its_csv(tmp_path):
    """MiniLM's shuffled setting, measured: 846 + 888 and 864 + 870 of 1,204 validation words at
    0.01 and 0.1, an exact tie of counts whose float means differ in the last bit. The sweep and
    its CSV must choose the same rate."""
    recs = [protocol.TuningRecord("minilm", "m", "f", 1, lr, seed, "accuracy", k / 1204, 1.0)
            for lr, counts in [(0.01, (846, 888)), (0.1, (864, 870))] for seed, k in zip((100, 101), counts)]
    path = tmp_path / "t.csv"
    protocol.write_tuning_csv(recs, path)
    assert protocol.read_tuning_csv(path) == recs
    assert protocol.choices(recs)["m"].lr == protocol.choices(protocol.read_tuning_csv(path))["m"].lr == 0.01


def test_rows_csv_round_trip_keeps_rate_and_split(tmp_path):
    rows = [Row("d", "LoRA r=1", "LoRA", "spec", 1024, 0, 0, {"accuracy": 0.8125}, 1.5, 0.0316228, "test"),
            Row("d", "zero-shot", "baseline", "torch", 0, 0, 0, {"accuracy": 0.125}, 0.1, None, "test")]
    report.write_rows_csv(rows, tmp_path / "r.csv")
    assert report.read_rows_csv(tmp_path / "r.csv") == rows


def test_t_interval_matches_the_t_table():
    assert protocol.t_interval([2.0]) == 0.0
    # t(0.975, 2) = 4.302653, t(0.975, 4) = 2.776445
    assert protocol.t_interval([1.0, 2.0, 3.0]) == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    x = [1.0, 3.0, 2.0, 5.0, 4.0]
    assert protocol.t_interval(x) == pytest.approx(2.776445 * np.std(x, ddof=1) / math.sqrt(5), rel=1e-5)


# --- random subspace -------------------------------------------------------------------------


def _info() -> TargetInfo:
    targets = OrderedDict([("a", (8, 8)), ("b", (8, 8)), ("c", (4, 8))])
    return TargetInfo(targets, layers=3, roles={"all": ["a", "b", "c"]})


@pytest.mark.parametrize("d", [1, 7, 33, 100, 160])
def test_random_subspace_has_exactly_d_parameters_and_starts_at_zero(d):
    gen = build_generator(random_subspace(d), _info(), seed=0)
    assert gen.num_params == d == sum(p.numel() for p in gen.parameters())
    assert all(float(v.detach().abs().max()) == 0.0 for v in gen.deltas().values())


def test_random_subspace_rejects_d_beyond_the_adapted_entries():
    with pytest.raises(ValueError, match="1 <= d <= 160"):
        build_generator(random_subspace(161), _info(), seed=0)
    with pytest.raises(ValueError):
        random_subspace(0)


def _flat(deltas: dict, info: TargetInfo) -> torch.Tensor:
    return torch.cat([deltas[n].reshape(-1) for n in info.targets])


def test_random_subspace_is_a_fixed_linear_map_with_the_transposed_gradient():
    """dW = F u for a fixed F: columns F e_i, linearity, and grad_u <G, dW> = F^T G."""
    info, d = _info(), 20
    gen = build_generator(random_subspace(d), info, seed=3)
    (param,) = list(gen.parameters())
    cols = []
    with torch.no_grad():
        for i in range(d):
            param.zero_()
            param.view(-1)[i] = 1.0
            cols.append(_flat(gen.deltas(), info).clone())
    F = torch.stack(cols, dim=1).double()  # (160, d), built from unit vectors only
    assert torch.linalg.matrix_rank(F) == d
    # Fastfood keeps norms on average: E||F u||^2 = ||u||^2
    assert 0.3 < float((F**2).sum() / d) < 3.0
    rng = np.random.default_rng(0)
    u = torch.tensor(rng.standard_normal(d), dtype=torch.float32)
    G = torch.tensor(rng.standard_normal(F.shape[0]), dtype=torch.float32)
    with torch.no_grad():
        param.copy_(u)
    flat = _flat(gen.deltas(), info)
    assert torch.allclose(flat.double(), F @ u.double(), atol=1e-5)
    (flat * G).sum().backward()
    assert torch.allclose(param.grad.double(), F.T @ G.double(), atol=1e-5)


def test_method_names_resolve_including_random_subspaces():
    assert by_name("random subspace d=33").spec["projection"] == ("fastfood_d", 33)
    picked = select(names=["random subspace d=5", "LoRA r=1", "zero-shot"])
    assert [m.name for m in picked] == ["zero-shot", "LoRA r=1", "random subspace d=5"]
    with pytest.raises(ValueError, match="unknown method"):
        by_name("random subspace d=x")
    assert dataclasses.replace(by_name("LoRA r=1"), lr=0.1).lr == 0.1


# --- statistics ------------------------------------------------------------------------------


def _rows(spec: dict[str, tuple[str, int, list[float]]]) -> list[Row]:
    return [Row("t", name, fam, "x", p, 0, s, {"acc": v}, 1.0)
            for name, (fam, p, vals) in spec.items() for s, v in enumerate(vals)]


SYNTH = {
    "zero-shot": ("baseline", 0, [0.10, 0.10, 0.10]),
    "full FT (adapted W)": ("full FT", 10_000, [0.90, 0.92, 0.94]),
    "LoRA r=1": ("LoRA", 1000, [0.70, 0.72, 0.74]),
    "LoRA r=2": ("LoRA", 2000, [0.80, 0.80, 0.80]),
    "S small": ("SuperLoRA 2-D", 250, [0.74, 0.75, 0.76]),
    "S tiny": ("SuperLoRA 2-D + fastfood", 20, [0.40, 0.42, 0.44]),
    "rs 10": ("random subspace", 10, [0.20, 0.20, 0.20]),
    "rs 100": ("random subspace", 100, [0.50, 0.50, 0.50]),
    "rs 1000": ("random subspace", 1000, [0.80, 0.80, 0.80]),
    "rs 10000": ("random subspace", 10_000, [0.90, 0.90, 0.92]),
}


def test_d90_and_equivalent_random_dimensions_read_the_subspace_curve():
    s = report.aggregate(_rows(SYNTH))
    # target 0.1 + 0.9 * (0.92 - 0.1) = 0.838, between rs 1000 (0.8) and rs 10000 (0.9067)
    frac = (0.838 - 0.8) / ((0.9 + 0.9 + 0.92) / 3 - 0.8)
    assert report.d90(s, "acc") == pytest.approx(10 ** (3 + frac), rel=1e-6)
    eq = {e.method: e for e in report.equivalent_dims(s, "acc")}
    assert eq["S small"].random_dims == pytest.approx(10 ** (2 + (0.75 - 0.5) / 0.3), rel=1e-6)
    assert eq["S tiny"].random_dims == pytest.approx(10 ** (1 + (0.42 - 0.2) / 0.3), rel=1e-6)
    assert eq["S tiny"].ratio == pytest.approx(eq["S tiny"].random_dims / 20)


def test_bootstrap_interval_brackets_the_estimate_and_is_zero_width_without_noise():
    rows = _rows(SYNTH)
    iv = report.bootstrap(rows, report.first_reaching_factor("LoRA r=1", "acc"), n=300)
    assert iv.value == pytest.approx(4.0)  # 1000 / 250: S small (0.75) reaches LoRA r=1 (0.72)
    assert iv.low <= iv.value <= iv.high and iv.defined == 1.0
    flat = _rows({k: (f, p, [v[0]] * 3) for k, (f, p, v) in SYNTH.items()})
    iv = report.bootstrap(flat, report.curve_factor("S small", "acc"), n=50)
    assert iv.low == iv.high == iv.value
    none = report.bootstrap(rows, report.first_reaching_factor("LoRA r=2", "acc"), n=50)
    assert none.value is None and none.defined == 0.0
    text = report.subspace_markdown(rows, "acc", n=50)
    assert "d90" in text and "S small" in text


# --- the shipped rates ------------------------------------------------------------------------


def test_shipped_rates_equal_the_choice_recomputed_from_the_committed_tuning_csv():
    from superlora_tn.experiments.tuned import TUNED_RATES

    for task, rates in TUNED_RATES.items():
        path = DOCS / f"{task}_tuning.csv"
        if not path.exists():
            pytest.skip(f"{path} is not in this checkout")
        records = protocol.read_tuning_csv(path)
        direction = {"accuracy": True, "loss": False}[records[0].metric]
        assert rates == {m: c.lr for m, c in protocol.choices(records, direction).items()}


def test_tuning_never_scores_on_the_test_split(tmp_path, monkeypatch):
    """A tiny digits sweep: every tuning run is scored by ``validate``; ``evaluate`` (test) is
    only called by the final runs."""
    from superlora_tn.experiments import digits, run

    calls = count_scoring(monkeypatch, digits)
    budget = digits.DigitsBudget(pretrain_steps=5, steps=3, batch_size=16)
    run("digits", out_dir=tmp_path, methods=["zero-shot", "LoRA r=1"], seeds=[0], budget=budget,
        show_progress=False, jobs=1, threads=1, tune=True)
    records = protocol.read_tuning_csv(tmp_path / "digits_tuning.csv")
    assert calls["val"] == len(records) >= 10 and calls["test"] == 2  # zero-shot + LoRA, one seed
    chosen = protocol.choices(records)["LoRA r=1"].lr
    runs = report.read_rows_csv(tmp_path / "digits_runs.csv")
    assert [r.lr for r in runs if r.method == "LoRA r=1"] == [chosen]
    assert "chosen lr" in (tmp_path / "digits_results.md").read_text()


def test_diffusion_tunes_on_validation_loss_and_reports_test_loss(tmp_path):
    """Tiny diffusion sweep: rates chosen by the lowest held-out denoising loss on the validation
    images; the final runs report target share, FD and the test-split loss."""
    from superlora_tn.experiments import diffusion, run

    data = diffusion.load_data()
    rows = {tuple(r.tolist()) for part in ("fit", "val", "test") for r in data[part]}
    assert len(data["fit"]) + len(data["val"]) + len(data["test"]) == len(data["target"])
    assert len(data["test"]) > 100 and len(data["val"]) > 100 and len(rows) > 0.95 * len(data["target"])
    budget = diffusion.DiffusionBudget(pretrain_steps=10, steps=3, batch_size=32, samples=16, diffusion_steps=5)
    summaries = run("diffusion", out_dir=tmp_path, methods=["zero-shot", "SuperLoRA 4-D G=1 r=1 ff=0.01"],
                    seeds=[0], budget=budget, show_progress=False, jobs=1, threads=1, tune=True)
    assert set(summaries[-1].mean) == {"target_share", "fd", "loss"}
    records = protocol.read_tuning_csv(tmp_path / "diffusion_tuning.csv")
    assert {r.metric for r in records} == {"loss"}
    scores = protocol.scores_by_rate(records, "SuperLoRA 4-D G=1 r=1 ff=0.01")
    best = min(scores, key=lambda lr: (np.mean(scores[lr]), lr))
    assert summaries[-1].lr == best


def test_tables_rebuild_from_the_csv_files_without_training(tmp_path, monkeypatch):
    from superlora_tn.experiments import rebuild, write_report

    monkeypatch.setattr(report, "BOOTSTRAP_DRAWS", 40)
    rows = [dataclasses.replace(r, task="digits", metrics={"accuracy": r.metrics["acc"]}, lr=0.01)
            for r in _rows(SYNTH)]
    recs = [protocol.TuningRecord("digits", "LoRA r=1", "LoRA", 1000, lr, s, "accuracy", v, 1.0)
            for lr, v in [(0.001, 0.5), (0.01, 0.7), (0.1, 0.6)] for s in (100, 101)]
    protocol.write_tuning_csv(recs, tmp_path / "t.csv")
    write_report("digits", rows, recs, tmp_path / "a")
    again = rebuild("digits", [tmp_path / "a" / "digits_runs.csv"], [tmp_path / "t.csv", tmp_path / "t.csv"],
                    tmp_path / "b")
    assert again == report.aggregate(rows)
    text = (tmp_path / "b" / "digits_results.md").read_text()
    assert text == (tmp_path / "a" / "digits_results.md").read_text()
    assert "d90" in text and "**0.01: 70.0**" in text and "bootstrap" in text


def test_shared_resamples_give_the_intervals_of_fresh_ones():
    """A report computes the resamples once for all its statistics; every interval equals the one
    from drawing them afresh for that statistic (same seed), computed here by hand."""
    rows = _rows(SYNTH)
    stat = report.curve_factor("S small", "acc")
    rng = np.random.default_rng(0)
    by_hand = [stat(report.aggregate(report.resample(rows, rng))) for _ in range(60)]
    got = np.array([v for v in by_hand if v is not None], dtype=float)
    shared = report.resamples(rows, 60)
    iv = report.bootstrap(rows, stat, 60, draws=shared)
    assert (iv.low, iv.high) == tuple(np.percentile(got, [2.5, 97.5]))
    assert iv == report.bootstrap(rows, stat, 60)
    other = report.bootstrap(rows, report.first_reaching_factor("LoRA r=1", "acc"), 60, draws=shared)
    assert other == report.bootstrap(rows, report.first_reaching_factor("LoRA r=1", "acc"), 60)
