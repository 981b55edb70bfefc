"""The budget planner: everything fits, the order is the stated one, ranks are maximal, counts are exact."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import superlora_tn as slt
from superlora_tn.budget import best_per_variant, fit_budget, settings_grid, variant_of
from superlora_tn.presets import preset_targets

TARGETS = {f"layer{i}.{k}": (48, 32) for i in range(3) for k in ("q", "v")}


def _key(c, budget):
    return (budget - c.params, -c.rank, c.num_groups, c.describe())


@settings(max_examples=8, deadline=None)
@given(budget=st.integers(200, 20000))
def test_all_fit_sorted_and_exact(budget):
    found = fit_budget(TARGETS, budget, top=None, orders=(2, 3), splits=(1, 2), ratios=(None, 0.5))
    assert found, "something always fits a budget of 200 here"
    assert all(c.params <= budget for c in found)
    keys = [_key(c, budget) for c in found]
    assert keys == sorted(keys)
    for c in found[:5]:
        spec = c.spec(TARGETS)
        assert spec.num_params == c.params
        bigger = dict(c.kwargs, rank=c.rank + 1)
        side = max(max(f.shape) for g in spec.groups for f in g.factors)
        assert c.rank == side or slt.SuperLoRA(TARGETS, **bigger).num_params > budget  # the rank is the largest that fits


def test_variants_are_marked():
    found = fit_budget(TARGETS, 5000, top=None)
    best = best_per_variant(found)
    assert {"LoRA", "LoKr", "LoNKr", "LoTR", "LoRTA", "SuperLoRA"} <= set(best)
    lora = best["LoRA"]
    assert lora.kwargs["groups"] == "weight" and lora.kwargs["fold"] == "natural" and lora.kwargs["splits"] == 1
    assert lora.params == 6 * lora.rank * (48 + 32)
    assert variant_of(dict(groups=2, fold="balanced", order=3, splits=1, structure="tucker"), TARGETS) == "LoRTA"
    assert variant_of(dict(groups=2, fold="balanced", order=3, splits=1, structure="tucker", projection=slt.Fastfood(0.5)),
                      TARGETS) == "SuperLoRA"
    # a prime dimension split in two is truncated, not a plain Kronecker product: identify() decides
    primes = {"w": (67, 61)}
    assert variant_of(dict(groups="weight", fold="natural", order=2, splits=2, structure="lora"), primes) == "LoNKr"
    assert variant_of(dict(groups="weight", fold="natural", order=2, splits=2, structure="lora", exact_splits=True), primes) == "LoKr"


@pytest.mark.parametrize("budget", [float("nan"), float("inf"), 0, -5])
def test_bad_budgets_are_refused(budget: float) -> None:
    with pytest.raises(slt.SpecError, match="budget"):
        fit_budget(TARGETS, budget)


def test_grid_and_large_model_stay_symbolic():
    grid = list(settings_grid(TARGETS))
    assert any(g["fold"] == "stack" for g in grid) and any(g.get("projection") for g in grid)
    found = fit_budget(preset_targets("llama-70b"), 1e6, top=10)  # counts for 6e9 entries, nothing allocated
    assert len(found) == 10 and all(c.params <= 1e6 for c in found)


@pytest.mark.parametrize("budget", [0, -5, True, "1e4"])
def test_bad_budget(budget):
    with pytest.raises(slt.SpecError):
        fit_budget(TARGETS, budget)


def test_nothing_fits_is_empty():
    assert fit_budget(TARGETS, 1) == []


def test_candidates_say_how_many_targets_train_factored():
    targets = {f"l{i}.{k}": (64, 64) for i in range(4) for k in ("q", "v")}
    found = fit_budget(targets, 5000, top=None, orders=(2, 3), splits=(1,), ratios=(None,))
    by_kind = {}
    for c in found:
        by_kind.setdefault((str(c.kwargs["groups"]), c.kwargs["fold"]), set()).add(c.factored)
    assert by_kind[("weight", "natural")] == {8}  # LoRA-like: every target factored
    assert by_kind[("1", "balanced")] == {0}  # one group mixing every target: dW is built
    assert all(0 <= c.factored <= 8 for c in found)
