"""Writing a LoRA, LoKr or LoHa spec's parameters as LyCORIS tensors (see :mod:`~superlora_tn.interop.lycoris`).

Each target gets the tensors LyCORIS's own module of that layer holds, its dense/low-rank choice
replayed, so LyCORIS's forward is the spec's dW.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..facade import SuperLoRA
from .lycoris_format import pad, pad_core

__all__ = ["WRITERS", "as_torch"]

def as_torch(x: Any) -> Any:
    """A contiguous torch tensor of x (any backend's array), detached."""
    import numpy as np
    import torch

    from ..backends import backend_for

    if isinstance(x, torch.Tensor):
        return x.detach().contiguous()
    return torch.from_numpy(np.ascontiguousarray(backend_for(x).to_numpy(x)))


def _alpha(spec: SuperLoRA, name: str, r: int, like: Any) -> Any:
    """alpha such that LyCORIS's alpha / r is the target's scale (the spec's own alpha when r is its
    rank), a scalar in the weights' dtype as LyCORIS's ``save_weights`` writes it."""
    import torch

    c = spec.config
    if c.alpha is not None and (c.scale or {}).get(name, 1.0) == 1.0 and r == spec.rank_ref:
        value = float(c.alpha)
    else:
        value = spec.target_scale(name) * r
    return torch.tensor(value, dtype=like.dtype if like.is_floating_point() else torch.float32)


def _write_lora(spec: SuperLoRA, g: Any, target: Any, tp: Mapping[str, Any], native: Any = None) -> dict[str, Any]:
    """LoRA/LoCon (A, B from ``native``, ``native.to_lora`` of the spec: any LoRA-shaped factor, cp
    or a Tucker core included); a Tucker conv factor (``fold="shape"``) as LyCORIS's Tucker LoCon:
    1x1 down and up around the lora_mid core."""
    shape = target.shape
    ones = (1,) * (len(shape) - 2)
    if len(g.fold) > 2:
        B, A1 = tp[g.param_name(0, "A0")], tp[g.param_name(0, "A1")]
        down, mid = A1.T.reshape(A1.shape[1], shape[1], *ones), tp[g.param_name(0, "core")]
        out = {"lora_up.weight": B.reshape(shape[0], B.shape[1], *ones), "lora_down.weight": down, "lora_mid.weight": mid}
    else:
        A, B, _ = native[target.name]
        up = B if len(shape) == 2 else B.reshape(shape[0], B.shape[1], *ones)
        out = {"lora_up.weight": up, "lora_down.weight": A if len(shape) == 2 else A.reshape(A.shape[0], *shape[1:])}
    out["alpha"] = _alpha(spec, target.name, B.shape[1], B)
    return out


def _write_loha(spec: SuperLoRA, g: Any, target: Any, tp: Mapping[str, Any], native: Any = None) -> dict[str, Any]:
    out = {}
    R = max(f.ranks[0] for f in g.factors)
    for k, f in enumerate(g.factors):
        A0, A1 = tp[g.param_name(k, "A0")], tp[g.param_name(k, "A1")]
        if f.structure == "tucker":
            out[f"hada_t{k + 1}"] = pad_core(tp[g.param_name(k, "core")], R)
            out[f"hada_w{k + 1}_a"], out[f"hada_w{k + 1}_b"] = pad(A0, R, 1).T, pad(A1, R, 1).T
        else:
            out[f"hada_w{k + 1}_a"], out[f"hada_w{k + 1}_b"] = pad(A0, R, 1), pad(A1, R, 1).T
    out["alpha"] = _alpha(spec, target.name, R, A0)
    return out


def _write_lokr(spec: SuperLoRA, g: Any, target: Any, tp: Mapping[str, Any], native: Any = None) -> dict[str, Any]:
    """LyCORIS's module for this layer: its dense/low-rank choice replayed (``make_module_from_state_dict``)."""
    import torch

    f1, f2 = g.factors
    kernel = tuple(target.shape[2:])
    a, c = f1.shape[:2]
    b, d = f2.shape[0], target.matrix_shape[1] // (c * math.prod(kernel))
    tucker = f2.structure == "tucker"
    R = max((f.ranks[0] for f in (f1, f2) if f.structure != "dense"), default=1)
    # LyCORIS's LokrModule keeps w2 low-rank (or Tucker) only when r < max(b, d) / 2, and w1 low-rank
    # (decompose_both) only when r < max(a, c) / 2; otherwise it holds the full matrix, written here exactly
    w2_low = f2.structure != "dense" and R < max(b, d) / 2
    w1_low = f1.structure != "dense" and R < max(a, c) / 2
    scale = spec.target_scale(target.name)
    out: dict[str, Any] = {}
    if w1_low:
        A0, A1 = tp[g.param_name(0, "A0")], tp[g.param_name(0, "A1")]
        if f1.structure == "tucker":  # w1 = A0 core A1^T: the core joins w1_a
            A0 = A0 @ tp[g.param_name(0, "core")].reshape(f1.ranks[0], f1.ranks[1])
        out["lokr_w1_a"], out["lokr_w1_b"] = pad(A0, R, 1), pad(A1, R, 1).T
    else:
        out["lokr_w1"] = _dense_factor(f1, g, 0, tp).reshape(a, c)
    if w2_low and tucker:
        out["lokr_t2"] = pad_core(tp[g.param_name(1, "core")], R)
        out["lokr_w2_a"], out["lokr_w2_b"] = pad(tp[g.param_name(1, "A0")], R, 1).T, pad(tp[g.param_name(1, "A1")], R, 1).T
    elif w2_low:
        out["lokr_w2_a"], out["lokr_w2_b"] = pad(tp[g.param_name(1, "A0")], R, 1), pad(tp[g.param_name(1, "A1")], R, 1).T
    else:
        w2 = _dense_factor(f2, g, 1, tp).reshape(b, d, *kernel)
        out["lokr_w2"] = w2 if w1_low or scale == 1.0 else w2 * scale  # both full: LyCORIS's scale is 1, ours goes into w2
    if w1_low or w2_low:
        out["alpha"] = _alpha(spec, target.name, R, out.get("lokr_w1_a", out.get("lokr_w2_a")))
    else:  # LyCORIS reads lora_dim 1 and alpha 1 for two full matrices (what its own load-and-save writes)
        out["alpha"] = torch.tensor(1.0, dtype=out["lokr_w1"].dtype)
    return out


def _dense_factor(f: Any, g: Any, k: int, tp: Mapping[str, Any]) -> Any:
    """A factor's full tensor (dense as stored; lora A0 A1^T; tucker core x A0 x A1, identity kernel modes)."""
    import torch

    if f.structure == "dense":
        return tp[g.param_name(k, "dense")]
    if f.structure == "lora":
        return tp[g.param_name(k, "A0")] @ tp[g.param_name(k, "A1")].T
    core = tp[g.param_name(k, "core")]
    return torch.einsum("ij...,pi,rj->pr...", core, tp[g.param_name(k, "A0")], tp[g.param_name(k, "A1")])


#: The writer of each algorithm: (spec, group, target, torch params, native LoRA pairs or None) -> {leaf: tensor}.
WRITERS = {"lora": _write_lora, "lokr": _write_lokr, "loha": _write_loha}
