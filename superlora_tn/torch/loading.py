"""Loading a saved adapter into a model: ``load`` (a ``save``/``save_pretrained`` directory) and
``from_pretrained`` (those, or a ``Trainer`` checkpoint). The top of torch/: these inject.

>>> import tempfile, torch
>>> from superlora_tn.torch import inject
>>> net = torch.nn.Sequential(torch.nn.Linear(4, 4))
>>> d = tempfile.mkdtemp(); inject(net, targets=["0"], spec=dict(rank=2)).save(d)
>>> type(load(torch.nn.Sequential(torch.nn.Linear(4, 4)), d)).__name__
'AdaptedSequential'
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import SpecError
from ..facade import SuperLoRA
from .build import check_spec_keys
from .hf import TRAINER_WEIGHTS, read_state_dict_file
from .io import CONFIG_NAME, check_tensors, copy_values, read, spec_diff
from .model import AdaptedModel, inject
from .targets import check_injectable, layer_kind, target_shape

__all__ = ["from_pretrained", "load"]


def load(model: nn.Module, path: Any, *, spec: Mapping[str, Any] | SuperLoRA | None = None, factored: bool | str = "auto",
         is_trainable: bool = True) -> AdaptedModel:
    """Inject the saved adapter into ``model`` and load its values (bit-exact).

    ``spec``: optionally the spec the caller expects (a SuperLoRA, or its arguments for the saved
    targets); a different saved spec raises a ``SpecError`` naming the fields that differ. The
    model's layers must have the saved target names and shapes, or a ``SpecError`` names them.
    """
    config, tensors = read(path)
    saved = SuperLoRA.from_dict(config["spec"])
    if spec is not None:
        if not isinstance(spec, SuperLoRA):
            if not isinstance(spec, Mapping):
                raise SpecError("spec", type(spec).__name__, "None, a SuperLoRA, or a dict of SuperLoRA arguments")
            check_spec_keys(spec)
        expected = spec if isinstance(spec, SuperLoRA) else SuperLoRA(saved.target_shapes, **dict(spec))
        if expected != saved:
            raise SpecError("spec", spec_diff(saved, expected)[:6], "the spec the adapter was saved with (saved vs expected)")
    modules = dict(model.named_modules())
    for name, shape in saved.target_shapes.items():
        module = modules.get(name)
        kind = None if module is None else layer_kind(module)
        if kind is None:
            raise SpecError("targets", name, "a supported layer of this model (the saved adapter targets it)")
        if target_shape(module, kind) != shape:
            raise SpecError(f"targets[{name!r}]", f"saved shape {shape}", f"the model's weight shape {target_shape(module, kind)}")
        if config["layers"].get(name, kind) != kind:
            raise SpecError(f"targets[{name!r}]", f"saved kind {config['layers'][name]}", f"this model's layer kind {kind}")
    check_injectable(model, list(saved.target_shapes))
    params, heads = check_tensors(saved, config, tensors, model, None)
    adapted = inject(model, None, saved, modules_to_save=config.get("modules_to_save") or None,
                     factored=factored, adapter_dtype=next(iter(params.values())).dtype,
                     dropout=float(config.get("dropout", 0.0)))
    try:
        copy_values(adapted, params, heads)
    except BaseException:
        adapted.unload()  # not expected (everything was checked); never leave the model half-injected
        raise
    if not is_trainable:
        for p in adapted.parameters():
            p.requires_grad_(False)
    return adapted


def from_pretrained(model: nn.Module, path: Any, **kwargs: Any) -> AdaptedModel:
    """PEFT's name for :func:`superlora_tn.torch.load`: inject the adapter saved in ``path`` into ``model``.

    ``path`` is a directory written by ``save``/``save_pretrained`` (several adapters: ``default``
    in ``path``, each other one in a subdirectory named after it, all loaded, ``default`` active)
    or by ``Trainer`` (``save_model`` or a ``checkpoint-N`` folder: its ``model.safetensors`` holds
    ``AdaptedModel.state_dict()``). Keyword arguments are those of ``load`` (``spec``,
    ``factored``, ``is_trainable``).
    """
    root = Path(path)
    subdirs = sorted(d for d in root.iterdir() if d.is_dir() and (d / CONFIG_NAME).is_file()) if root.is_dir() else []
    if (root / CONFIG_NAME).is_file() or (subdirs and not (root / TRAINER_WEIGHTS).is_file()):
        adapted = load(model, root if (root / CONFIG_NAME).is_file() else subdirs[0], **kwargs)
        if not (root / CONFIG_NAME).is_file():
            adapted.active_adapter = subdirs.pop(0).name
        for sub in subdirs:
            adapted.load_adapter(sub, adapter_name=sub.name)
        return adapted
    if not (root / TRAINER_WEIGHTS).is_file():
        return load(model, path, **kwargs)
    unknown = sorted(set(kwargs) - {"factored", "is_trainable"})
    if unknown:
        raise SpecError("from_pretrained", unknown, "factored= or is_trainable= for a Trainer checkpoint")
    config, state = read_state_dict_file(path)
    dtype = next((v.dtype for k, v in state.items() if k.startswith("adapter.")), torch.float32)
    adapted = inject(model, None, SuperLoRA.from_dict(config["spec"]), modules_to_save=config.get("modules_to_save") or None,
                     factored=kwargs.get("factored", "auto"), adapter_dtype=dtype, dropout=float(config.get("dropout", 0.0)),
                     adapter_name=config.get("adapter_name", "default"))
    for name, spec in (config.get("inactive_adapters") or {}).items():
        adapted.add_adapter(name, SuperLoRA.from_dict(spec), dropout=float((config.get("inactive_dropout") or {}).get(name, 0.0)),
                            modules_to_save=(config.get("inactive_heads") or {}).get(name) or None)
    adapted.load_state_dict(state)  # strict: every adapter and head, checked against the config first
    if not kwargs.get("is_trainable", True):
        for p in adapted.parameters():
            p.requires_grad_(False)
    return adapted
