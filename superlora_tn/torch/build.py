"""Turning ``inject``'s arguments into a spec and its layers, checked (below model.py, so that
``AdaptedModel`` and the adapter operations share one definition).

>>> import torch
>>> layers = spec_layers(torch.nn.Sequential(torch.nn.Linear(4, 3)), __import__("superlora_tn").SuperLoRA({"0": (3, 4)}, rank=1))
>>> [(info.name, info.kind, info.shape) for info in layers]
[('0', 'linear', (3, 4))]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from ..errors import SpecError
from ..facade import SuperLoRA
from ..spec import SPEC_ARGUMENTS
from .defaults import refuse_peft_spelling
from .targets import LayerInfo, layer_kind, target_shape

__all__ = ["build_spec", "check_dropout", "check_spec_keys", "spec_layers"]


def build_spec(layers: list[LayerInfo], spec: Mapping[str, Any] | SuperLoRA | None) -> SuperLoRA:
    shapes = {info.name: info.shape for info in layers}
    if isinstance(spec, SuperLoRA):
        if spec.target_shapes != shapes:  # same names and shapes; the spec's order (dW_all's) is kept
            diff = [f"{n}: spec {spec.target_shapes.get(n)} vs model {shapes.get(n)}"
                    for n in dict.fromkeys([*spec.target_shapes, *shapes]) if spec.target_shapes.get(n) != shapes.get(n)]
            raise SpecError("spec.targets", diff[:4], "the matched layers' names and weight shapes, in model order")
        return spec
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        raise SpecError("spec", type(spec).__name__, "a dict of SuperLoRA arguments or a SuperLoRA instance")
    if "targets" in spec:
        raise SpecError("spec['targets']", spec["targets"], "no targets in spec: inject() finds them in the model")
    check_spec_keys(spec)
    return SuperLoRA(shapes, **dict(spec))


def check_dropout(dropout: Any) -> float:
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0.0 <= dropout < 1.0:
        raise SpecError("dropout", dropout, "a probability p with 0 <= p < 1 (dropout on each adapted layer's input)")
    return float(dropout)


def spec_layers(model: nn.Module, spec: SuperLoRA) -> list[LayerInfo]:
    """The layers of a ``SuperLoRA`` whose target names are module names of ``model``."""
    modules = dict(model.named_modules())
    layers = []
    for name in spec.target_shapes:
        module = modules.get(name) if name else None
        kind = None if module is None else layer_kind(module)
        if kind is None:
            raise SpecError("spec.targets", name, "names of supported layers (Linear, Conv1d/2d, GPT-2 Conv1D) of this model")
        layers.append(LayerInfo(name, kind, target_shape(module, kind)))
    return layers


def check_spec_keys(spec: Mapping[str, Any]) -> None:
    """SpecError for keys that are not SuperLoRA arguments (instead of a raw TypeError); a PEFT
    spelling (``r``, ``lora_alpha``) names this library's argument."""
    allowed = list(SPEC_ARGUMENTS)  # the keyword arguments (not the constructor's **unknown catch-all)
    unknown = sorted(str(k) for k in spec if k not in allowed)
    for key in unknown:
        refuse_peft_spelling(f"spec[{key!r}]", key)
    if unknown:
        raise SpecError("spec", unknown, f"SuperLoRA arguments: {', '.join(allowed)}")
