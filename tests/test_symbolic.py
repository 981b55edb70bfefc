"""Planning is symbolic: a 70B-parameter target set is described and summarised without arrays."""

from __future__ import annotations

import time
import tracemalloc

import superlora_tn as slt

SHAPES_70B = {"q": (8192, 8192), "k": (1024, 8192), "v": (1024, 8192), "o": (8192, 8192),
              "gate": (28672, 8192), "up": (28672, 8192), "down": (8192, 28672)}
TARGETS_70B = {f"layers.{i}.{n}": s for i in range(80) for n, s in SHAPES_70B.items()}


def test_70b_planning_allocates_no_weight_sized_array() -> None:
    tracemalloc.start()
    start = time.perf_counter()
    specs = [
        slt.SuperLoRA(TARGETS_70B, rank=8),
        slt.SuperLoRA(TARGETS_70B, groups=1, fold="balanced", order=3, rank=4, projection=slt.Fastfood(0.1), shuffle=7),
        slt.SuperLoRA(TARGETS_70B, splits=2, structure=["dense", "lora"], rank=8),
        slt.SuperLoRA(TARGETS_70B, groups=80, fold="balanced", order=4, rank=8),
    ]
    texts = [s.summary() for s in specs]
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert specs[0].num_entries == 68_451_041_280
    assert specs[0].num_params == sum(o + i for o, i in SHAPES_70B.values()) * 8 * 80
    assert all("plan:" in t for t in texts)
    assert peak < 50 * 2**20, f"peak {peak / 2**20:.1f} MiB"  # the smallest weight alone is 32 MiB in fp32
    assert elapsed < 5.0  # generous for a loaded 2-core CI machine; docs/performance.md has the real number


def test_identical_groups_share_one_batched_contraction() -> None:
    spec = slt.SuperLoRA(TARGETS_70B, rank=8)
    batches = spec.plan().batches
    assert len(batches) == 4 and sum(len(b.groups) for b in batches) == 560
    assert all(b.equation.startswith("z") for b in batches)
