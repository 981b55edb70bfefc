"""Sharded (FSDP2) adapters: full tensors for saving, and which rank writes.

With ``fully_shard``, parameters outside a forward pass are ``DTensor`` shards. Saving gathers
each to its full value (a collective: every rank calls ``save``) and only rank 0 writes.

>>> import torch
>>> full_tensor(torch.ones(2)).tolist(), is_sharded(torch.ones(2))
([1.0, 1.0], False)
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = ["full_tensor", "is_sharded", "writes_files"]


def is_sharded(t: torch.Tensor) -> bool:
    """True for a DTensor (an FSDP2 shard or any distributed tensor)."""
    return hasattr(t, "full_tensor") and hasattr(t, "placements")


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole value of ``t`` (all-gathered from every rank for a DTensor)."""
    return t.full_tensor() if is_sharded(t) else t


def writes_files(tensors: Iterable[torch.Tensor]) -> bool:
    """False on ranks other than 0 when the tensors were sharded (every rank gathered, rank 0 writes)."""
    if not any(is_sharded(t) for t in tensors):
        return True
    import torch.distributed as dist

    return not dist.is_initialized() or dist.get_rank() == 0
