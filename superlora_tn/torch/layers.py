"""How an adapted layer gets its delta: a forward hook that adds ``delta(x)`` to the base output.

The base layer is left in place (its state_dict keys, class and weights are unchanged); the hook
computes ``y = base(x) + delta(x)`` where delta is

- ``x @ dW^T`` for ``nn.Linear`` and GPT-2 ``Conv1D`` (whose dW is the spec's (out, in) matrix),
- the layer's own convolution (stride, padding, dilation, groups, padding mode) with dW as kernel
  and no bias, for ``nn.Conv1d`` / ``nn.Conv2d``,
- or, for a weight-wise natural-fold target, ``superlora_tn.factored.apply_delta`` (x joins the
  tensor network, dW is never built) when opt_einsum's cost says it is cheaper for the number of
  tokens at hand (or always/never, as ``factored=`` asks).

Materialised dW come from the owning :class:`AdaptedModel`'s per-forward cache, filled by ONE
``spec.contract`` (all groups, batched) the first time a layer needs it in a forward pass.
The adapter runs in its own dtype (float32 by default): x is cast to it and the delta cast back
to the base output's dtype, so a bfloat16/float16 base model keeps its dtype. Under autocast the
tensor network itself (dW, or the factored einsum) runs with autocast off, in the adapter dtype
(torch autocasts matmul but not tensordot, and opt_einsum uses both); the final x @ dW^T or
convolution is autocast as usual.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ..factored import apply_delta, factored_supported, prefer_factored
from .targets import LayerInfo

if TYPE_CHECKING:
    from .model import AdaptedModel

__all__ = ["LayerHook"]


class LayerHook:
    """The forward hook of one adapted layer (holds its owner weakly: no reference cycle)."""

    def __init__(self, owner: AdaptedModel, info: LayerInfo, factored: bool | str) -> None:
        self.owner = weakref.ref(owner)
        self.info = info
        self.factored = factored
        self.can_factor = factored is not False and factored_supported(owner.spec, info.name)
        self._choice: dict[int, bool] = {}

    def use_factored(self, tokens: int) -> bool:
        if not self.can_factor:
            return False
        if self.factored is True:
            return True
        if tokens not in self._choice:
            owner = self.owner()
            self._choice[tokens] = bool(owner is not None and prefer_factored(owner.spec, self.info.name, tokens))
        return self._choice[tokens]

    def __call__(self, module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> Any:
        owner = self.owner()
        if owner is None or owner.merged or not owner.adapter_enabled or not args:
            return None
        x = args[0]
        if not isinstance(x, torch.Tensor) or not isinstance(output, torch.Tensor):
            return None
        compute = owner.adapter_dtype
        xc = x.to(compute)
        kind = self.info.kind
        if kind in ("linear", "gpt2_conv1d"):
            tokens = xc.numel() // max(1, xc.shape[-1])
            if self.use_factored(tokens):
                owner.stats["factored"] += 1
                with torch.autocast(xc.device.type, enabled=False):  # opt_einsum mixes matmul and tensordot
                    delta = apply_delta(owner.spec, owner.adapter, self.info.name, xc)
            else:
                delta = F.linear(xc, owner.delta(self.info.name))
        else:
            delta = module._conv_forward(xc, owner.delta(self.info.name), None)
        return output + delta.to(output.dtype)
