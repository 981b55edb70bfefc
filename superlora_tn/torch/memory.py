"""``inject(memory=...)``: how much of dW_all a training step may hold.

``"fast"`` contracts every shared group once per forward and keeps its dW until the backward
(extra memory about 2x the shared targets' dW: the dW and its gradient). ``"low"`` builds each
target's dW inside its own layer and rebuilds it in the backward (extra memory a few times the
largest target's dW, and one more contraction per target). ``"auto"`` picks fast when its extra
memory fits a quarter of the free memory of the adapter's device; an int is that budget in bytes.

>>> import torch, superlora_tn as slt
>>> spec = slt.SuperLoRA({"a": (64, 64), "b": (64, 64)}, groups=1, fold="balanced", order=3, rank=2)
>>> p = spec.init("torch")
>>> choose_memory_mode(10**9, spec, {"a", "b"}, p), choose_memory_mode(1000, spec, {"a", "b"}, p)
('fast', 'low')
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Set
from typing import Any

import torch

from ..errors import SpecError
from ..facade import SuperLoRA
from ..factored import factored_supported
from ..slices import shares_groups

__all__ = ["MODES", "choose_memory_mode", "fast_mode_bytes", "free_memory", "shared_targets"]

MODES = ("auto", "fast", "low")


def shared_targets(spec: SuperLoRA, names: Iterable[str], factored: bool | str) -> set[str]:
    """The targets that take their dW from the per-forward contraction: those sharing a group,
    except those applied factored or sliced from their own rows (stack folds, LoTR-like)."""
    return {name for name in names
            if shares_groups(spec, name) and not (factored is not False and factored_supported(spec, name))}


def fast_mode_bytes(spec: SuperLoRA, shared: Set[str], itemsize: int) -> int:
    """Extra bytes fast mode holds at its peak: the shared dW and its gradient."""
    return 2 * itemsize * sum(t.size for t in spec.targets if t.name in shared)


def free_memory(device: torch.device) -> int:
    """Free bytes on ``device`` (CUDA: the driver's count; CPU: MemAvailable)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def choose_memory_mode(memory: Any, spec: SuperLoRA, shared: Set[str], params: Mapping[str, torch.Tensor]) -> str:
    """Resolve ``memory`` ("auto", "fast", "low" or a budget in bytes) to "fast" or "low"."""
    if isinstance(memory, str) and memory in ("fast", "low"):
        return memory
    if memory == "auto":
        first = next(iter(params.values()))
        budget = free_memory(first.device) // 4
    elif isinstance(memory, int) and not isinstance(memory, bool) and memory > 0:
        budget = memory
    else:
        raise SpecError("memory", memory, '"auto", "fast", "low" or a memory budget in bytes (a positive int)')
    if not shared:
        return "fast"
    itemsize = next(iter(params.values())).element_size()
    return "fast" if fast_mode_bytes(spec, shared, itemsize) <= budget else "low"
