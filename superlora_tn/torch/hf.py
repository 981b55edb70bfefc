"""Hugging Face conventions for ``AdaptedModel``: the wrapped model's signature, adapter-only
state dicts (so ``Trainer`` checkpoints hold the adapter); ``from_pretrained`` is in ``loading``.

``transformers.Trainer`` is used exactly as with a PEFT model (no subclass, no callback). It reads
these from the model it is given, and each is answered here:

- ``inspect.signature(model.forward)`` (``remove_unused_columns=True`` keeps the dataset columns
  it names) and ``find_labels(type(model))`` (``label_names``): ``inject`` gives the returned
  model the class ``Adapted<BaseClass>`` (``model.adapted_class``, cached per base class), a
  subclass of ``AdaptedModel`` whose ``forward`` carries the base class's signature;
- ``model.state_dict()``, which ``Trainer._save`` writes to ``model.safetensors`` for any model
  that is not a ``PreTrainedModel``/``PeftModel`` (``save_model`` and every checkpoint):
  ``AdaptedModel.state_dict()`` holds the trainable state only, the adapters, their heads
  (``modules_to_save``; the inactive adapters' in ``head_store``) and the adapter config (``_extra_state``: the JSON of
  ``adapter_config.json`` without the file checksums, as a uint8 tensor);
- ``model.load_state_dict(state_dict, strict=False)`` (``resume_from_checkpoint``): the config is
  checked against the model's spec first (``SpecError`` before anything is copied), then the
  values are copied bit-exactly, and the frozen base is not reported missing;
- ``model.config``, ``model.activation_checkpointing_enable`` (``gradient_checkpointing=True``),
  ``model.main_input_name`` ...: attribute passthrough to the base model, as ``PeftModel`` does.

>>> import torch
>>> from superlora_tn.torch import inject
>>> net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
>>> adapted = inject(net, targets=["0"], spec=dict(rank=2), modules_to_save=["1"])
>>> type(adapted).__name__, sorted(adapted.state_dict())
('AdaptedSequential', ['_extra_state', 'adapter.g0_k0_A0', 'adapter.g0_k0_A1', 'base_model.1.bias', 'base_model.1.weight'])
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import SpecError
from ..facade import SuperLoRA

if TYPE_CHECKING:
    from .model import AdaptedModel

__all__ = ["EXTRA_STATE", "TRAINER_WEIGHTS", "adapter_config", "check_config", "decode", "encode", "filtered_state_dict",
           "read_state_dict_file", "trainable_keys"]

EXTRA_STATE = "_extra_state"
TRAINER_WEIGHTS = "model.safetensors"  # what Trainer._save writes for a model that is not a PreTrainedModel

def adapter_config(adapted: AdaptedModel) -> dict[str, Any]:
    """The adapter config that ``save`` writes (format, version, spec, layer kinds, heads, dropout)."""
    from .io import ADAPTER_FORMAT, ADAPTER_VERSION

    return {"format": ADAPTER_FORMAT, "version": ADAPTER_VERSION, "spec": adapted.spec.to_dict(),
            "layers": {name: info.kind for name, info in adapted.layers.items()},
            "modules_to_save": list(adapted.head_names), "merged": adapted.merged, "dropout": adapted.dropout,
            "adapter_name": adapted.active_adapter,
            "inactive_adapters": {name: slot["spec"].to_dict() for name, slot in adapted._slots.items()},
            "inactive_heads": {name: list(slot["head_names"]) for name, slot in adapted._slots.items()},
            "inactive_dropout": {name: slot["dropout"] for name, slot in adapted._slots.items()}}


def encode(config: Mapping[str, Any]) -> torch.Tensor:
    return torch.frombuffer(bytearray(json.dumps(config, sort_keys=True).encode()), dtype=torch.uint8).clone()


def decode(state: Any) -> dict[str, Any]:
    if not isinstance(state, torch.Tensor) or state.dtype != torch.uint8 or state.dim() != 1:
        raise SpecError(EXTRA_STATE, type(state).__name__, "the adapter config as a 1-d uint8 tensor (AdaptedModel.state_dict)")
    try:
        config = json.loads(bytes(state.cpu().numpy().tobytes()).decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(EXTRA_STATE, f"{state.numel()} bytes", f"the JSON adapter config ({exc})") from None
    if not isinstance(config, dict):
        raise SpecError(EXTRA_STATE, type(config).__name__, "a JSON object")
    return config


def check_config(adapted: AdaptedModel, config: Mapping[str, Any]) -> None:
    """SpecError unless ``config`` (from a state dict) describes ``adapted``'s adapter."""
    from .io import ADAPTER_FORMAT, ADAPTER_VERSION, spec_diff
    from .state import check_merge_state

    if config.get("format") != ADAPTER_FORMAT or config.get("version") != ADAPTER_VERSION:
        raise SpecError("format", (config.get("format"), config.get("version")), f"({ADAPTER_FORMAT!r}, {ADAPTER_VERSION})")
    saved = SuperLoRA.from_dict(config["spec"])
    if saved != adapted.spec:
        raise SpecError("spec", spec_diff(saved, adapted.spec)[:6], "the spec the state dict was saved with (saved vs this model)")
    if list(config.get("modules_to_save") or []) != list(adapted.head_names):
        raise SpecError("modules_to_save", config.get("modules_to_save"), f"this model's heads {list(adapted.head_names)}")
    if config.get("adapter_name", adapted.active_adapter) != adapted.active_adapter:
        raise SpecError("adapter_name", config.get("adapter_name"), f"the active adapter {adapted.active_adapter!r} (set_adapter() first)")
    others = {name: slot["spec"] for name, slot in adapted._slots.items()}
    saved = {name: SuperLoRA.from_dict(d) for name, d in (config.get("inactive_adapters") or {}).items()}
    if saved != others:
        raise SpecError("inactive_adapters", sorted(saved), f"this model's inactive adapters {sorted(others)} with the same specs")
    heads = {name: list(slot["head_names"]) for name, slot in adapted._slots.items()}
    saved_heads = {name: list(config.get("inactive_heads", {}).get(name, [])) for name in saved}
    if saved_heads != heads:
        raise SpecError("inactive_heads", saved_heads, f"this model's inactive adapters' heads {heads}")
    check_merge_state(adapted, bool(config.get("merged", False)))  # W + dW loaded into an unmerged model...
    if adapted.merged:
        raise SpecError("load_state_dict", "a merged adapter", "an unmerged adapter (call unmerge() first)")


def trainable_keys(adapted: AdaptedModel, keys: Any, prefix: str = "") -> list[str]:
    """The state-dict keys ``AdaptedModel.state_dict()`` keeps: adapter, heads, extra state."""
    heads = tuple(f"{prefix}base_model.{h}." for h in adapted.head_names)
    return [k for k in keys if k.startswith((f"{prefix}adapter.", f"{prefix}inactive_adapters.", f"{prefix}head_store.",
                                             f"{prefix}{EXTRA_STATE}", *heads))]


def filtered_state_dict(adapted: AdaptedModel, destination: Any, prefix: str, keep_vars: bool) -> Any:
    """The trainable part of the full state dict (into ``destination`` when given)."""
    full = nn.Module.state_dict(adapted, prefix=prefix, keep_vars=keep_vars)
    out = destination if destination is not None else OrderedDict()
    if destination is None:
        out._metadata = getattr(full, "_metadata", OrderedDict())  # type: ignore[attr-defined]
    for key in trainable_keys(adapted, full, prefix):
        out[key] = full[key]
    return out


def read_state_dict_file(path: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config, state dict) of a Trainer checkpoint's ``model.safetensors`` (an ``AdaptedModel.state_dict()``)."""
    from safetensors.torch import load_file

    file = Path(path) / TRAINER_WEIGHTS
    state = load_file(str(file))
    if EXTRA_STATE not in state:
        raise SpecError("path", str(path), f"an adapter directory (adapter_config.json) or a Trainer checkpoint whose {TRAINER_WEIGHTS} "
                        "holds an AdaptedModel state dict")
    return decode(state[EXTRA_STATE]), state
