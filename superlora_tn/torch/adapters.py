"""Several named adapters on one model: ``add_adapter``, ``set_adapter``, ``delete_adapter``.

The active adapter is the one the model runs: its spec, layers and parameters are
``AdaptedModel.spec`` / ``.layers`` / ``.adapter`` exactly as for a single adapter, so every
fast path is unchanged. The others wait in ``inactive_adapters`` (an ``nn.ModuleDict`` of
their parameters, created when a second adapter is added) and in a plain dict of their
settings. ``set_adapter`` swaps the two (no re-injection: the layers' forwards were installed
once, for the union of every adapter's targets; a layer the active adapter does not target runs
its base forward). Each adapter has its own spec (grouped ones too), targets, dropout, memory
mode and heads. Only the active adapter's parameters (and heads) require grad.

Heads (``modules_to_save``) are per adapter, as PEFT's ``ModulesToSaveWrapper``: each adapter that
names a head has its own copy of it, made from the base model's own head when the adapter is
created; when the active adapter does not name a head, the model runs the base's own. The head
modules stay in place (hooks, references and the model's forward are untouched): switching
exchanges their parameters and buffers with the stored copies in ``head_store[<adapter>]``; the
base's own values wait in ``head_originals`` while an adapter's copy is in the model. As in PEFT,
a head therefore costs one extra copy (the base's own) beside each adapter's.

>>> import torch
>>> from torch import nn
>>> from superlora_tn.torch import inject
>>> adapted = inject(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4)), targets=["0"], spec=dict(rank=2))
>>> adapted.add_adapter("other", dict(groups=1, fold="balanced", order=2, rank=2), targets=["0", "1"])
>>> adapted.set_adapter("other")
>>> adapted.active_adapter, sorted(adapted.adapter_names), sorted(adapted.layers)
('other', ['default', 'other'], ['0', '1'])
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import SpecError
from ..facade import SuperLoRA
from ..factored import factored_supported
from ..slices import target_params
from .build import build_spec, check_dropout, spec_layers
from .layers import AdaptedForward
from .memory import choose_memory_mode, shared_targets
from .targets import Selector, find_targets

if TYPE_CHECKING:
    from .model import AdaptedModel

__all__ = ["activated", "add_adapter", "all_heads", "check_name", "delete_adapter", "keep_head_originals", "resolve_heads", "set_adapter"]

SLOT_FIELDS = ("spec", "layers", "_shared", "memory", "_params_of", "dropout", "head_names")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise SpecError("adapter_name", name, "a name of letters, digits, '_' or '-' (it names a module and a directory)")
    return name


def inactive(adapted: AdaptedModel) -> nn.ModuleDict:
    """The ModuleDict of the inactive adapters' parameters (created on first use)."""
    found = adapted._modules.get("inactive_adapters")
    if found is None:
        found = adapted.inactive_adapters = nn.ModuleDict()
    return found  # type: ignore[return-value]


def add_adapter(adapted: AdaptedModel, name: str, spec: Mapping[str, Any] | SuperLoRA | None = None, *,
                targets: Selector = None, exclude: Selector = None, zero_init: Any = True, dropout: float = 0.0,
                memory: str | int = "auto", modules_to_save: Sequence[str] | str | None = None) -> None:
    """Add an inactive adapter ``name`` with its own spec and targets (defaults: the model's) and
    its own copies of the heads ``modules_to_save`` (names or suffixes, as in ``inject``)."""
    from .defaults import default_targets

    check_name(name)
    if name in adapted.adapter_names:
        raise SpecError("adapter_name", name, f"a new name (existing: {', '.join(adapted.adapter_names)})")
    if adapted.merged:
        raise SpecError("add_adapter", "a merged model", "an unmerged model (call unmerge() first)")
    model = adapted.base_model
    if targets is None and isinstance(spec, SuperLoRA):
        layers = spec_layers(model, spec)
    else:
        layers = find_targets(model, default_targets(model) if targets is None else targets, exclude)
    built = build_spec(layers, spec)
    every_head = set(all_heads(adapted))
    clash = [info.name for info in layers for h in every_head if info.name == h or info.name.startswith(h + ".")]
    if clash:
        raise SpecError("targets", clash[:4], "layers outside every adapter's heads (modules_to_save)")
    heads = resolve_heads(model, modules_to_save, [*adapted._forwards, *(info.name for info in layers)])
    modules = dict(model.named_modules())
    device = modules[layers[0].name].weight.device
    values = built.init("torch", zero_init=zero_init, dtype=adapted.adapter_dtype, device=device)
    params = nn.ParameterDict({k: nn.Parameter(v, requires_grad=False) for k, v in values.items()})
    shared = shared_targets(built, [info.name for info in layers], adapted._factored)
    inactive(adapted)[name] = params
    adapted._slots[name] = {
        "spec": built, "layers": {info.name: info for info in layers}, "_shared": shared,
        "memory": choose_memory_mode(memory, built, shared, values),
        "_params_of": {info.name: target_params(built, info.name) for info in layers}, "dropout": check_dropout(dropout),
        "head_names": heads,
    }
    if heads:
        store = _store(adapted, "head_store")
        store[name] = nn.ModuleDict({_key(h): _frozen_copy(_original(adapted, h, modules)) for h in heads})
    for info in layers:  # install the forward once for each layer any adapter targets
        if info.name not in adapted._forwards:
            module = modules[info.name]
            forward = AdaptedForward(adapted, module, info, False)
            forward.factored = adapted._factored
            adapted._forwards[info.name] = module.forward = forward
    refresh_forwards(adapted)


def refresh_forwards(adapted: AdaptedModel) -> None:
    """Each installed forward's factored choice for the active spec (cleared per-token cache)."""
    for name, forward in adapted._forwards.items():
        forward.can_factor = (forward.factored is not False and name in adapted.layers
                              and factored_supported(adapted.spec, name))
        forward._choice = {}


def swap(adapted: AdaptedModel, name: str) -> None:
    """Make ``name`` the active adapter (no checks beyond its existence)."""
    if name == adapted.active_adapter:
        return
    if name not in adapted._slots:
        raise SpecError("adapter_name", name, f"one of the adapters: {', '.join(adapted.adapter_names)}")
    store = inactive(adapted)
    new_params = store[name]
    old_name, old_params = adapted.active_adapter, adapted.adapter
    old_slot = {f: getattr(adapted, f) for f in SLOT_FIELDS}
    for f, value in adapted._slots.pop(name).items():
        setattr(adapted, f, value)
    del store[name]
    store[old_name] = old_params
    adapted._slots[old_name] = old_slot
    adapted.adapter = new_params
    adapted.active_adapter = name
    for p in old_params.values():
        p.requires_grad_(False)
    for p in new_params.values():
        p.requires_grad_(True)
    _swap_heads(adapted, old_name, old_slot["head_names"], name, adapted.head_names)
    adapted._cache, adapted._last = None, {}
    refresh_forwards(adapted)


def set_adapter(adapted: AdaptedModel, name: str) -> None:
    """Activate adapter ``name`` (its parameters become the trainable ones)."""
    if adapted.merged:
        raise SpecError("set_adapter", "a merged model", "an unmerged model (call unmerge() first)")
    swap(adapted, name)


@contextlib.contextmanager
def activated(adapted: AdaptedModel, name: str) -> Iterator[None]:
    """Run the block with ``name`` active, then restore the adapter that was active."""
    before = adapted.active_adapter
    grads = {n: p.requires_grad for n, p in adapted.named_parameters(remove_duplicate=False)}
    swap(adapted, name)
    try:
        yield
    finally:
        swap(adapted, before)
        for n, p in adapted.named_parameters(remove_duplicate=False):
            p.requires_grad_(grads.get(n, p.requires_grad))


def delete_adapter(adapted: AdaptedModel, name: str) -> None:
    """Remove an inactive adapter (its parameters and settings)."""
    if name == adapted.active_adapter:
        raise SpecError("delete_adapter", name, "an inactive adapter (set_adapter() another one first)")
    if name not in adapted._slots:
        raise SpecError("adapter_name", name, f"one of the adapters: {', '.join(adapted.adapter_names)}")
    if name in adapted.merged_adapters:
        raise SpecError("delete_adapter", name, "an adapter that is not merged (call unmerge() first)")
    del inactive(adapted)[name]
    del adapted._slots[name]
    store = adapted._modules.get("head_store")
    if store is not None and name in store:
        del store[name]


def merge_names(adapted: AdaptedModel, adapter_names: Sequence[str] | None) -> list[str]:
    if adapter_names is None:
        return [adapted.active_adapter]
    if isinstance(adapter_names, str) or not adapter_names:
        raise SpecError("adapter_names", adapter_names, "None (the active adapter) or a non-empty list of adapter names")
    names = list(dict.fromkeys(adapter_names))
    unknown = [n for n in names if n not in adapted.adapter_names]
    if unknown:
        raise SpecError("adapter_names", unknown, f"names of adapters of this model: {', '.join(adapted.adapter_names)}")
    return names


@torch.no_grad()
def merge(adapted: AdaptedModel, names: list[str], safe_merge: bool) -> None:
    """W <- W + sum of the named adapters' dW; on a refused safe merge, nothing stays changed."""
    done: list[str] = []
    try:
        for name in names:
            with activated(adapted, name):
                adapted._add(+1.0, safe_merge)
            done.append(name)
    except SpecError:
        for name in reversed(done):
            with activated(adapted, name):
                adapted._add(-1.0, False)
        raise


@torch.no_grad()
def unmerge(adapted: AdaptedModel, names: list[str]) -> None:
    for name in reversed(names):
        with activated(adapted, name):
            adapted._add(-1.0, False)


# ---------------------------------------------------------------------- per-adapter heads
def _key(head: str) -> str:
    """A head's module path as a ModuleDict key (no dots)."""
    return head.replace(".", ":")


def _store(adapted: AdaptedModel, field: str) -> nn.ModuleDict:
    found = adapted._modules.get(field)
    if found is None:
        found = nn.ModuleDict()
        setattr(adapted, field, found)
    return found  # type: ignore[return-value]


def _frozen_copy(module: nn.Module) -> nn.Module:
    import copy

    clone = copy.deepcopy(module)
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


def all_heads(adapted: AdaptedModel) -> list[str]:
    """Every adapter's heads (the active adapter's first)."""
    names = list(adapted.head_names)
    for slot in adapted._slots.values():
        names += [h for h in slot["head_names"] if h not in names]
    return names


def resolve_heads(model: nn.Module, modules_to_save: Sequence[str] | str | None, targets: Sequence[str]) -> list[str]:
    """Module names of ``model`` the ``modules_to_save`` names/suffixes select (outermost matches),
    none of them holding an adapted layer; SpecError naming what is missing or clashes."""
    from .targets import matches

    if modules_to_save is None:
        return []
    if isinstance(modules_to_save, str):
        modules_to_save = [modules_to_save]
    if not isinstance(modules_to_save, Sequence) or not all(isinstance(m, str) and m for m in modules_to_save):
        raise SpecError("modules_to_save", modules_to_save, "None, a module name or a list of module names/suffixes")
    found = [n for n, _ in model.named_modules() if n and matches(n, list(modules_to_save))]
    heads = [h for h in found if not any(h.startswith(o + ".") for o in found if o != h)]
    missing = [key for key in modules_to_save if not any(matches(h, [key]) for h in heads)]
    if missing:
        raise SpecError("modules_to_save", missing, "module names or suffixes that exist in the model")
    clash = [h for h in heads for t in targets if t == h or t.startswith(h + ".")]
    if clash:
        raise SpecError("modules_to_save", clash[:4], "modules that are not adapted themselves (a target is inside)")
    return heads


def keep_head_originals(adapted: AdaptedModel) -> None:
    """Frozen copies of the base's own heads the active adapter trains (made once, at ``inject``)."""
    if not adapted.head_names:
        return
    modules = dict(adapted.base_model.named_modules())
    store = _store(adapted, "head_originals")
    for h in adapted.head_names:
        if _key(h) not in store:
            store[_key(h)] = _frozen_copy(modules[h])


def _original(adapted: AdaptedModel, head: str, modules: Mapping[str, nn.Module]) -> nn.Module:
    """The module holding the base's own values of ``head``: stored while the active adapter has
    its copy of it in the model, else the model's module itself."""
    store = adapted._modules.get("head_originals")
    if head in adapted.head_names:
        return store[_key(head)]  # type: ignore[index]
    return modules[head]


def _exchange(live: nn.Module, stored: nn.Module) -> None:
    """Swap every parameter and buffer of ``live`` with those of ``stored`` (its deep copy)."""
    for a, b in zip(live.modules(), stored.modules()):
        for table in ("_parameters", "_buffers"):
            mine, theirs = getattr(a, table), getattr(b, table)
            for k in mine:
                mine[k], theirs[k] = theirs[k], mine[k]


def _swap_heads(adapted: AdaptedModel, old: str, old_heads: Sequence[str], new: str, new_heads: Sequence[str]) -> None:
    """Put ``new``'s heads (or the base's own where it has none) into the model; store ``old``'s."""
    if not old_heads and not new_heads:
        return
    modules = dict(adapted.base_model.named_modules())
    store, originals = _store(adapted, "head_store"), _store(adapted, "head_originals")
    for h in dict.fromkeys([*old_heads, *new_heads]):
        k = _key(h)
        source = store[new][k] if h in new_heads else originals[k]  # what goes into the model
        _exchange(modules[h], source)  # ``source`` now holds what the model had
        if h in new_heads:
            del store[new][k]
        else:
            del originals[k]
        if h in old_heads:
            if old not in store:
                store[old] = nn.ModuleDict()
            store[old][k] = source
        else:
            originals[k] = source
        for p in source.parameters():
            p.requires_grad_(False)
        for p in modules[h].parameters():
            p.requires_grad_(h in new_heads)
    if new in store and not len(store[new]):
        del store[new]
