"""Hypothesis strategies for random valid specs (shapes include 1, primes and odd sizes)."""

from __future__ import annotations

from hypothesis import assume
from hypothesis import strategies as st

import superlora_tn as slt

dims = st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 16])


@st.composite
def target_sets(draw: st.DrawFn, max_targets: int = 3) -> dict[str, tuple[int, ...]]:
    count = draw(st.integers(1, max_targets))
    out = {}
    for i in range(count):
        ndim = draw(st.sampled_from([2, 2, 2, 1, 4]))
        shape = tuple(draw(dims) for _ in range(ndim))
        if ndim == 4:
            shape = (shape[0], shape[1], 1 + shape[2] % 3, 1 + shape[3] % 3)
        out[f"layer{i}.w"] = shape
    return out


@st.composite
def specs(draw: st.DrawFn, allow_projection: bool = True) -> slt.SuperLoRA:
    targets = draw(target_sets())
    names = list(targets)
    grouping = draw(st.sampled_from(["weight", "int", "explicit"]))
    if grouping == "weight":
        groups: object = "weight"
        fold = draw(st.sampled_from(["natural", "balanced", "shape"]))
    elif grouping == "int":
        groups = draw(st.integers(1, 4))
        fold = draw(st.sampled_from(["balanced", "shape"]))
    else:
        cut = draw(st.integers(1, len(names)))
        groups = [names[:cut], names[cut:]] if cut < len(names) else [names]
        fold = draw(st.sampled_from(["balanced", "shape"]))
    projection = None
    if allow_projection and fold != "natural" and draw(st.booleans()):
        kind = draw(st.sampled_from([slt.Fastfood, slt.Gaussian]))
        projection = kind(ratio=draw(st.sampled_from([1.0, 0.5, 0.3, 0.1])))
    order = draw(st.integers(1, 4))
    if fold == "shape":
        total = sum(int(__import__("math").prod(s)) for s in targets.values())
        side = draw(st.integers(1, 4))
        fold = tuple([side] * (order - 1) + [max(1, -(-total // side ** (order - 1)))])
    splits = draw(st.integers(1, 3))
    structure = draw(st.sampled_from(["tucker", "cp", "dense", "lora", "mixed"]))
    if structure == "lora" and order != 2:
        structure = "tucker"
    if structure == "mixed":
        structure = [draw(st.sampled_from(["tucker", "cp", "dense"])) for _ in range(splits)]
    rank = draw(st.one_of(st.integers(1, 4), st.tuples(*[st.integers(1, 4)] * order)))
    if structure in ("cp", "lora") or (isinstance(structure, list) and "cp" in structure):
        rank = draw(st.integers(1, 4))
    try:
        return slt.SuperLoRA(
            targets, groups=groups, fold=fold, order=order, splits=splits, rank=rank, structure=structure,
            projection=projection, shuffle=draw(st.one_of(st.none(), st.integers(0, 99))),
            alpha=draw(st.one_of(st.none(), st.sampled_from([1.0, 3.0, 16.0]))), seed=draw(st.integers(0, 5)),
            exact_splits=draw(st.booleans()),
        )
    except slt.SpecError:
        assume(False)
        raise
