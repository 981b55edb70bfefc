"""Shared pieces of the experiment pipelines: the task protocol, a training loop, one run."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..console import progress_steps
from ._adapter import AdaptedModel
from .methods import Method, TargetInfo, build_generator, implementation


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator for data order."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def batches(n: int, batch_size: int, gen: torch.Generator) -> Iterator[Tensor]:
    """Endless index batches of a fixed size, reshuffled every epoch (the last partial batch of
    an epoch is dropped; a dataset smaller than a batch gives the whole dataset)."""
    size = min(n, batch_size)
    while True:
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n - size + 1, size):
            yield perm[start : start + size]


#: whether pretraining shows a progress bar (``run(show_progress=...)`` sets it)
SHOW_PROGRESS = True


def train_loop(
    model: AdaptedModel,
    loss_fn: Callable[[Any], Tensor],
    batch_iter: Iterable[Any],
    steps: int,
    lr: float,
    weight_decay: float = 0.0,
    label: str | None = None,
    own_lr: Mapping[str, float] | None = None,
) -> float:
    """AdamW with a cosine learning-rate schedule over ``steps`` batches; returns the last loss.

    ``batch_iter`` yields whatever ``loss_fn`` takes (index tensors, for the simple tasks).
    ``own_lr`` gives some parameters (by ``model.named_parameters()`` name) a rate of their own
    instead of ``lr`` (a new head kept at its tuned rate while the adapter's rate is searched);
    the schedule scales every rate alike.
    With a ``label`` (pretraining), a progress bar with an ETA is shown on stderr while
    :data:`SHOW_PROGRESS` is true.
    """
    own_lr = dict(own_lr or {})
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if unknown := set(own_lr) - {n for n, _ in named}:
        raise ValueError(f"own_lr names no trainable parameter: {sorted(unknown)}")
    if not named or steps == 0:
        return float("nan")
    groups = [{"params": [p for n, p in named if n not in own_lr], "lr": lr}]
    groups += [{"params": [p], "lr": own_lr[n]} for n, p in named if n in own_lr]
    opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    model.train()
    loss = torch.tensor(float("nan"))
    with progress_steps(label or "", steps, enabled=label is not None and SHOW_PROGRESS) as advance:
        for step, batch in enumerate(batch_iter):
            if step == steps:
                break
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(batch)
            loss.backward()
            opt.step()
            sched.step()
            advance()
    model.eval()
    return float(loss.detach())


@dataclass
class Row:
    """The result of one method on one seed."""

    task: str
    method: str
    family: str
    impl: str
    adapter_params: int
    head_params: int
    seed: int
    metrics: dict[str, float]
    wall_s: float
    lr: float | None = None
    split: str = "test"


@dataclass
class Task:
    """What the runner needs from an experiment.

    Attributes:
        name: task name (``digits``, ``diffusion``, ``minilm``).
        primary: the metric plotted and used for the efficiency factor.
        higher_is_better: direction of every metric, by name.
        info: the adapted targets.
        build: (method, generator or None, seed) -> AdaptedModel with the right trainables.
        fit: (model, method, seed) -> None, trains in place.
        evaluate: (model, seed) -> metrics on the test split.
        validate: (model, seed) -> metrics on the validation split held out of the training data
            (None: the task has none and cannot be tuned by the protocol).
        default_lr: the learning rate of a method kind when the method sets none.
        tune_metric: the validation metric the protocol selects on (None: ``primary``); its
            direction is in ``higher_is_better``.
        subspace_dims: dimensions of the random-subspace control added to a full default run.
        head_names: parameter names counted as head parameters.
        notes: free text for the report (setup, budgets, measured pretraining numbers).
        skip_kinds: method kinds that do not apply (``head`` where there is no head).
        skip_methods: method names left out of this task (time budget).
        keep: called after every run with the trained model; returns a picklable artifact
            (e.g. generated samples) or None. Runs in the worker process that made the run.
        finish: called once with the output folder and the artifacts, keyed by
            ``(method name, seed)``; returns extra Markdown for the report.
    """

    name: str
    primary: str
    higher_is_better: dict[str, bool]
    info: TargetInfo
    build: Callable[[Method, object, int], AdaptedModel]
    fit: Callable[[AdaptedModel, Method, int], None]
    evaluate: Callable[[AdaptedModel, int], dict[str, float]]
    head_names: Sequence[str] = ()
    notes: dict[str, object] = field(default_factory=dict)
    skip_kinds: tuple[str, ...] = ()
    skip_methods: tuple[str, ...] = ()
    keep: Callable[[Method, int, AdaptedModel], Any] | None = None
    finish: Callable[[Path, dict[tuple[str, int], Any]], str] | None = None
    validate: Callable[[AdaptedModel, int], dict[str, float]] | None = None
    default_lr: dict[str, float] = field(default_factory=dict)
    tune_metric: str | None = None
    subspace_dims: tuple[int, ...] = ()

    @property
    def selection_metric(self) -> str:
        """The metric the tuning protocol selects a rate by (on the validation split)."""
        return self.tune_metric or self.primary

    def lr(self, method: Method) -> float:
        """The learning rate a run of ``method`` uses: its own, else the kind's default."""
        if method.lr is not None:
            return float(method.lr)
        kind = "spec" if method.kind == "subspace" and "subspace" not in self.default_lr else method.kind
        return float(self.default_lr[kind])


SPLITS = ("test", "val")


def _used_lr(task: Task, method: Method) -> float | None:
    try:
        return task.lr(method)
    except KeyError:  # a task that sets its rates itself
        return None


def run_method(task: Task, method: Method, seed: int, split: str = "test") -> tuple[Row, AdaptedModel]:
    """Build, train and evaluate one method on one seed, scored on ``split`` (``"test"`` or
    ``"val"``, the validation split held out of the training data)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if split == "val" and task.validate is None:
        raise ValueError(f"task {task.name!r} has no validation split")
    start = time.perf_counter()
    seed_everything(seed)
    generator = build_generator(method, task.info, seed)
    model = task.build(method, generator, seed)
    if method.kind != "zero-shot":
        task.fit(model, method, seed)
    metrics = (task.validate if split == "val" else task.evaluate)(model, seed)  # type: ignore[misc]
    wall = time.perf_counter() - start
    trained = method.kind != "zero-shot"
    head = model.copy_params(list(task.head_names)) if trained else 0
    adapter = model.adapter_params() + model.copy_params() - head if trained else 0
    row = Row(
        task.name, method.name, method.family, implementation(method),
        adapter, head, seed, metrics, wall,
        _used_lr(task, method) if trained else None, split,
    )
    return row, model
