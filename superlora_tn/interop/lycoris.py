"""LyCORIS / kohya interop: LoRA (LoCon), LoKr and LoHa adapters to SuperLoRA specs and back.

- :func:`from_lycoris` reads a LyCORIS state dict or ``.safetensors`` file (the keys
  ``lycoris_<module>.lokr_w1``, ``lora_unet_<module>.hada_w1_a``, ``....alpha`` ...) and returns
  ``(spec, params)`` whose dW equals what LyCORIS's **forward** adds to each layer; with
  ``model`` it returns an :class:`~superlora_tn.torch.AdaptedModel` instead.
- :func:`to_lycoris` writes a LoRA, LoKr or LoHa spec's parameters as LyCORIS keys (and a
  ``.safetensors`` file when ``path`` is given).

Conventions (docs/lycoris.md has the tables):

- Factor shapes follow LyCORIS 4.x ``factorization`` (``SuperLoRA(factorization="lycoris")``),
  or its ``unbalanced_factorization``; the importer finds the convention and the factor from
  the file's shapes.
- Scale: LyCORIS's forward multiplies by alpha / r once (r its ``lora_dim``), and by 1 when both
  LoKr factors are full matrices. Its ``get_diff_weight`` (used by its merge) multiplies by
  alpha / r a second time; imports follow the forward.
- Layers whose factors LyCORIS stored in different forms (w2 low-rank on one layer, full on
  another; Tucker conv layers next to Linear ones) are held in the common exact form: the full
  product (``mixed="dense"``, default), or refused (``mixed="error"``). Smaller ranks are padded
  with zero columns to the largest (exact) and per-layer alpha / r become per-target scales.
- DoRA (``dora_scale``), LoKr with a Tucker w1 (``lokr_t1``), GLoRA, (B)OFT, IA3, full/diff and
  norm modules are refused, naming the algorithm.

>>> import torch
>>> from superlora_tn.interop.lycoris import from_lycoris, to_lycoris
>>> g = torch.Generator().manual_seed(0)
>>> state = {"lycoris_fc.lokr_w1": torch.randn(4, 4, generator=g), "lycoris_fc.lokr_w2_a": torch.randn(8, 2, generator=g),
...          "lycoris_fc.lokr_w2_b": torch.randn(2, 8, generator=g), "lycoris_fc.alpha": torch.tensor(1.0)}
>>> spec, params = from_lycoris(state)
>>> spec.identify(), spec.target_shapes, spec.config.factorization
('lokr', {'lycoris_fc': (32, 32)}, 'lycoris')
>>> back = to_lycoris(spec, params)
>>> all(torch.equal(back[k], v) for k, v in state.items())
True
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..errors import SpecError
from ..facade import SuperLoRA
from .lycoris_format import PREFIXES, lycoris_module_name
from .lycoris_read import build_spec, load_state, read_layers
from .lycoris_write import WRITERS, as_torch

__all__ = ["PREFIXES", "from_lycoris", "lycoris_module_name", "to_lycoris"]


def from_lycoris(source: Any, model: Any = None, *, modules: Any = None, mixed: str = "dense", dtype: Any = None,
                 seed: int = 0, factored: bool | str = "auto") -> Any:
    """A SuperLoRA spec and its parameters (torch tensors) from a LyCORIS LoRA/LoCon, LoKr or LoHa file.

    ``source``: a state dict or a ``.safetensors``/``.pt`` path. Without ``model``, targets are
    named by the file's module names (``lycoris_fc``, ``lora_unet_...``) and shaped from the
    tensors (a conv whose kernel LyCORIS stored flattened reads as (out, in*kh*kw)); returns
    ``(spec, params)``. With ``model`` (an ``nn.Module``), targets are its module paths with their
    real weight shapes, and the adapter is injected: returns the ``AdaptedModel``.
    ``modules``: only these LyCORIS module names (or, with ``model``, module paths), e.g. the
    Tucker conv layers of a file in one spec and its Linear layers in another.
    ``mixed``: ``"dense"`` holds factors stored in different forms on different layers as their
    exact full products; ``"error"`` refuses.
    """
    if mixed not in ("dense", "error"):
        raise SpecError("mixed", mixed, '"dense" or "error"')
    layers = read_layers(load_state(source), model, modules)
    algos = sorted({layer.algo for layer in layers})
    if len(algos) != 1:
        raise SpecError("state_dict", algos, "one algorithm per conversion (pick each one's modules with modules=[...])")
    cast = (lambda x: x.detach().to(dtype)) if dtype is not None else (lambda x: x.detach().clone())
    spec, params = build_spec(layers, cast, seed, mixed)
    if model is None:
        return spec, params
    import torch

    from ..torch import inject

    adapted = inject(model, spec=spec, factored=factored, adapter_dtype=next(iter(params.values())).dtype)
    with torch.no_grad():
        for name, value in params.items():
            adapted.adapter[name].copy_(value)
    return adapted


def to_lycoris(spec: Any, params: Mapping[str, Any] | None = None, path: Any = None, *, prefix: str = "lycoris",
               dtype: Any = None) -> dict[str, Any]:
    """A LoRA, LoKr or LoHa spec's parameters as a LyCORIS state dict; saved to ``path`` (.safetensors) if given.

    ``spec`` may be an ``AdaptedModel`` (then ``params`` defaults to its adapter). Keys are
    ``lycoris_module_name(target, prefix) + "." + leaf``; targets already named with a LyCORIS
    prefix keep their name. Each module gets the tensors LyCORIS's own module of that layer
    holds, so its forward is the spec's dW: LoKr factors LyCORIS would hold as full matrices at
    that rank are written as their exact products (with alpha / r folded in when both are full,
    since LyCORIS then forces scale 1).
    """
    if hasattr(spec, "spec") and hasattr(spec, "adapter"):
        params = dict(spec.adapter) if params is None else params
        spec = spec.spec
    if not isinstance(spec, SuperLoRA):
        raise SpecError("spec", type(spec).__name__, "a SuperLoRA spec (with params) or an AdaptedModel")
    if params is None:
        raise SpecError("params", None, "the spec's parameters (name -> array)")
    if prefix not in PREFIXES:
        raise SpecError("prefix", prefix, f"one of {PREFIXES}")
    kind = spec.identify()
    if kind not in ("lora", "lokr", "loha"):
        raise SpecError("spec", kind, "a LoRA, LoKr or LoHa spec (convert others first, e.g. reductions.to_lora_spec)")
    tp = {k: as_torch(v) for k, v in params.items()}
    if dtype is not None:
        tp = {k: v.to(dtype) for k, v in tp.items()}
    native = None
    if kind == "lora" and any(len(g.fold) == 2 for g in spec.groups):
        from ..native import to_lora

        native = to_lora(spec, tp)  # (A, B, scale) per target, whatever holds the LoRA (lora, cp, a Tucker core)
    state: dict[str, Any] = {}
    for g in spec.groups:
        target = spec._by_name[g.segments[0].target]
        key = lycoris_module_name(target.name, prefix)
        for leaf, value in WRITERS[kind](spec, g, target, tp, native).items():
            state[f"{key}.{leaf}"] = value.contiguous()
    if path is not None:
        from safetensors.torch import save_file

        save_file(state, os.fspath(path))
    return state
