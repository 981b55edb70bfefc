"""PEFT LoKr <-> SuperLoRA for nn.Linear, nn.Conv1d and nn.Conv2d layers (``use_effective_conv2d`` too).

PEFT's LoKr layer of a weight (out, in, *kernel) splits out = a * b and in = c * d with
``factorization(dim, decompose_factor)`` (:func:`~superlora_tn.factorize.peft_factorization`) and
holds w1 (a, c), full or (``decompose_both`` and r < max(a, c) / 2) ``w1_a (a, r) @ w1_b (r, c)``, and
w2, one of

- ``lokr_w2`` (b, d, *kernel), full, when r >= max(b, d) / 2;
- ``lokr_w2_a (b, r) @ lokr_w2_b (r, d * prod(kernel))``, the kernel flattened with the in-channels;
- with ``use_effective_conv2d`` (kernel not all ones): ``lokr_t2 (r, r, *kernel)`` (Conv1d:
  (r, r, k, 1)) times ``lokr_w2_a (r, b)`` on mode 0 and ``lokr_w2_b (r, d)`` on mode 1.

dW = (alpha / r) torch.kron(w1, w2) reshaped to the weight. In this library's terms:

- Flattened w2 (and every Linear): the natural fold (out, in * k) split as [(a, b), (c, d * k)]
  (``factorization="peft-conv"``; ``"peft"`` with ``exact_splits`` for Linear-only models), w1 and
  w2 each ``"dense"`` or ``"lora"``.
- Effective conv: the weight's own shape folded (``fold="shape"``), split as [(a, b), (c, d), (1, kh),
  (1, kw)] (``factorization="peft-conv"``), w2 ``"tucker"`` with identity kernel modes (its core is
  t2, A0 = w2_a^T, A1 = w2_b^T), w1 ``"dense"`` (a, c, 1, 1) or ``"tucker"`` with a unit core. PEFT
  turns the effective form off on 1x1 convs: their w2_a @ w2_b is the Tucker factor with the
  identity core, so they join the same spec.

Not expressible, refused naming why: a Conv1d whose w2 PEFT holds full (``torch.kron`` of the 2-D
w1 and the 3-D w2 prepends a mode to w1, so dW is not a Kronecker product over the kernel's modes).
A model whose layers mix effective-conv and other LoKr layers is read on the natural fold: each
t2 layer's w2 becomes its exact rank-r pair (``mixed="error"`` refuses instead).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ..errors import SpecError
from ..facade import SuperLoRA
from ..factorize import peft_factorization
from .lycoris_format import pad, pad_core

__all__ = ["lokr_spec", "pattern", "scale_args", "write_lokr"]

SCRAMBLED = ("PEFT's Conv1d LoKr with a full lokr_w2 (r >= max(b, d) / 2) computes torch.kron of the 2-D w1 and the 3-D "
             "w2, which prepends a mode to w1: its dW is not a Kronecker product over the kernel's (out, in, k) modes, "
             "so no spec expresses it")


def pattern(patterns: Mapping[str, Any] | None, module: str, default: Any) -> Any:
    """PEFT's ``get_pattern_key`` rule: a pattern matches the module name or a dotted suffix of it."""
    for key, value in (patterns or {}).items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def scale_args(scales: dict[str, float], uniform_alpha: float | None, rank_ref: int) -> dict[str, Any]:
    """alpha when every layer has PEFT's alpha / r with r = the spec's rank; else per-target scales."""
    if uniform_alpha is not None and all(s == uniform_alpha / rank_ref for s in scales.values()):
        return {"alpha": uniform_alpha}
    return {"alpha": None, "scale": scales}


# ====================================================================== reading
def check_lokr_layer(name: str, tensors: Mapping[str, Any]) -> None:
    """Every needed part present, 2-D factors (w2 up to 4-D, t2 4-D), and factors that multiply."""
    t = {k.removeprefix("lokr_"): v for k, v in tensors.items() if k != "__shape__"}
    dims = {"w1": (2,), "w1_a": (2,), "w1_b": (2,), "w2": (2, 3, 4), "w2_a": (2,), "w2_b": (2,), "t2": (4,)}
    for key, value in t.items():
        if getattr(value, "ndim", None) not in dims.get(key, ()):
            raise SpecError(f"layer {name!r}", f"{key} of shape {tuple(getattr(value, 'shape', ()))}",
                            "2-D lokr_w1/_a/_b and lokr_w2_a/_b, a 2- to 4-D lokr_w2, a 4-D lokr_t2")
    for k in ("1", "2"):
        if f"w{k}" in t:
            continue
        a, b = t.get(f"w{k}_a"), t.get(f"w{k}_b")
        if a is None or b is None:
            raise SpecError(f"layer {name!r}", sorted(t), f"lokr_w{k}, or both lokr_w{k}_a and lokr_w{k}_b")
        if k == "2" and "t2" in t:
            if (t["t2"].shape[0], t["t2"].shape[1]) != (a.shape[0], b.shape[0]):
                raise SpecError(f"layer {name!r}", f"lokr_t2 {tuple(t['t2'].shape)}, lokr_w2_a {tuple(a.shape)}, "
                                f"lokr_w2_b {tuple(b.shape)}", "t2 (r, r, k...), w2_a (r, b), w2_b (r, d) with one r")
        elif a.shape[1] != b.shape[0]:
            raise SpecError(f"layer {name!r}", f"lokr_w{k}_a {tuple(a.shape)}, lokr_w{k}_b {tuple(b.shape)}",
                            "w_a (n, r) and w_b (r, m) with one r (these do not multiply)")


def _parts(t: Mapping[str, Any]) -> tuple[Any, tuple]:
    """w1 (a tensor or a (w_a, w_b) pair) and w2 as ("dense", w2) / ("pair", w_a, w_b) / ("tucker", t2, w_a, w_b)."""
    t = {k.removeprefix("lokr_"): v for k, v in t.items() if k != "__shape__"}
    w1 = t["w1"] if "w1" in t else (t["w1_a"], t["w1_b"])
    if "t2" in t:
        return w1, ("tucker", t["t2"], t["w2_a"], t["w2_b"])
    if "w2" in t:
        return w1, ("dense", t["w2"])
    return w1, ("pair", t["w2_a"], t["w2_b"])


def _geometry(name: str, w1: Any, w2: tuple, shape: tuple[int, ...] | None, factor: int) -> tuple[int, ...]:
    """The weight's shape (given, or read off the tensors), checked against PEFT's factorization."""
    a, c = (w1[0].shape[0], w1[1].shape[1]) if isinstance(w1, tuple) else tuple(w1.shape)
    if w2[0] == "dense":
        b, d, stored = w2[1].shape[0], w2[1].shape[1], tuple(w2[1].shape[2:])
    elif w2[0] == "tucker":
        b, d, stored = w2[2].shape[1], w2[3].shape[1], tuple(w2[1].shape[2:])
    else:
        b, d, stored = w2[1].shape[0], None, None
    if shape is None:  # a file read without its model: the tensors' own shapes
        if w2[0] == "pair":
            shape = (a * b, c * w2[2].shape[1])
        else:
            shape = (a * b, c * d, *stored)
    shape = tuple(int(n) for n in shape)
    kernel = shape[2:]
    if len(shape) == 3 and w2[0] == "dense" and len(stored) == 1:
        raise SpecError(f"layer {name!r}", f"Conv1d with a full lokr_w2 {tuple(w2[1].shape)}", f"a low-rank w2 ({SCRAMBLED})")
    if w2[0] == "tucker" and stored not in (kernel, (*kernel, 1)):
        raise SpecError(f"layer {name!r}", f"lokr_t2 {tuple(w2[1].shape)}", f"a core (r, r, *kernel) for the weight {shape}")
    if w2[0] == "dense" and stored != kernel:
        raise SpecError(f"layer {name!r}", f"lokr_w2 {tuple(w2[1].shape)}", f"(b, d, *kernel) for the weight {shape}")
    if d is None:
        d = shape[1] // c if c and shape[1] % c == 0 else -1
        if w2[2].shape[1] != d * math.prod(kernel):
            raise SpecError(f"layer {name!r}", f"lokr_w2_b {tuple(w2[2].shape)}", f"(r, d * prod(kernel)) for the weight {shape}")
    out_split, in_split = peft_factorization(shape[0], factor), peft_factorization(shape[1], factor)
    if (a, b) != out_split or (c, d) != in_split:
        raise SpecError("decompose_factor", factor, f"the factor that produced layer {name!r} (weight {shape}): its w1 is {(a, c)}, "
                        f"w2 {(b, d)}, but factorization gives w1 {(out_split[0], in_split[0])}, w2 {(out_split[1], in_split[1])} "
                        "(a convolution read from a file without its model: use load_peft(model, ...), which knows the kernel)")
    return shape


def _as_pair(w2: tuple) -> tuple:
    """A t2 layer's w2 as its exact rank-r pair: w2_a^T (b, r) and t2 x_1 w2_b flattened (r, d * k)."""
    import torch

    _, t2, wa, wb = w2
    m = torch.einsum("ij...,jq->iq...", t2, wb)
    return "pair", wa.T, m.reshape(m.shape[0], -1)


def _rank(parts: tuple, cfg: Mapping[str, Any], name: str) -> int:
    """PEFT's r of a layer: a low-rank factor's width, else the config's r / rank_pattern."""
    w1, w2 = parts
    if isinstance(w1, tuple):
        return int(w1[0].shape[1])
    if w2[0] == "pair":
        return int(w2[1].shape[1])
    if w2[0] == "tucker":
        return int(w2[1].shape[0])
    return int(pattern(cfg.get("rank_pattern"), name, cfg.get("r", 8)))


def lokr_spec(layers: Mapping[str, Mapping[str, Any]], scaling: Mapping[str, float] | None, cfg: Mapping[str, Any],
              cast: Any, seed: int, convention: str, mixed: str) -> tuple[SuperLoRA, dict[str, Any]]:
    """The spec and parameters of PEFT LoKr layers (name -> tensors, ``__shape__`` the weight's when known)."""
    factor = int(cfg.get("decompose_factor", -1))
    names = list(layers)
    parts = {n: _parts(layers[n]) for n in names}
    shapes = {n: _geometry(n, *parts[n], layers[n].get("__shape__"), factor) for n in names}
    ranks = {n: _rank(parts[n], cfg, n) for n in names}
    both_dense = {n: not isinstance(parts[n][0], tuple) and parts[n][1][0] == "dense" for n in names}
    scales, alphas = {}, {}
    for n in names:
        if scaling is not None:
            s = scaling[n]
        else:
            alphas[n] = pattern(cfg.get("alpha_pattern"), n, cfg.get("alpha", 8))
            s = alphas[n] / ranks[n]
        scales[n] = 1.0 if (convention == "lycoris" and both_dense[n]) else s
    conv = any(len(s) > 2 for s in shapes.values())
    tucker = [n for n in names if parts[n][1][0] == "tucker"]
    unit = {n: all(k == 1 for k in shapes[n][2:]) for n in names}
    effective = bool(tucker) and len({len(s) for s in shapes.values()}) == 1 and conv and all(
        parts[n][1][0] == "tucker" or (parts[n][1][0] == "pair" and unit[n]) for n in names)
    if tucker and not effective:
        if mixed == "error":
            raise SpecError("mixed", mixed, f'"dense": {len(tucker)} of {len(names)} LoKr layers hold an effective-conv core '
                            "(lokr_t2), the others not (or they differ in order): read on the (out, in*k) fold, each t2 "
                            "layer's w2 as its exact rank-r pair")
        parts = {n: (p[0], _as_pair(p[1]) if p[1][0] == "tucker" else p[1]) for n, p in parts.items()}
    w1_low = _factor_form(parts, 0, mixed)
    uniform = None
    if scaling is None and convention == "peft" and len(set(alphas.values())) == 1 and len(set(ranks.values())) == 1:
        uniform = float(next(iter(alphas.values())))
    targets = [(n, shapes[n]) for n in names]
    if effective:
        return _effective_spec(targets, parts, w1_low, ranks, scales, uniform, factor, cast, seed)
    w2_low = _factor_form(parts, 1, mixed)
    for n in names:  # a factor held dense everywhere: w_a @ w_b where a layer has a pair
        w1, w2 = parts[n]
        if not w1_low and isinstance(w1, tuple):
            w1 = w1[0] @ w1[1]
        if not w2_low and w2[0] == "pair":
            w2 = ("dense", w2[1] @ w2[2])
        parts[n] = (w1, w2)
    structure = ["lora" if w1_low else "dense", "lora" if w2_low else "dense"]
    r_w = [max(p[0][0].shape[1] for p in parts.values()) if w1_low else 1,
           max(p[1][1].shape[1] for p in parts.values()) if w2_low else 1]
    rank_ref = max((r for r, s in zip(r_w, structure) if s == "lora"), default=1)
    if uniform is not None and next(iter(ranks.values())) != rank_ref:
        uniform = None
    rank = [r_w[0] if w1_low else r_w[1], r_w[1] if w2_low else r_w[0]]
    extra = {"factorization": "peft-conv"} if conv else {}
    spec = SuperLoRA(targets, splits=2, exact_splits=True, split_factor=factor, structure=structure, rank=rank, seed=seed,
                     **extra, **scale_args(scales, uniform, rank_ref))
    params = {}
    for g, n in zip(spec.groups, names):
        w1, w2 = parts[n]
        if w1_low:
            params[g.param_name(0, "A0")], params[g.param_name(0, "A1")] = pad(cast(w1[0]), r_w[0], 1), pad(cast(w1[1]).T, r_w[0], 1)
        else:
            params[g.param_name(0, "dense")] = cast(w1).contiguous()
        if w2_low:
            params[g.param_name(1, "A0")], params[g.param_name(1, "A1")] = pad(cast(w2[1]), r_w[1], 1), pad(cast(w2[2]).T, r_w[1], 1)
        else:
            params[g.param_name(1, "dense")] = cast(w2[1]).reshape(g.factors[1].shape).contiguous()
    return spec, params


def _factor_form(parts: Mapping[str, tuple], k: int, mixed: str) -> bool:
    """True when factor k is low-rank on every layer; a mix is held dense (or refused with mixed="error")."""
    low = {isinstance(p[0], tuple) if k == 0 else p[1][0] != "dense" for p in parts.values()}
    if len(low) == 2 and mixed == "error":
        raise SpecError("mixed", mixed, f'"dense": LoKr factor w{k + 1} is low-rank on some layers and dense on others')
    return low == {True}


def _effective_spec(targets: list, parts: Mapping[str, tuple], w1_low: bool, ranks: Mapping[str, int], scales: dict[str, float],
                    uniform: float | None, factor: int, cast: Any, seed: int) -> tuple[SuperLoRA, dict[str, Any]]:
    """use_effective_conv2d: the kernel's own fold, w2 a Tucker factor with identity kernel modes."""
    import torch

    R = max(ranks.values())
    order = len(targets[0][1])
    if uniform is not None and next(iter(ranks.values())) != R:
        uniform = None
    spec = SuperLoRA(targets, splits=2, factorization="peft-conv", split_factor=factor, fold="shape", rank=R,
                     structure=["tucker" if w1_low else "dense", "tucker"], identity_modes=tuple(range(2, order)), seed=seed,
                     **scale_args(scales, uniform, R))
    params = {}
    for g, (n, shape) in zip(spec.groups, targets):
        w1, w2 = parts[n]
        if w1_low:
            a0 = cast(w1[0])
            params[g.param_name(0, "core")] = torch.eye(R, dtype=a0.dtype, device=a0.device).reshape(R, R, *[1] * (order - 2))
            params[g.param_name(0, "A0")], params[g.param_name(0, "A1")] = pad(a0, R, 1), pad(cast(w1[1]).T, R, 1)
        else:
            w = w1 if not isinstance(w1, tuple) else w1[0] @ w1[1]
            params[g.param_name(0, "dense")] = cast(w).reshape(g.factors[0].shape).contiguous()
        if w2[0] == "tucker":
            _, t2, wa, wb = w2
            params[g.param_name(1, "core")] = pad_core(cast(t2).reshape(t2.shape[0], t2.shape[1], *shape[2:]), R)
            params[g.param_name(1, "A0")], params[g.param_name(1, "A1")] = pad(cast(wa).T, R, 1), pad(cast(wb).T, R, 1)
        else:  # a 1x1 conv (PEFT turns the effective form off there): w2_a @ I @ w2_b
            wa = cast(w2[1])
            params[g.param_name(1, "core")] = torch.eye(R, dtype=wa.dtype, device=wa.device).reshape(R, R, *[1] * (order - 2))
            params[g.param_name(1, "A0")], params[g.param_name(1, "A1")] = pad(wa, R, 1), pad(cast(w2[2]).T, R, 1)
    return spec, params


# ====================================================================== writing
def _full(f: Any, g: Any, k: int, tp: Mapping[str, Any]) -> Any:
    """Factor k's full tensor in its fold shape (dense; lora A0 A1^T; tucker core x A0 x A1)."""
    import torch

    if f.structure == "dense":
        return tp[g.param_name(k, "dense")]
    A0, A1 = tp[g.param_name(k, "A0")], tp[g.param_name(k, "A1")]
    if f.structure == "lora":
        return A0 @ A1.T
    return torch.einsum("ij...,pi,rj->pr...", tp[g.param_name(k, "core")], A0, A1)


def _pair(f: Any, g: Any, k: int, tp: Mapping[str, Any]) -> tuple[Any, Any]:
    """Low-rank factor k as (w_a (n, R), w_b^T (m, R)); a Tucker one with unit other modes takes its core into w_a."""
    A0, A1 = tp[g.param_name(k, "A0")], tp[g.param_name(k, "A1")]
    if f.structure == "tucker":
        A0 = A0 @ tp[g.param_name(k, "core")].reshape(f.ranks[0], f.ranks[1])
    return A0, A1


def write_lokr(spec: SuperLoRA, tp: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, int], dict[str, Any]]:
    """PEFT's tensors of a LoKr spec (Linear or conv targets), each layer's r, and the config's LoKr fields.

    Each layer gets what PEFT's ``update_layer`` creates for its r: full factors where PEFT holds
    them full (the exact product is written), a pair or a t2 core otherwise.
    """
    factors = spec.groups[0].factors
    effective = factors[1].structure == "tucker"
    if any(f.structure not in ("lora", "dense", "tucker") for f in factors) or effective != (len(spec.groups[0].fold) > 2):
        raise SpecError("structure", [f.structure for f in factors], "dense or lora LoKr factors, or a Tucker w2 on a kernel's "
                        "own fold (use_effective_conv2d) for PEFT")
    factor = int(spec.config.split_factor)
    state: dict[str, Any] = {}
    ranks: dict[str, int] = {}
    for g, t in zip(spec.groups, spec.targets):
        f1, f2 = g.factors
        shape, kernel = t.shape, tuple(t.shape[2:])
        a, c = f1.shape[:2]
        b, d = f2.shape[0], shape[1] // c
        if ((a, b), (c, d)) != (peft_factorization(shape[0], factor), peft_factorization(shape[1], factor)):
            raise SpecError("factorization", spec.config.factorization, f"splits PEFT's factorization(dim, {factor}) gives "
                            f"(target {t.name!r}: w1 {(a, c)}, w2 {(b, d)}; PEFT's w1 is "
                            f"{(peft_factorization(shape[0], factor)[0], peft_factorization(shape[1], factor)[0])})")
        r1 = f1.ranks[0] if f1.structure != "dense" else 0
        r2 = f2.ranks[0] if f2.structure != "dense" else 0
        r = max(r1, r2) if r2 else max(math.ceil(max(b, d) / 2), r1, 1)
        ranks[t.name] = r
        use_w1 = not (f1.structure != "dense" and r < max(a, c) / 2)
        use_w2 = not (r < max(b, d) / 2)
        key = f"base_model.model.{t.name}.lokr_"
        if use_w1:
            state[key + "w1"] = _full(f1, g, 0, tp).reshape(a, c).contiguous()
        else:
            A0, A1 = _pair(f1, g, 0, tp)
            state[key + "w1_a"], state[key + "w1_b"] = pad(A0, r, 1), pad(A1, r, 1).T.contiguous()
        if use_w2:
            if len(shape) == 3:
                raise SpecError(f"targets[{t.name!r}]", f"Conv1d {shape} whose w2 PEFT would hold full at r={r}", SCRAMBLED)
            state[key + "w2"] = _full(f2, g, 1, tp).reshape(b, d, *kernel).contiguous()
        elif effective and any(k != 1 for k in kernel):
            core = pad_core(tp[g.param_name(1, "core")], r)
            state[key + "t2"] = core.reshape(r, r, *kernel, 1) if len(kernel) == 1 else core.contiguous()
            state[key + "w2_a"] = pad(tp[g.param_name(1, "A0")], r, 1).T.contiguous()
            state[key + "w2_b"] = pad(tp[g.param_name(1, "A1")], r, 1).T.contiguous()
        else:
            A0, A1 = _pair(f2, g, 1, tp)
            state[key + "w2_a"], state[key + "w2_b"] = pad(A0, r, 1), pad(A1, r, 1).T.contiguous()
    fields = {"decompose_both": factors[0].structure != "dense", "decompose_factor": factor,
              "use_effective_conv2d": effective, "rank_dropout": 0.0, "module_dropout": 0.0}
    return state, ranks, fields
