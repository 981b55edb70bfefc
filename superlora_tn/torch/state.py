"""The merge state travels with ``AdaptedModel.state_dict()`` (as ``_extra_state``).

A state dict of a merged model holds base weights W + dW *and* the adapter that made dW.
Loaded into an unmerged model (whose layers add dW again) it would count dW twice, silently.
``AdaptedModel.get_extra_state`` records ``merged`` in the adapter config (``torch/hf.py``), and
``set_extra_state`` calls ``check_merge_state``, which refuses a state dict whose merge state
differs from the model's before any tensor is copied (torch loads a module's own extra state
before its children's parameters).

``apply_and_sync_dtype`` keeps ``adapter_dtype`` equal to the adapter parameters' dtype after
``adapted.to(dtype)`` and friends.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import SpecError

__all__ = ["apply_and_sync_dtype", "check_merge_state"]


def check_merge_state(adapted: Any, merged: bool) -> None:
    """Refuse a state dict saved in the other merge state (it would double-count or drop dW)."""
    if bool(merged) != adapted.merged:
        saved, here = ("merged", "unmerged") if merged else ("unmerged", "merged")
        fix = "merge()" if merged else "unmerge()"
        raise SpecError("state_dict", f"a {saved} model's state dict",
                        f"one saved in this model's merge state ({here}): call {fix} before loading it, "
                        "or its dW would be counted twice or not at all")


def apply_and_sync_dtype(self: Any, fn: Any, recurse: bool = True) -> Any:
    """``nn.Module._apply`` (behind ``.to``, ``.double()``, ``.half()``...), then the adapter dtype
    follows the adapter parameters: ``adapted.to(torch.float64)`` converts the adapter, so the
    layers must compute in float64 too (they cast x to ``adapter_dtype``)."""
    result = torch.nn.Module._apply(self, fn, recurse)
    adapter = getattr(self, "adapter", None)
    first = next(iter(adapter.values()), None) if adapter is not None else None
    if first is not None:
        self.adapter_dtype = first.dtype
    return result
