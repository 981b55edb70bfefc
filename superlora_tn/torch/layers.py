"""How an adapted layer runs: its ``forward`` is replaced (on the instance) by ``AdaptedForward``.

The module keeps its class, state_dict keys and weights; ``unload()`` restores the original
forward. Per call, for ``y = layer(x)``:

- **factored** (weight-wise natural-fold targets, when opt_einsum's cost says so or
  ``factored=True``): ``base(x) + apply_delta(x)``, x joins the tensor network, dW is never built;
- **folded** (a materialised dW on Linear / GPT-2 ``Conv1D`` whose weight has the adapter's dtype,
  autocast off): ONE GEMM with ``W + dW`` through ``FoldedLinear``, which saves x and the inputs it
  was given, never W + dW (rebuilt in the backward), so a step costs what training W itself costs;
  convolutions run their own convolution with ``W + dW`` as kernel;
- **added** (half-precision weights or autocast, where W + dW would round dW away):
  ``base(x) + x @ dW^T`` in the adapter dtype, cast back to the output's dtype.

dW comes from the owner (:class:`~superlora_tn.torch.model.AdaptedModel`): shared groups from its
per-forward contraction, weight-wise groups and the low-memory mode per layer, just in time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ..factored import apply_delta, factored_supported, prefer_factored
from .targets import LayerInfo

if TYPE_CHECKING:
    from .model import AdaptedModel

__all__ = ["AdaptedForward", "FoldedLinear", "folded_linear"]


class FoldedLinear(torch.autograd.Function):
    """``y = x @ (W + dW)^T + b`` in one GEMM; saves x, W and dW (references), never W + dW.

    ``transposed``: W is stored (in, out) as GPT-2's ``Conv1D`` does; dW is always (out, in).
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, delta: torch.Tensor, bias: torch.Tensor | None,
                transposed: bool) -> torch.Tensor:
        w = _effective_weight(weight, delta, transposed)
        ctx.save_for_backward(x, weight, delta)
        ctx.transposed = transposed
        ctx.has_bias = bias is not None
        return F.linear(x, w, bias)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        x, weight, delta = ctx.saved_tensors
        need_x, need_w, need_d, need_b, _ = ctx.needs_input_grad
        gx = gw = gd = gb = None
        if need_x:
            gx = grad @ _effective_weight(weight, delta, ctx.transposed)
        if need_w or need_d:
            g2 = grad.reshape(-1, grad.shape[-1])
            gd = g2.t() @ x.reshape(-1, x.shape[-1])
            if need_w:
                gw = gd.t() if ctx.transposed else gd
            if not need_d:
                gd = None
        if need_b and ctx.has_bias:
            gb = grad.reshape(-1, grad.shape[-1]).sum(0)
        return gx, gw, gd, gb, None


def _effective_weight(weight: torch.Tensor, delta: torch.Tensor, transposed: bool) -> torch.Tensor:
    """W + dW in (out, in) layout. A stored-(in, out) W is transposed by a blocked copy first: an
    add that reads one operand transposed runs 5x slower than the copy and a contiguous add."""
    if not transposed:
        return weight + delta
    w = weight.t().contiguous()
    return w.add_(delta)


def folded_linear(x: torch.Tensor, weight: torch.Tensor, delta: torch.Tensor, bias: torch.Tensor | None,
                  transposed: bool = False) -> torch.Tensor:
    """``x @ (W + dW)^T + b`` (W (in, out) when ``transposed``), one GEMM, W + dW never saved."""
    return FoldedLinear.apply(x, weight, delta, bias, transposed)


class AdaptedForward:
    """The forward of one adapted layer (set on the instance; the original is ``base``)."""

    def __init__(self, owner: AdaptedModel, module: torch.nn.Module, info: LayerInfo, factored: bool | str) -> None:
        self.owner = owner  # a strong reference: deep copies and pickles carry the owner along
        self.module = module
        self.info = info
        self.factored = factored
        self.previous = module.__dict__.get("forward")  # an instance forward set by someone else
        self.can_factor = factored is not False and factored_supported(owner.spec, info.name)
        self._choice: dict[int, bool] = {}

    def base(self, *args: Any, **kwargs: Any) -> Any:
        if self.previous is not None:
            return self.previous(*args, **kwargs)
        return type(self.module).forward(self.module, *args, **kwargs)

    def use_factored(self, tokens: int) -> bool:
        if not self.can_factor:
            return False
        if self.factored is True:
            return True
        if tokens not in self._choice:
            self._choice[tokens] = bool(prefer_factored(self.owner.spec, self.info.name, tokens))
        return self._choice[tokens]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        owner = self.owner
        if (owner.merged or not owner.adapter_enabled or len(args) != 1 or kwargs or not isinstance(args[0], torch.Tensor)
                or self.info.name not in owner.layers):  # a layer only another (inactive) adapter targets
            return self.base(*args, **kwargs)
        x = args[0]
        module, name, kind = self.module, self.info.name, self.info.kind
        compute = owner.adapter_dtype
        if kind in ("linear", "gpt2_conv1d"):
            tokens = x.numel() // max(1, x.shape[-1])
            if self.use_factored(tokens):
                owner.stats["factored"] += 1
                out = self.base(x)
                return out + apply_delta(owner.spec, owner.adapter, name, owner.adapter_input(module, x).to(compute)).to(out.dtype)
            if self._foldable(x):
                owner.stats["folded"] += 1
                return owner.run_target(name, lambda d, x: folded_linear(x, module.weight, d, module.bias, kind == "gpt2_conv1d"), x)
            out = self.base(x)
            xd = owner.adapter_input(module, x)  # dropout(x) while training (PEFT's lora_dropout)
            return out + owner.run_target(name, lambda d, x: F.linear(x.to(compute), d), xd).to(out.dtype)
        if self._foldable(x):
            owner.stats["folded"] += 1
            return owner.run_target(name, lambda d, x: module._conv_forward(x, module.weight + d, module.bias), x)
        out = self.base(x)
        xd = owner.adapter_input(module, x)
        return out + owner.run_target(name, lambda d, x: module._conv_forward(x.to(compute), d, None), xd).to(out.dtype)

    def _foldable(self, x: torch.Tensor) -> bool:
        w = self.module.weight
        dtype = self.owner.adapter_dtype
        return (w.dtype == dtype and x.dtype == dtype and not torch.is_autocast_enabled(x.device.type)
                and not self.owner.uses_dropout(self.module))  # dropout(x) @ dW^T needs the added path
