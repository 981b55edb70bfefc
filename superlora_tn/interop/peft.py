"""PEFT interop: LoRA and LoKr adapters to SuperLoRA specs and back (Linear, GPT-2 Conv1D, Conv1d/2d).

- :func:`from_peft` reads a PEFT model (``get_peft_model``), or a state dict (the keys of
  ``adapter_model.safetensors``) with its ``adapter_config.json`` fields, or a directory holding
  both, and returns ``(spec, params)`` whose ``spec.contract(params)`` equals PEFT's
  ``get_delta_weight`` for every adapted layer.
- :func:`to_peft` exports a LoRA or LoKr spec's parameters as ``(state_dict, config_dict)``:
  the state dict loads with ``peft.set_peft_model_state_dict`` into a model built from the config.
- :func:`peft_zero_blocks` names the parameter PEFT (or LyCORIS) would zero at init.

Conventions followed (docs/peft.md has the table):

- Targets are named by module path relative to the base model (``"layers.0.q"``); PEFT keys are
  ``base_model.model.<target>.lora_A.weight`` etc.; dW is in ``nn.Linear`` (out, in) layout.
- LoKr factorization: PEFT's ``factorization(dim, decompose_factor)`` (LyCORIS 4.x sorts a dividing
  factor's pair, so its files go through ``interop.lycoris``), w1 = (out_l, in_m) the coarse factor of
  ``torch.kron(w1, w2)``.
- LoKr scale: PEFT's ``alpha / r`` always. LyCORIS instead forces scale 1 when w1 and w2 are both
  dense; pass ``scale_convention="lycoris"`` to :func:`from_peft` to read LyCORIS-trained alphas.
- Zero-init block: ours zeros LoRA's B (= PEFT) and LoKr's w2_a; PEFT zeros w1 (or w1_a), LyCORIS
  zeros w2 (or w2_b). Loaded weights are taken as they are, so this matters only for fresh inits.
- Per-layer ranks (``rank_pattern``) are padded with zero columns to the largest rank (exact);
  per-layer scales become the spec's per-target ``scale``.
- :func:`load_peft` / :func:`save_peft`: one call each between a PEFT adapter (directory or
  live model, several adapters too: ``default`` at the root, others in ``<dir>/<name>/``) and an
  ``AdaptedModel`` with the same named adapters.
- LoKr on ``nn.Conv1d``/``nn.Conv2d``, ``use_effective_conv2d`` included: :mod:`.peft_lokr`
  (``factorization="peft-conv"``; the t2 core is a Tucker w2 on the kernel's own fold).
- LoRA on GPT-2 ``Conv1D`` (``fan_in_fan_out``) is read and written: A and B are the same as on
  a Linear, dW is in (out, in) layout. LoRA on ``nn.Conv1d``/``nn.Conv2d`` (groups=1): dW is
  lora_B (out, r) @ lora_A (r, in*k...) in the kernel's shape, as PEFT's ``get_delta_weight``.
- ``use_dora``, LoHa, LoKr with ``fan_in_fan_out``, a Conv1d LoKr whose w2 PEFT holds full (its
  ``torch.kron`` is not a Kronecker product over the kernel's modes), ``lora_bias``, LoRA on
  ``nn.Embedding``, ``modules_to_save`` heads in :func:`from_peft` (a spec holds no head;
  :func:`load_peft` / :func:`save_peft` carry them as each adapter's own heads) and factors whose
  shapes do not multiply are refused with a SpecError saying why, the same way from a live model, a state dict or a directory
  (nothing is converted approximately or dropped).
- ``to_peft`` writes ``target_modules`` as one regex that fullmatches exactly the spec's target
  names, and ``rank_pattern`` / ``alpha_pattern`` keys anchored (``^name$``): PEFT matches list
  entries and pattern keys as name suffixes, so ``q`` would also select ``blk.q``.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import SpecError
from ..facade import SuperLoRA
from .peft_lokr import check_lokr_layer, lokr_spec, pattern, scale_args, write_lokr

__all__ = ["from_peft", "load_peft", "peft_zero_blocks", "save_peft", "to_peft"]

PREFIX = "base_model.model."
NOT_REDUCTIONS = {
    "LOHA": "LoHa's dW is a Hadamard (elementwise) product of two low-rank matrices, not a tensor-network reduction of this spec",
    "DORA": "DoRA rescales each column of W + dW by a learned magnitude, which no dW of this spec reproduces",
}
LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.(?P<kind>lora_A|lora_B)(?:\.(?P<adapter>[^.]+))?\.weight$")
LOKR_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.(?P<kind>lokr_w1_a|lokr_w1_b|lokr_w2_a|lokr_w2_b|lokr_w1|lokr_w2|lokr_t2)"
                      r"(?:\.(?P<adapter>[^.]+))?$")


# ====================================================================== reading
def _check_config(cfg: Mapping[str, Any], kind: str, heads: bool = False) -> None:
    """Settings that have no exact SuperLoRA form: refused, on every path (model, state dict, directory).
    ``heads``: ``modules_to_save`` is read (``load_peft`` carries heads; a spec alone cannot)."""
    if cfg.get("fan_in_fan_out") and kind != "lora":
        raise SpecError("fan_in_fan_out", True, "False for LoKr (Conv1D-style transposed weights are converted for LoRA only)")
    if cfg.get("use_dora"):
        raise SpecError("use_dora", True, f"False ({NOT_REDUCTIONS['DORA']})")
    if cfg.get("lora_bias"):
        raise SpecError("lora_bias", True, "False (a trained bias on lora_B is not part of dW; it would be dropped)")
    if cfg.get("modules_to_save") and not heads:
        raise SpecError("modules_to_save", cfg["modules_to_save"], "None for a spec: heads trained in full are not part of "
                        "dW (load_peft reads them as the adapter's heads, inject(modules_to_save=...))")


def _head_of(path: str, entries: Any) -> tuple[str, str] | None:
    """(head module, tensor name) of a state-dict path under a ``modules_to_save`` entry (PEFT's
    rule: a module whose name ends with the entry), the outermost such module."""
    parts = path.split(".")
    for i in range(1, len(parts)):
        module = ".".join(parts[:i])
        if any(module.endswith(e) for e in entries):
            return module, ".".join(parts[i:])
    return None


_PARTS = {"lora": (("lora_A",), ("lora_B",)), "lokr": (("w1", "w1_a"), ("w2", "w2_a"))}


def _check_layer(name: str, tensors: Mapping[str, Any], kind: str) -> None:
    """Every tensor 2-D (no convolution), every needed part present, and factors that multiply."""
    t = {k.removeprefix("lokr_"): v for k, v in tensors.items() if k != "__shape__"}
    if kind == "lora":  # Linear/Conv1D: 2-D; a convolution's lora_A is (r, in, k...), its lora_B (out, r, 1...)
        for key in ("lora_A", "lora_B"):
            if key not in t:
                raise SpecError(f"layer {name!r}", f"no {key}", "both lora_A and lora_B")
        A, B = t["lora_A"], t["lora_B"]
        conv_b = B.ndim == A.ndim and all(n == 1 for n in B.shape[2:])
        if A.ndim < 2 or A.ndim > 4 or not conv_b or B.shape[1] != A.shape[0]:
            raise SpecError(f"layer {name!r}", f"lora_A {tuple(A.shape)}, lora_B {tuple(B.shape)}",
                            "lora_B (out, r) and lora_A (r, in), or a convolution's (out, r, 1...) and (r, in, k...), "
                            "with one r (these do not multiply)")
        shape = tensors.get("__shape__")
        if shape is not None and tuple(shape) != (B.shape[0], *A.shape[1:]):
            raise SpecError(f"layer {name!r}", f"B A of shape {(B.shape[0], *A.shape[1:])}", f"the base weight's shape {tuple(shape)}")
        return
    check_lokr_layer(name, tensors)


def _config_dict(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    if hasattr(config, "to_dict"):
        return dict(config.to_dict())
    raise SpecError("config", type(config).__name__, "an adapter_config.json dict or a PEFT LoraConfig/LoKrConfig")


def _peft_type(cfg: Mapping[str, Any], keys: Any) -> str:
    kind = str(cfg.get("peft_type", "")).rsplit(".", 1)[-1].upper()
    if kind in ("LORA", "LOKR"):
        return kind.lower()
    if kind in NOT_REDUCTIONS:
        raise SpecError("peft_type", kind, f"LORA or LOKR: {NOT_REDUCTIONS[kind]}")
    if any(LOKR_KEY.match(k) for k in keys):
        return "lokr"
    if any(LORA_KEY.match(k) for k in keys):
        return "lora"
    raise SpecError("peft_type", cfg.get("peft_type"), '"LORA" or "LOKR" (or keys with lora_A/lora_B or lokr_w1/lokr_w2)')


def _from_model(model: Any, adapter: str, heads: dict[str, Any] | None = None
                ) -> tuple[dict[str, dict[str, Any]], dict[str, float], str, dict[str, Any]]:
    """Layer tensors, PEFT's own scaling per layer, the adapter type and its config, from a live model.
    ``heads``: filled with the adapter's ``modules_to_save`` copies (module -> state); None refuses them."""
    import torch.nn as nn
    from peft.tuners.lokr.layer import LoKrLayer
    from peft.tuners.lora.layer import LoraLayer

    cfg = _config_dict(getattr(model, "peft_config", {}).get(adapter)) if hasattr(model, "peft_config") else {}
    layers: dict[str, dict[str, Any]] = {}
    scaling: dict[str, float] = {}
    kinds = set()
    for name, module in model.named_modules():
        if type(module).__name__ == "ModulesToSaveWrapper":
            if heads is None:
                raise SpecError("modules_to_save", name, "None for a spec: heads trained in full are not part of dW "
                                "(load_peft reads them as the adapter's heads)")
            if adapter in module.modules_to_save:
                state = module.modules_to_save[adapter].state_dict()
                heads[name.removeprefix(PREFIX)] = {k: v.detach().clone() for k, v in state.items()}
            continue
        if isinstance(module, LoraLayer) and adapter in getattr(module, "lora_embedding_A", {}):
            raise SpecError(f"layer {name!r}", "LoRA on nn.Embedding", "nn.Linear layers (lora_embedding_A/B are not converted)")
        if isinstance(module, LoraLayer) and adapter in module.lora_A:
            if getattr(module.lora_B[adapter], "bias", None) is not None:
                raise SpecError("lora_bias", True, "False (a trained bias on lora_B is not part of dW; it would be dropped)")
            kinds.add("lora")
            tensors = {"lora_A": module.lora_A[adapter].weight, "lora_B": module.lora_B[adapter].weight}
        elif isinstance(module, LoKrLayer) and adapter in module._available_adapters:
            kinds.add("lokr")
            tensors = {k: getattr(module, k)[adapter] for k in module.adapter_layer_names if adapter in getattr(module, k)}
        else:
            continue
        base = module.get_base_layer()
        conv1d = type(base).__name__ == "Conv1D"
        conv = isinstance(base, nn.Conv1d | nn.Conv2d)
        if not (isinstance(base, nn.Linear) or conv1d or conv):
            raise SpecError(f"layer {name!r}", type(base).__name__, "nn.Linear, nn.Conv1d/2d or GPT-2 Conv1D base layers")
        if conv and base.groups != 1:
            raise SpecError(f"layer {name!r}", f"groups={base.groups}", "a convolution with groups=1 (LoRA conversion)")
        if getattr(module, "fan_in_fan_out", False) and not isinstance(module, LoraLayer):
            raise SpecError("fan_in_fan_out", True, "False for LoKr (Conv1D-style transposed weights are converted for LoRA only)")
        if getattr(module, "use_dora", {}).get(adapter, False):
            raise SpecError("use_dora", True, f"False ({NOT_REDUCTIONS['DORA']})")
        module_name = name[len(PREFIX):] if name.startswith(PREFIX) else name
        layers[module_name] = {k: v.detach() for k, v in tensors.items()}
        shape = tuple(base.weight.shape)
        layers[module_name]["__shape__"] = shape[::-1] if conv1d else shape  # dW in (out, in) layout
        scaling[module_name] = float(module.scaling[adapter])
    if not layers:
        raise SpecError("model", type(model).__name__, f"a PEFT model with LoRA or LoKr layers for adapter {adapter!r}")
    if len(kinds) != 1:
        raise SpecError("model", sorted(kinds), "one adapter type (LoRA or LoKr) per conversion")
    return layers, scaling, kinds.pop(), cfg


def _from_state_dict(state: Mapping[str, Any], cfg: Mapping[str, Any], adapter: str,
                     heads: dict[str, Any] | None = None) -> tuple[dict[str, dict[str, Any]], str]:
    kind = _peft_type(cfg, state.keys())
    _check_config(cfg, kind, heads is not None)  # before the keys: a refused setting is named, not reported as an unknown key
    entries = cfg.get("modules_to_save") or []
    pattern = LORA_KEY if kind == "lora" else LOKR_KEY
    layers: dict[str, dict[str, Any]] = {}
    for key, value in state.items():
        m = pattern.match(key)
        if m is None and ".lora_embedding_" in key:
            raise SpecError("state_dict key", key, "nn.Linear LoRA keys (LoRA on nn.Embedding is not converted)")
        if m is None and re.search(r"\.lora_B(\.[^.]+)?\.bias$", key):
            raise SpecError("lora_bias", True, "False (a trained bias on lora_B is not part of dW; it would be dropped)")
        head = _head_of(key.removeprefix(PREFIX), entries) if m is None and heads is not None else None
        if head is not None:
            heads.setdefault(head[0], {})[head[1]] = value
            continue
        if m is None:
            example = f"{PREFIX}<module>.{'lora_A.weight' if kind == 'lora' else 'lokr_w1'}"
            raise SpecError("state_dict key", key, f"{kind} adapter keys such as {example}")
        if m["adapter"] not in (None, adapter):
            continue
        layers.setdefault(m["module"], {})[m["kind"].removeprefix("lokr_") if kind == "lokr" else m["kind"]] = value
    if not layers:
        raise SpecError("state_dict", f"{len(state)} keys", f"LoRA/LoKr keys for adapter {adapter!r}")
    return layers, kind


def _load_dir(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    from safetensors.torch import load_file

    cfg_path = os.path.join(path, "adapter_config.json")
    st_path = os.path.join(path, "adapter_model.safetensors")
    if not (os.path.isfile(cfg_path) and os.path.isfile(st_path)):
        raise SpecError("source", path, "a directory with adapter_config.json and adapter_model.safetensors")
    try:
        with open(cfg_path, encoding="utf-8") as fh:
            cfg = json.load(fh)
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise SpecError("adapter_config.json", cfg_path, f"a readable JSON file ({exc})") from None
    if not isinstance(cfg, dict):
        raise SpecError("adapter_config.json", type(cfg).__name__, "a JSON object of PEFT config fields")
    try:
        state = load_file(st_path)
    except Exception as exc:  # safetensors raises its own error types
        raise SpecError("adapter_model.safetensors", st_path, f"a readable safetensors file ({exc})") from None
    return state, cfg


def from_peft(source: Any, config: Any = None, *, adapter_name: str = "default", scale_convention: str = "peft",
              mixed: str = "dense", dtype: Any = None, seed: int = 0,
              shapes: Mapping[str, Any] | None = None) -> tuple[SuperLoRA, dict[str, Any]]:
    """A SuperLoRA spec and its parameters (torch tensors) from a PEFT LoRA or LoKr adapter.

    ``source``: a PEFT model, a state dict (``adapter_model.safetensors`` keys) or a directory.
    ``config``: the ``adapter_config.json`` fields (a dict or a PeftConfig) for a state dict: r,
    alpha / lora_alpha, rank_pattern, alpha_pattern, use_rslora, decompose_both, decompose_factor.
    ``scale_convention``: ``"peft"`` (alpha / r) or ``"lycoris"`` (scale 1 when w1 and w2 are dense).
    ``mixed``: LoKr layers where PEFT made a factor dense on some layers and low-rank on others:
    ``"dense"`` holds that factor dense on every layer (w_a @ w_b, exact), ``"error"`` refuses.
    ``shapes``: the base weights' shapes, module name -> (out, in, *kernel), for a state dict or
    a directory (a live model has them; :func:`load_peft` passes the model's). A LoKr convolution
    needs it unless its kernel shows in its tensors (a full w2 or a t2 core): PEFT stores a
    flattened w2 as (r, in * k).
    """
    spec, params, _ = _convert(source, config, adapter_name=adapter_name, scale_convention=scale_convention, mixed=mixed,
                               dtype=dtype, seed=seed, shapes=shapes)
    return spec, params


def _convert(source: Any, config: Any, *, adapter_name: str, scale_convention: str, mixed: str, dtype: Any, seed: int,
             shapes: Mapping[str, Any] | None, heads: dict[str, Any] | None = None
             ) -> tuple[SuperLoRA, dict[str, Any], dict[str, Any]]:
    """:func:`from_peft`, plus the adapter's PEFT config (its dropout settings for :func:`load_peft`);
    ``heads`` (a dict) is filled with its ``modules_to_save`` states instead of refusing them."""
    if mixed not in ("dense", "error"):
        raise SpecError("mixed", mixed, '"dense" or "error"')
    import torch

    if scale_convention not in ("peft", "lycoris"):
        raise SpecError("scale_convention", scale_convention, '"peft" (alpha / r always) or "lycoris" (1 when both LoKr factors are dense)')
    scaling: dict[str, float] | None = None
    if isinstance(source, str | os.PathLike):
        state, cfg = _load_dir(os.fspath(source))
        layers, kind = _from_state_dict(state, cfg, adapter_name, heads)
    elif isinstance(source, Mapping):
        cfg = _config_dict(config)
        layers, kind = _from_state_dict(source, cfg, adapter_name, heads)
    elif hasattr(source, "named_modules"):
        layers, scaling, kind, cfg = _from_model(source, adapter_name, heads)
        cfg.update(_config_dict(config))
    else:
        raise SpecError("source", type(source).__name__, "a PEFT model, a state dict or an adapter directory")
    _check_config(cfg, kind, heads is not None)
    for name, tensors in layers.items():
        if shapes is not None and "__shape__" not in tensors and name in shapes:
            tensors["__shape__"] = tuple(shapes[name])
        _check_layer(name, tensors, kind)
    names = list(layers)
    cast = (lambda x: x.detach().to(dtype)) if dtype is not None else (lambda x: x.detach().clone())
    if kind == "lora":
        spec, params = _lora_spec(layers, scaling, cfg, names, cast, seed)
    else:
        spec, params = lokr_spec(layers, scaling, cfg, cast, seed, scale_convention, mixed)
    del torch
    return spec, params, cfg


def _lora_spec(layers, scaling, cfg, names, cast, seed):
    ranks, shapes, scales, alphas = {}, {}, {}, {}
    for n in names:
        t = layers[n]
        A, B = t["lora_A"], t["lora_B"]
        ranks[n] = A.shape[0]
        shapes[n] = t.get("__shape__", (B.shape[0], *A.shape[1:]))  # a conv's lora_A is (r, in, k...)
        if scaling is not None:
            scales[n] = scaling[n]
        else:
            alpha = pattern(cfg.get("alpha_pattern"), n, cfg.get("lora_alpha", 8))
            alphas[n] = alpha
            scales[n] = alpha / math.sqrt(ranks[n]) if cfg.get("use_rslora") else alpha / ranks[n]
    R = max(ranks.values())
    uniform = None
    if scaling is None and len(set(alphas.values())) == 1 and len(set(ranks.values())) == 1 and not cfg.get("use_rslora"):
        uniform = float(next(iter(alphas.values())))
    spec = SuperLoRA([(n, shapes[n]) for n in names], rank=R, structure="lora", seed=seed, **scale_args(scales, uniform, R))
    params = {}
    for g, n in zip(spec.groups, names):
        A, B = cast(layers[n]["lora_A"]), cast(layers[n]["lora_B"])
        A, B = A.reshape(A.shape[0], -1), B.reshape(B.shape[0], -1)  # conv: (r, in*k...), (out, r) of the 1x1 lora_B
        params[g.param_name(0, "A0")] = _pad_cols(B, R)
        params[g.param_name(0, "A1")] = _pad_cols(A.T, R)
    return spec, params


def _pad_cols(x: Any, R: int) -> Any:
    import torch

    r = x.shape[1]
    if r == R:
        return x.contiguous()
    return torch.cat([x, torch.zeros(x.shape[0], R - r, dtype=x.dtype, device=x.device)], dim=1)


# ====================================================================== writing
def _torch(x: Any) -> Any:
    import torch

    from ..backends import backend_for

    if isinstance(x, torch.Tensor):
        return x.detach().contiguous()
    return torch.from_numpy(np.ascontiguousarray(backend_for(x).to_numpy(x)))


def _anchored(name: str) -> str:
    """A pattern key PEFT matches against ``name`` only (its rule ``(.*\\.)?(key)$`` is a suffix match)."""
    return f"^{re.escape(name)}$"


def _common(values: dict[str, Any]) -> Any:
    return Counter(values.values()).most_common(1)[0][0]


def to_peft(spec: SuperLoRA, params: Mapping[str, Any], *, init_weights: bool | str = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """A LoRA or LoKr spec's parameters as PEFT's ``(state_dict, adapter_config dict)``.

    Keys are ``base_model.model.<target>.lora_A.weight`` / ``.lokr_w1`` ...; per-layer ranks and
    scales go to ``rank_pattern`` / ``alpha_pattern`` (alpha = scale * r). For LoKr, a factor
    PEFT would hold dense at that rank is exported as the product w_a @ w_b (exact), and a dense
    w2 gets the smallest per-layer r at which PEFT keeps it dense.
    """
    from .. import reductions

    kind = spec.identify()
    if kind not in ("lora", "lokr"):
        raise SpecError("spec", kind, "a LoRA or LoKr spec (convert others first: reductions.to_lora_spec)")
    tparams = {k: _torch(v) for k, v in params.items()}
    names = [t.name for t in spec.targets]
    state: dict[str, Any] = {}
    ranks: dict[str, int] = {}
    if kind == "lora":
        native = reductions.to_lora(spec, tparams)
        for n in names:
            A, B, _ = native[n]
            shape = spec.target_shapes[n]
            if len(shape) > 2:  # a convolution: lora_A has the kernel's (in, k...), lora_B is a 1x1 conv
                A, B = A.reshape(A.shape[0], *shape[1:]), B.reshape(*B.shape, *[1] * (len(shape) - 2))
            state[f"{PREFIX}{n}.lora_A.weight"] = A.contiguous()
            state[f"{PREFIX}{n}.lora_B.weight"] = B.contiguous()
            ranks[n] = A.shape[0]
    else:
        state, ranks, lokr_fields = write_lokr(spec, tparams)
    scales = {n: spec.target_scale(n) for n in names}
    alphas = {n: scales[n] * ranks[n] for n in names}
    if spec.config.alpha is not None and not spec.config.scale and len(set(ranks.values())) == 1 \
            and next(iter(ranks.values())) == spec.rank_ref:
        alphas = dict.fromkeys(names, spec.config.alpha)  # the spec's own alpha, so PEFT's alpha / r is bit-identical
    r0, a0 = _common(ranks), _common(alphas)
    config: dict[str, Any] = {
        "peft_type": kind.upper(),
        "r": int(r0),
        "target_modules": "|".join(re.escape(n) for n in names),  # a str: PEFT fullmatches it, exact names only
        "rank_pattern": {_anchored(n): int(r) for n, r in ranks.items() if r != r0},
        "alpha_pattern": {_anchored(n): a for n, a in alphas.items() if a != a0},
    }
    if kind == "lora":
        config.update(lora_alpha=a0, init_lora_weights=init_weights if init_weights in (True, False) else True,
                      use_rslora=False, fan_in_fan_out=False, bias="none")
    else:
        config.update(alpha=a0, init_weights=init_weights, **lokr_fields)
    return state, config


def peft_zero_blocks(spec: SuperLoRA, convention: str = "peft") -> list[str]:
    """Parameters to zero at init for PEFT's (w1 / w1_a; LoRA B) or LyCORIS' (w2 / w2_b) convention.

    Pass the result as ``spec.init(zero_init=...)``; ``"superlora"`` gives the library default.
    """
    if convention not in ("peft", "lycoris", "superlora"):
        raise SpecError("convention", convention, '"peft", "lycoris" or "superlora"')
    kind = spec.identify()
    if convention == "superlora" or kind == "lora":
        return sorted(g.zero_block for g in spec.groups)
    if kind != "lokr":
        raise SpecError("spec", kind, "a LoRA or LoKr spec")
    out = []
    for g in spec.groups:
        k = 0 if convention == "peft" else 1
        f = g.factors[k]
        local = "dense" if f.structure == "dense" else ("A0" if k == 0 else "A1")
        out.append(g.param_name(k, local))
    return sorted(out)


# ====================================================================== one call each
def _adapter_sources(source: Any, adapter_name: str | None) -> list[tuple[str, Any]]:
    """(adapter name, what to read it from) for every adapter of a PEFT model or directory.

    A live model: its ``peft_config`` names, the active adapter first. A directory in PEFT's
    ``save_pretrained`` layout: ``default`` at its root, every other adapter in ``<dir>/<name>/``.
    ``adapter_name``: that adapter only.
    """
    if hasattr(source, "named_modules"):
        names = list(getattr(source, "peft_config", None) or {"default": None})
        active = getattr(source, "active_adapter", names[0])
        names = [active, *[n for n in names if n != active]] if active in names else names
        found = [(n, source) for n in names]
    elif isinstance(source, str | os.PathLike):
        root = os.fspath(source)
        found = [("default", root)] if os.path.isfile(os.path.join(root, "adapter_config.json")) else []
        if os.path.isdir(root):
            found += [(d, os.path.join(root, d)) for d in sorted(os.listdir(root))
                      if os.path.isfile(os.path.join(root, d, "adapter_config.json"))]
        if not found:
            raise SpecError("source", root, "a directory with adapter_config.json and adapter_model.safetensors (or "
                            "subdirectories <name>/ holding them, PEFT's layout for several adapters)")
    else:
        raise SpecError("source", type(source).__name__, "a PEFT model or an adapter directory")
    if adapter_name is None:
        return found
    picked = [(n, s) for n, s in found if n == adapter_name]
    if not picked:
        raise SpecError("adapter_name", adapter_name, f"an adapter of the source: {', '.join(n for n, _ in found)}")
    return picked


def _dropout(cfg: Mapping[str, Any], name: str) -> float:
    """PEFT's ``lora_dropout`` (this library's ``dropout=``); LoKr's training-time dropouts are not carried."""
    import warnings

    for key in ("rank_dropout", "module_dropout"):
        if cfg.get(key):
            warnings.warn(f"adapter {name!r}: PEFT's LoKr {key}={cfg[key]} acts in training only and is not carried "
                          "(the loaded adapter's forward in eval mode equals PEFT's)", stacklevel=3)
    return float(cfg.get("lora_dropout") or 0.0)


def load_peft(model: Any, source: Any, *, adapter_name: str | None = None, **kwargs: Any) -> Any:
    """An ``AdaptedModel`` of ``model`` (the plain base model) whose forward equals PEFT's.

    ``source``: a ``save_pretrained`` directory or a live PEFT model (``model`` must be another
    copy of the base). Every adapter is read into a named adapter of the result (a directory:
    ``default`` at its root, others in ``<dir>/<name>/``; a model: each of its ``peft_config``),
    the PEFT model's active one (or ``default``) active; ``adapter_name`` reads that one only.
    ``lora_dropout`` becomes the adapter's ``dropout``, ``modules_to_save`` its heads (each adapter
    its own copy, as PEFT). Keyword arguments go to :func:`from_peft`.
    """
    import torch

    from ..torch import inject
    from ..torch.targets import layer_kind, target_shape

    if hasattr(source, "named_modules") and source is model:
        raise SpecError("model", "the PEFT model itself", "the plain base model (a separate copy)")
    if "shapes" not in kwargs:
        kinds = {n: (m, layer_kind(m)) for n, m in model.named_modules()}
        kwargs["shapes"] = {n: target_shape(m, k) for n, (m, k) in kinds.items() if k is not None}
    adapted = None
    sources = _adapter_sources(source, adapter_name)
    for name, src in sources:
        heads: dict[str, Any] = {}
        spec, params, cfg = _convert(src, None, adapter_name=name if hasattr(src, "named_modules") else "default", heads=heads,
                                     **{"scale_convention": "peft", "mixed": "dense", "dtype": None, "seed": 0, **kwargs})
        dropout = _dropout(cfg, name)
        if adapted is None:
            adapted = inject(model, None, spec, adapter_name=name, dropout=dropout, modules_to_save=list(heads) or None)
        else:
            adapted.add_adapter(name, spec, dropout=dropout, modules_to_save=list(heads) or None)
            adapted.set_adapter(name)
        with torch.no_grad():
            for key, value in params.items():
                adapted.adapter[key].copy_(value)
            for head, state in heads.items():  # the adapter's own copy of each head (PEFT's modules_to_save)
                adapted.base_model.get_submodule(head).load_state_dict(state, strict=True)
    adapted.set_adapter(sources[0][0])
    return adapted


def save_peft(adapted: Any, path: Any) -> Any:
    """Write ``adapted``'s adapters as a PEFT directory: ``default`` at ``path``, every other adapter
    in ``path/<name>/``, as PEFT's ``save_pretrained`` (``PeftModel.from_pretrained`` loads the
    first, ``load_adapter(path/<name>, adapter_name=<name>)`` the others). Returns the directory.

    Each spec must be LoRA or LoKr representable (one group per target, the natural fold or a
    conv kernel's own with a Tucker w2...); anything else is refused naming the reason, before
    anything is written.
    """
    from pathlib import Path

    from safetensors.torch import save_file

    from ..torch.adapters import activated

    out = Path(path)
    written = []
    for name in adapted.adapter_names:  # everything converted first: a refusal writes nothing
        with activated(adapted, name):
            written.append((out if name == "default" else out / name, *_peft_files(adapted)))
    for directory, state, config in written:
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in state.items()}, str(directory / "adapter_model.safetensors"))
        (directory / "adapter_config.json").write_text(json.dumps(config, indent=1))
    return out


def _peft_files(adapted: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """PEFT's (state dict, adapter_config) of the active adapter."""
    kinds = {adapted.layers[n].kind for n in adapted.spec.target_shapes}
    if "gpt2_conv1d" in kinds and len(kinds) > 1:
        raise SpecError("layers", sorted(kinds), "GPT-2 Conv1D alone: PEFT's fan_in_fan_out is one setting for every layer")
    spec = adapted.spec
    kind = spec.identify()
    if kind not in ("lora", "lokr"):
        reason = ("groups mix layers" if len(spec.groups) != len(spec.targets) else "its settings are not LoRA's or LoKr's")
        raise SpecError("spec", kind, f"a LoRA or LoKr representable spec ({reason}: not representable as PEFT LoRA/LoKr)")
    if kind == "lokr" and "gpt2_conv1d" in kinds:
        raise SpecError("layers", sorted(kinds), "nn.Linear or convolution targets for LoKr (PEFT's LoKr has no fan_in_fan_out)")
    state, config = to_peft(spec, {k: v.detach().cpu() for k, v in adapted.adapter.items()})
    names = [n for n, _ in adapted.base_model.named_modules()]
    for head in adapted.head_names:  # PEFT selects modules_to_save by plain string suffix: each must name one module
        others = [n for n in names if n != head and n.endswith(head)]
        if others:
            raise SpecError("modules_to_save", head, f"a head name no other module ends with (PEFT's suffix rule would also "
                            f"select {others[:3]})")
        for key, value in adapted.base_model.get_submodule(head).state_dict().items():
            state[f"{PREFIX}{head}.{key}"] = value.detach().cpu()
    config["modules_to_save"] = list(adapted.head_names) or None
    if kind == "lora":
        config["fan_in_fan_out"] = kinds == {"gpt2_conv1d"}
        config["lora_dropout"] = adapted.dropout
    elif adapted.dropout:
        raise SpecError("dropout", adapted.dropout, "0 for a LoKr adapter (PEFT's LoKr has no input dropout, only rank_dropout)")
    config.update(base_model_name_or_path=None, task_type=None, inference_mode=True)
    return state, config
