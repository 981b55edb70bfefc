"""Helpers shared by the experiment tests."""

from __future__ import annotations

import dataclasses
from typing import Any


def count_scoring(monkeypatch: Any, module: Any) -> dict[str, int]:
    """Patch ``module.make_task`` so that its task counts the runs scored on the test split
    (``evaluate``) and on the validation split (``validate``); returns the live counts."""
    calls = {"test": 0, "val": 0}
    make = module.make_task

    def counting(quick: bool = False, budget: Any = None) -> Any:
        task = make(quick=quick, budget=budget)
        ev, va = task.evaluate, task.validate

        def evaluate(model: Any, seed: int) -> dict[str, float]:
            calls["test"] += 1
            return ev(model, seed)

        def validate(model: Any, seed: int) -> dict[str, float]:
            calls["val"] += 1
            return va(model, seed)

        return dataclasses.replace(task, evaluate=evaluate, validate=validate)

    monkeypatch.setattr(module, "make_task", counting)
    return calls
