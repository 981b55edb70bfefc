"""Which modules of a model get an adapter: PEFT's matching rules, and each layer's weight layout.

``targets`` is a regex (``re.fullmatch`` on the full module name), or a list of names, each
matching a module whose name equals it or ends with ``"." + name`` (so a list of full names
selects exactly those modules). ``exclude`` follows the same rules and wins over ``targets``.
Matched modules must be ``nn.Linear``, ``nn.Conv1d``, ``nn.Conv2d`` or GPT-2's ``Conv1D``
(``transformers.pytorch_utils.Conv1D``, weight stored (in, out) and transposed on the way in
and out). Containers (modules with children) that a selector matches are skipped; any other
module of an unsupported kind (LayerNorm, Embedding, ...) matched is refused with a ``SpecError``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import SpecError

__all__ = ["LayerInfo", "check_injectable", "find_targets", "layer_kind", "matches"]

Selector = str | Sequence[str] | None


@dataclass(frozen=True)
class LayerInfo:
    """One adapted layer: its module name (the spec's target name), kind and spec shape."""

    name: str
    kind: str  # "linear", "conv1d", "conv2d" or "gpt2_conv1d"
    shape: tuple[int, ...]  # the target shape in the spec: (out, in) or the conv kernel (out, in, k...)


def layer_kind(module: nn.Module) -> str | None:
    """The kind of a supported layer, None for anything else."""
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.Conv1d):
        return "conv1d"
    if isinstance(module, nn.Conv2d):
        return "conv2d"
    if type(module).__name__ == "Conv1D" and hasattr(module, "nf") and isinstance(getattr(module, "weight", None), torch.Tensor):
        return "gpt2_conv1d"  # transformers.pytorch_utils.Conv1D, matched by duck typing (no import)
    return None


def target_shape(module: nn.Module, kind: str) -> tuple[int, ...]:
    shape = tuple(module.weight.shape)
    return (shape[1], shape[0]) if kind == "gpt2_conv1d" else shape


def matches(name: str, selector: Selector) -> bool:
    """PEFT semantics: a string is a regex fullmatch, a list matches names equal to or ending in ``.entry``."""
    if selector is None:
        return False
    if isinstance(selector, str):
        return re.fullmatch(selector, name) is not None
    return any(name == key or name.endswith("." + key) for key in selector)


def _check_selector(field: str, selector: Selector) -> None:
    if selector is None or isinstance(selector, str):
        if isinstance(selector, str):
            try:
                re.compile(selector)
            except re.error as exc:
                raise SpecError(field, selector, f"a valid regular expression ({exc})") from None
        return
    if not isinstance(selector, list | tuple | set | frozenset) or not all(isinstance(s, str) and s for s in selector):
        raise SpecError(field, selector, "a regex string, or a list of module names / name suffixes")


def find_targets(model: nn.Module, targets: Selector, exclude: Selector = None) -> list[LayerInfo]:
    """The matched layers in model traversal order (the spec's concatenation order)."""
    _check_selector("targets", targets)
    _check_selector("exclude", exclude)
    if targets is None or (not isinstance(targets, str) and not list(targets)):
        raise SpecError("targets", targets, "a regex or a non-empty list of module names")
    found: list[LayerInfo] = []
    unsupported: list[str] = []
    for name, module in model.named_modules():
        if not name or not matches(name, targets) or matches(name, exclude):
            continue
        kind = layer_kind(module)
        if kind is None and next(module.children(), None) is not None:
            continue  # a container (Block, ModuleList...) matched by the selector: its leaves decide
        if kind is None:
            unsupported.append(f"{name} ({type(module).__name__})")
            continue
        found.append(LayerInfo(name, kind, target_shape(module, kind)))
    if unsupported:
        raise SpecError("targets", targets, f"only nn.Linear, nn.Conv1d, nn.Conv2d or GPT-2 Conv1D modules; also matched {unsupported[:4]}")
    if not found:
        sample = [n for n, m in model.named_modules() if layer_kind(m) is not None][:4]
        raise SpecError("targets", targets, f"a selector matching at least one supported layer, such as {sample}")
    if not isinstance(targets, str):
        names = [n for n, _ in model.named_modules() if n]
        missing = [key for key in targets if not any(matches(n, [key]) for n in names)]
        if missing:
            raise SpecError("targets", missing, "module names or suffixes that exist in the model (these matched nothing)")
    return found


def _ours(hook: Any) -> bool:
    """True for a hook superlora_tn.torch registered (one of its objects, functions or bound methods)."""
    owner = getattr(hook, "__self__", hook)
    module = getattr(owner, "__module__", None) or type(owner).__module__
    return str(module).startswith(_TORCH_PACKAGE)


_TORCH_PACKAGE = "superlora_tn.torch."


def _adapted(module: nn.Module) -> bool:
    """True for an AdaptedModel, a model with one attached, or a layer carrying an adapter's hook."""
    if getattr(module, "_superlora_tn_adapted", False) or type(module).__module__.startswith(_TORCH_PACKAGE):
        return True
    hooks = [*module._forward_hooks.values(), *module._forward_pre_hooks.values()]
    patched = module.__dict__.get("forward")  # a layer whose forward an adapter replaced on the instance
    return any(_ours(h) for h in hooks) or (patched is not None and _ours(patched))


def check_injectable(model: nn.Module, names: Sequence[str], *, modules_to_save: Any = None, factored: Any = "auto") -> None:
    """Refuse, before anything is changed, what would silently do the wrong thing (and
    ``modules_to_save`` / ``factored`` values that are not names / one of True, False, "auto"):

    - ``model`` is, contains, or is part of a model that already has an adapter attached (a second
      ``inject`` would stack a second adapter on the first: the re-run notebook cell);
    - a target is ``out_proj`` (or any layer) inside ``nn.MultiheadAttention``, which uses the
      weight directly and never calls the layer's forward, so the adapter would have no effect
      in training while ``merge()`` would still change the output.
    """
    if modules_to_save is not None and not isinstance(modules_to_save, str) and (
            not isinstance(modules_to_save, list | tuple) or not all(isinstance(m, str) and m for m in modules_to_save)):
        raise SpecError("modules_to_save", modules_to_save, "None, a module name or a list of module names/suffixes")
    if not any(factored is v for v in (True, False)) and not (isinstance(factored, str) and factored == "auto"):
        raise SpecError("factored", factored, 'True, False or "auto"')
    modules = dict(model.named_modules())
    stacked = [name or "<model>" for name, m in modules.items() if _adapted(m)]
    if stacked:
        raise SpecError("model", stacked[:4], "a model without an attached adapter (unload() or merge_and_unload() the "
                        "first one; a second inject would stack a second adapter silently)")
    for name in names:
        parts = name.split(".")
        for i in range(1, len(parts)):
            parent = ".".join(parts[:i])
            if isinstance(modules.get(parent), nn.MultiheadAttention):
                raise SpecError("targets", name, f"layers whose forward the model calls; {parent} is nn.MultiheadAttention, "
                                "which reads its projections' weights directly (adapt the attention's in/out "
                                "projections in a model that calls them as nn.Linear)")
