"""``inject`` and ``AdaptedModel``: a base model, its SuperLoRA adapter parameters and the spec.

>>> import torch
>>> from torch import nn
>>> from superlora_tn.torch import inject
>>> model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
>>> adapted = inject(model, targets=["0", "2"], spec=dict(rank=2))
>>> sorted(adapted.adapter)
['g0_k0_A0', 'g0_k0_A1', 'g1_k0_A0', 'g1_k0_A1']
>>> adapted(torch.zeros(3, 8)).shape
torch.Size([3, 4])
"""

from __future__ import annotations

import contextlib
import inspect
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..backends import get_backend
from ..errors import SpecError
from ..facade import SuperLoRA
from ..slices import target_delta, target_params
from . import adapters as _adapters
from . import hf as _hf
from . import io as _io
from . import state as _state
from .build import build_spec, check_dropout, spec_layers
from .defaults import default_targets, refuse_peft_spelling
from .layers import AdaptedForward
from .memory import choose_memory_mode, shared_targets
from .sharding import is_sharded
from .targets import LayerInfo, Selector, check_injectable, find_targets, matches

__all__ = ["AdaptedModel", "inject"]


class AdaptedModel(nn.Module):
    """A model with a SuperLoRA adapter: ``base_model`` (frozen), ``adapter`` (trainable), ``spec``.

    Calling it calls the base model; each adapted layer's forward is replaced on the instance
    (``layers.AdaptedForward``). Targets whose group also feeds other targets get their dW from ONE
    ``spec.contract`` per forward pass, run before the first layer (``memory="fast"``), or each
    build their own slice just in time and rebuild it in the backward (``memory="low"``).
    """

    def __init__(self, model: nn.Module, spec: SuperLoRA, layers: list[LayerInfo], *,
                 modules_to_save: Sequence[str] = (), factored: bool | str = "auto", zero_init: Any = True,
                 adapter_dtype: torch.dtype = torch.float32, memory: str | int = "auto", dropout: float = 0.0,
                 adapter_name: str = "default") -> None:
        super().__init__()

        if factored not in (True, False, "auto"):
            raise SpecError("factored", factored, 'True, False or "auto"')
        self.dropout = check_dropout(dropout)
        self.active_adapter = _adapters.check_name(adapter_name)
        self._slots: dict[str, dict[str, Any]] = {}  # the inactive adapters' settings (adapters.py)
        self.merged_adapters: list[str] = []
        self._factored = factored
        if getattr(model, "_superlora_tn_adapted", False):
            raise SpecError("model", type(model).__name__, "a model without an attached adapter (unload() the first one)")
        self.base_model = model
        self.spec = spec
        self.layers = {info.name: info for info in layers}
        if isinstance(modules_to_save, str):
            modules_to_save = [modules_to_save]
        if not isinstance(modules_to_save, Sequence) or not all(isinstance(m, str) and m for m in modules_to_save):
            raise SpecError("modules_to_save", modules_to_save, "a module name or a list of module names/suffixes")
        self.modules_to_save = tuple(modules_to_save)
        try:
            resolved = get_backend("torch").resolve_dtype(adapter_dtype)
        except (TypeError, AttributeError):
            resolved = None
        if resolved is None or not resolved.is_floating_point:
            raise SpecError("adapter_dtype", adapter_dtype, "a floating torch dtype such as torch.float32")
        self.adapter_dtype = resolved
        self.merged = False
        self.adapter_enabled = True
        self.stats: Counter[str] = Counter()
        modules = dict(model.named_modules())
        device = modules[layers[0].name].weight.device
        values = spec.init("torch", zero_init=zero_init, dtype=adapter_dtype, device=device)
        self.adapter = nn.ParameterDict({name: nn.Parameter(v) for name, v in values.items()})
        self._requires_grad = {name: p.requires_grad for name, p in model.named_parameters()}
        for p in model.parameters():
            p.requires_grad_(False)
        self.head_names = self._heads(modules)
        for head in self.head_names:
            for p in modules[head].parameters():
                p.requires_grad_(True)
        _adapters.keep_head_originals(self)  # the base's own heads, for adapters that do not name them (adapters.py)
        self._depth = 0
        self._cache: dict[str, torch.Tensor] | None = None  # this forward's shared dW
        self._last: dict[str, torch.Tensor] = {}  # the last forward's, until backward (checkpoint recompute)
        # targets that take their dW from the per-forward contraction: those sharing a group,
        # except those applied factored or sliced from their own rows (stack folds, LoTR-like)
        self._shared = shared_targets(spec, self.layers, factored)
        self.memory = choose_memory_mode(memory, spec, self._shared, values)
        self._params_of = {name: target_params(spec, name) for name in self.layers}
        model._superlora_tn_adapted = True
        self._handles = [model.register_forward_pre_hook(self._enter), model.register_forward_hook(self._exit, always_call=True)]
        self._forwards = {}
        for info in layers:
            module = modules[info.name]
            self._forwards[info.name] = module.forward = AdaptedForward(self, module, info, factored)
        if type(self) is AdaptedModel:  # Adapted<Base>: forward with the base class's signature (hf.py)
            self.__class__ = adapted_class(type(model))

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles leave out the per-forward dW (graph tensors, rebuilt on the next forward)."""
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()
        state = dict(state)
        state["_cache"], state["_last"], state["_depth"] = None, {}, 0
        return state

    def _heads(self, modules: Mapping[str, nn.Module]) -> list[str]:
        if not self.modules_to_save:
            return []
        heads = [n for n in modules if n and matches(n, list(self.modules_to_save))]
        # keep the outermost match only (a head's submodules are part of it)
        heads = [h for h in heads if not any(h.startswith(o + ".") for o in heads if o != h)]
        missing = [key for key in self.modules_to_save if not any(matches(h, [key]) for h in heads)]
        if missing:
            raise SpecError("modules_to_save", missing, "module names or suffixes that exist in the model")
        clash = [h for h in heads for t in self.layers if t == h or t.startswith(h + ".")]
        if clash:
            raise SpecError("modules_to_save", clash[:4], "modules that are not adapted themselves (a target is inside)")
        return heads

    _apply = _state.apply_and_sync_dtype  # adapted.to(torch.float64): the layers compute in float64 too

    # ----------------------------------------------------------------- forward
    def _enter(self, module: nn.Module, args: Any) -> None:
        self._depth += 1
        if self._depth == 1:
            self._cache = None
            self._last = {}
            if self._shared and self.memory == "fast" and self.adapter_enabled and not self.merged:
                # before the first layer, so outside any checkpointed block: a recomputed block
                # reads the same dW instead of contracting again
                self._cache = self.deltas()

    def _exit(self, module: nn.Module, args: Any, output: Any) -> None:
        self._depth -= 1
        if self._depth <= 0:
            self._depth = 0
            cache, self._cache = self._cache, None
            if cache and torch.is_grad_enabled():
                self._keep_until_backward(cache)

    def _keep_until_backward(self, cache: dict[str, torch.Tensor]) -> None:
        """Keep this forward's shared dW for checkpoint recomputes; each entry is dropped once its
        gradient has been computed (so nothing outlives the backward)."""
        last = {name: d for name, d in cache.items() if name in self._shared and d.requires_grad}
        for name, d in last.items():
            d.register_hook(_dropper(last, name))
        self._last = last

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Call the base model (its adapted layers add their dW)."""
        return self.base_model(*args, **kwargs)

    # ----------------------------------------------------------------- several named adapters (adapters.py)
    @property
    def adapter_names(self) -> list[str]:
        """Every adapter's name, the active one first."""
        return [self.active_adapter, *self._slots]

    def add_adapter(self, adapter_name: str, spec: Mapping[str, Any] | SuperLoRA | None = None, **kwargs: Any) -> None:
        """Add an inactive adapter with its own spec; ``targets=``, ``exclude=``, ``zero_init=``,
        ``dropout=``, ``memory=``, ``modules_to_save=`` (its own copies of those heads) as in
        ``inject`` (targets default to the model's defaults)."""

        _adapters.add_adapter(self, adapter_name, spec, **kwargs)

    def set_adapter(self, adapter_name: str) -> None:
        """Activate ``adapter_name``: the model runs and trains it (no re-injection)."""
        _adapters.set_adapter(self, adapter_name)

    def delete_adapter(self, adapter_name: str) -> None:
        """Remove an inactive adapter."""
        _adapters.delete_adapter(self, adapter_name)

    # ----------------------------------------------------------------- behave like the wrapped model
    def __getattr__(self, name: str) -> Any:
        """Attributes the AdaptedModel lacks come from the base model (``config``, ``generate`` ...)."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "base_model" or (name.startswith("__") and name.endswith("__")):
                raise
            modules = self.__dict__.get("_modules") or {}
            if "base_model" not in modules:
                raise
            return getattr(modules["base_model"], name)

    def __reduce_ex__(self, protocol: Any) -> Any:
        base = type(self).__dict__.get("_superlora_tn_base_class")
        if base is None:
            return super().__reduce_ex__(protocol)
        return remake, (base,), self.__getstate__()

    def get_base_model(self) -> nn.Module:
        """The wrapped model (adapted layers included), as ``PeftModel.get_base_model``."""
        return self.base_model

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}(base_model={type(self.base_model).__name__}, {len(self.layers)} adapted layers, "
                 f"{self.spec.num_params:,} adapter parameters, memory={self.memory!r}, dropout={self.dropout}, "
                 f"adapter={self.active_adapter!r}{f', inactive={list(self._slots)}' if self._slots else ''}"
                 f"{', merged' if self.merged else ''})"]
        lines += [f"  {name}: {info.kind} {tuple(info.shape)}" for name, info in self.layers.items()]
        lines += [f"  head {name}: trained in full" for name in self.head_names]
        return "\n".join(lines)

    def adapter_input(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The input the adapter path sees: ``dropout(x)`` while training (PEFT's lora_dropout)."""
        if self.dropout and module.training:
            return torch.nn.functional.dropout(x, self.dropout, training=True)
        return x

    def uses_dropout(self, module: nn.Module) -> bool:
        return bool(self.dropout) and module.training

    # ----------------------------------------------------------------- state dict = trainable state
    def state_dict(self, *args: Any, destination: Any = None, prefix: str = "", keep_vars: bool = False) -> Any:
        """The trainable state: ``adapter.*``, the heads (``base_model.<head>.*``) and ``_extra_state``
        (the adapter config). The frozen base is the model you load; ``base_model.state_dict()`` has it."""
        if args:
            raise TypeError("AdaptedModel.state_dict takes keyword arguments only (destination=, prefix=, keep_vars=)")

        return _hf.filtered_state_dict(self, destination, prefix, keep_vars)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Load a state dict (this model's ``state_dict()`` or a full one); the frozen base keys are
        never reported missing. The saved config is checked before anything is copied."""
        from torch.nn.modules.module import _IncompatibleKeys


        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        own = set(_hf.trainable_keys(self, result.missing_keys))
        missing = [k for k in result.missing_keys if k in own]
        if strict and (missing or result.unexpected_keys):
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}: missing keys {missing}, "
                               f"unexpected keys {result.unexpected_keys}")
        return _IncompatibleKeys(missing, result.unexpected_keys)

    def get_extra_state(self) -> torch.Tensor:
        """The adapter config (spec, layer kinds, heads) as a uint8 tensor of JSON."""
        return _hf.encode(_hf.adapter_config(self))

    def set_extra_state(self, state: Any) -> None:

        _hf.check_config(self, _hf.decode(state))

    def deltas(self) -> dict[str, torch.Tensor]:
        """dW of every target, name -> tensor in the target's shape (one batched contraction)."""
        self.stats["contract"] += 1
        device = next(iter(self.adapter.values())).device.type
        with torch.autocast(device, enabled=False):  # opt_einsum mixes matmul (autocast) and tensordot (not)
            return self.spec.contract(dict(self.adapter))

    def delta(self, name: str) -> torch.Tensor:
        """dW of one target: a shared group's from this forward's contraction; a weight-wise
        group's (or a layer called on its own) built just in time from its own parameters."""
        if name in self._shared:
            if self._depth > 0:
                if self._cache is None:
                    self._cache = self.deltas()
                return self._cache[name]
            if name in self._last and _in_backward():  # a checkpointed block recomputed
                return self._last[name]
        return self.target_delta(name)

    def target_delta(self, name: str, params: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """dW of one target computed from only the parameters (and group rows) it needs."""
        self.stats["target"] += 1
        if params is None:
            params = {n: self.adapter[n] for n in self._params_of[name]}
        return target_delta(self.spec, params, name)  # autocast off inside, as spec.contract

    def run_target(self, name: str, fn: Any, x: torch.Tensor) -> torch.Tensor:
        """``fn(dW, x)`` for target ``name``. Low memory: dW is built inside a non-reentrant
        checkpoint, so it is freed after the layer and rebuilt from the adapter in the backward."""
        if self.memory != "low":
            return fn(self.delta(name), x)
        names = self._params_of[name]

        def region(x: torch.Tensor, *values: torch.Tensor) -> torch.Tensor:
            return fn(self.target_delta(name, dict(zip(names, values))), x)

        from torch.utils.checkpoint import checkpoint

        return checkpoint(region, x, *(self.adapter[n] for n in names), use_reentrant=False)

    @contextlib.contextmanager
    def disable_adapter(self) -> Iterator[None]:
        """Run the base model alone inside the block (an unmerged adapter only)."""
        if self.merged:
            raise SpecError("disable_adapter", "merged adapter", "an unmerged adapter (call unmerge() first)")
        self.adapter_enabled = False
        try:
            yield
        finally:
            self.adapter_enabled = True

    # ----------------------------------------------------------------- merge
    def _weights(self) -> dict[str, nn.Module]:
        modules = dict(self.base_model.named_modules())
        return {name: modules[name] for name in self.layers}

    @torch.no_grad()
    def _add(self, sign: float, safe: bool) -> None:
        if any(is_sharded(p) for p in self.adapter.values()):
            raise SpecError("merge", "a sharded (FSDP2) adapter",
                            "an unsharded model: save() on every rank, then load() into a plain model and merge there")
        deltas = self.deltas()
        modules = self._weights()
        new = {}
        for name, info in self.layers.items():
            w = modules[name].weight
            d = deltas[name].detach().to(device=w.device)
            if info.kind == "gpt2_conv1d":
                d = d.T
            merged = (w.to(d.dtype) + sign * d).to(w.dtype)
            if safe and not bool(torch.isfinite(merged).all()):
                bad = int((~torch.isfinite(merged)).sum())
                raise SpecError(f"merge[{name!r}]", f"{bad} non-finite entries after merging",
                                "finite adapter parameters and base weights (safe_merge refused; nothing was changed)")
            new[name] = merged
        for name, merged in new.items():
            modules[name].weight.copy_(merged)

    def merge(self, safe_merge: bool = False, adapter_names: Sequence[str] | None = None) -> None:
        """W <- W + dW for every target; the hooks then add nothing. ``safe_merge`` refuses NaN/inf.
        ``adapter_names``: the adapters whose dW are added (default: the active one)."""

        self._check_loaded()
        if self.merged:
            raise SpecError("merge", "already merged", "an unmerged adapter")
        names = _adapters.merge_names(self, adapter_names)
        if names == [self.active_adapter]:
            self._add(+1.0, safe_merge)
        else:
            _adapters.merge(self, names, safe_merge)
        self.merged = True
        self.merged_adapters = names

    def unmerge(self) -> None:
        """W <- W - dW (restores the base weights to float32 round-off)."""
        self._check_loaded()
        if not self.merged:
            raise SpecError("unmerge", "not merged", "a merged adapter (call merge() first)")
        if self.merged_adapters in ([], [self.active_adapter]):
            self._add(-1.0, False)
        else:
            _adapters.unmerge(self, self.merged_adapters)
        self.merged = False
        self.merged_adapters = []

    def unload(self) -> nn.Module:
        """Remove the hooks and return the base model as it is (merged or not), trainability restored."""
        self._check_loaded()
        for handle in self._handles:
            handle.remove()
        self._handles = []
        for forward in self._forwards.values():
            if forward.previous is not None:
                forward.module.forward = forward.previous
            else:
                del forward.module.forward
        self._forwards = {}
        self.base_model._superlora_tn_adapted = False
        for name, p in self.base_model.named_parameters():
            p.requires_grad_(self._requires_grad.get(name, True))
        return self.base_model

    def merge_and_unload(self, safe_merge: bool = False, adapter_names: Sequence[str] | None = None) -> nn.Module:
        """Merge, remove every hook, and return the plain base model (no trace of the adapter)."""
        if not self.merged:
            self.merge(safe_merge=safe_merge, adapter_names=adapter_names)
        return self.unload()

    def _check_loaded(self) -> None:
        if not self._handles:
            raise SpecError("adapter", "unloaded", "an adapter still attached (merge_and_unload()/unload() was called)")

    # ----------------------------------------------------------------- reporting and io
    def trainable_parameters(self) -> dict[str, int | float]:
        """Counts: adapter, heads (modules_to_save), trainable, all (base + adapter), percentage."""
        adapter = sum(p.numel() for p in self.adapter.parameters())
        modules = dict(self.base_model.named_modules())
        heads = sum(p.numel() for h in self.head_names for p in modules[h].parameters())
        total = sum(p.numel() for p in self.base_model.parameters()) + adapter
        trainable = adapter + heads
        return {"adapter": adapter, "heads": heads, "trainable": trainable, "all": total, "percent": 100.0 * trainable / total}

    def print_trainable_parameters(self) -> None:
        """Print the counts in PEFT's format (returns None, as PEFT; the numbers: ``trainable_parameters()``)."""
        c = self.trainable_parameters()
        print(f"trainable params: {c['trainable']:,} (adapter {c['adapter']:,} + heads {c['heads']:,}) "
              f"|| all params: {c['all']:,} || trainable%: {c['percent']:.4f}")

    def save(self, path: Any) -> None:
        """Write ``adapter_model.safetensors`` + ``adapter_config.json`` (spec, format, version, checksum).
        Several adapters: ``default`` in ``path``, each other one in ``path/<name>`` (as PEFT)."""
        from pathlib import Path


        if not self._slots:
            _io.save(self, path)
            return
        for name in self.adapter_names:
            with _adapters.activated(self, name):
                _io.save(self, path if name == "default" else Path(path) / name)

    def save_pretrained(self, save_directory: Any) -> None:
        """PEFT's name for :meth:`save` (``superlora_tn.torch.from_pretrained`` reads it back)."""
        self.save(save_directory)

    def load_adapter(self, path: Any, adapter_name: str | None = None) -> None:
        """Load saved adapter values into this model; the saved spec must equal ``self.spec``.
        ``adapter_name``: load into that adapter instead, adding it (with the saved spec) if new."""

        if adapter_name is None or adapter_name == self.active_adapter:
            _io.load_into(self, path)
            return
        if adapter_name not in self._slots:
            config, _ = _io.read(path)
            self.add_adapter(adapter_name, SuperLoRA.from_dict(config["spec"]), dropout=float(config.get("dropout", 0.0)),
                             modules_to_save=config.get("modules_to_save") or None)
        with _adapters.activated(self, adapter_name):
            _io.load_into(self, path)


def inject(model: nn.Module, targets: Selector = None, spec: Mapping[str, Any] | SuperLoRA | None = None, *,
           exclude: Selector = None, modules_to_save: Sequence[str] | None = None, factored: bool | str = "auto",
           zero_init: Any = True, adapter_dtype: torch.dtype = torch.float32, memory: str | int = "auto",
           dropout: float = 0.0, adapter_name: str = "default", **peft_arguments: Any) -> AdaptedModel:
    """Attach a SuperLoRA adapter to ``model`` (in place) and return the :class:`AdaptedModel`.

    Args:
        targets: regex (fullmatch on module names) or a list of names / suffixes (PEFT rules).
            When ``spec`` is a ``SuperLoRA`` whose target names are module names, may be None.
            Omitted on a Hugging Face model: the default of its ``config.model_type``
            (``defaults.DEFAULT_TARGETS``, e.g. query/value for BERT, c_attn for GPT-2).
        spec: the ``SuperLoRA`` arguments except targets (e.g. ``dict(groups=1, fold="balanced",
            order=3, rank=4)``), or a ready ``SuperLoRA`` whose targets equal the matched layers.
        exclude: modules never adapted, same rules as ``targets``.
        modules_to_save: heads trained in full and saved with the adapter (names or suffixes).
        factored: ``"auto"`` (cost-based), True or False: apply natural-fold targets without dW.
        zero_init: as in ``SuperLoRA.init`` (True: dW == 0 at the start).
        adapter_dtype: dtype of the adapter parameters (float32 also on a half-precision model).
        memory: how targets that share a group (``groups=G``, shuffle) get their dW. ``"fast"``:
            one contraction of every shared dW per forward, kept until the backward (about 2x
            dW_all extra). ``"low"``: each layer builds its own slice just in time and rebuilds
            it in the backward (extra memory a few times the largest target's dW; more compute).
            ``"auto"`` (default): fast unless its extra memory would pass a quarter of the free
            memory of the adapter's device; an int: that budget in bytes. See docs/torch.md.
        dropout: p of the dropout on each adapted layer's input, as PEFT's ``lora_dropout``:
            ``base(x) + dropout(x) @ dW^T`` while training (the single-GEMM ``W + dW`` path is
            not used then, so the result is exact); nothing in eval mode.
        adapter_name: the adapter's name (``add_adapter`` adds more; ``set_adapter`` switches).

    PEFT spellings (``target_modules=``, ``r=``, ``lora_alpha=``...) raise a ``SpecError`` naming
    this library's argument (``defaults.PEFT_SPELLINGS``).
    """
    for name in sorted(peft_arguments):
        refuse_peft_spelling(name, name)
    if peft_arguments:
        allowed = [p for p in inspect.signature(inject).parameters if p not in ("model", "peft_arguments")]
        raise SpecError("inject", sorted(peft_arguments), f"arguments of inject(): {', '.join(allowed)}")
    if not isinstance(model, nn.Module):
        raise SpecError("model", type(model).__name__, "a torch.nn.Module")
    if targets is None and not isinstance(spec, SuperLoRA):
        targets = default_targets(model)
    if targets is None and isinstance(spec, SuperLoRA):  # the spec's target names are exact module names
        layers = spec_layers(model, spec)
    else:
        layers = find_targets(model, targets, exclude)
    check_injectable(model, [info.name for info in layers], modules_to_save=modules_to_save, factored=factored)
    return AdaptedModel(model, build_spec(layers, spec), layers, modules_to_save=modules_to_save or (),
                        factored=factored, zero_init=zero_init, adapter_dtype=adapter_dtype, memory=memory, dropout=dropout,
                        adapter_name=adapter_name)


_CLASSES: dict[type, type] = {}


def adapted_class(base: type) -> type:
    """``Adapted<Base>``: an ``AdaptedModel`` subclass whose ``forward`` has ``base.forward``'s signature."""
    cls = _CLASSES.get(base)
    if cls is None:

        def forward(self: AdaptedModel, *args: Any, **kwargs: Any) -> Any:
            return self.base_model(*args, **kwargs)

        try:
            forward.__signature__ = inspect.signature(base.forward)  # type: ignore[attr-defined]
        except (TypeError, ValueError):
            pass
        forward.__doc__ = AdaptedModel.forward.__doc__
        name = f"Adapted{base.__name__}"
        cls = type(name, (AdaptedModel,), {"forward": forward, "__module__": AdaptedModel.__module__, "__qualname__": name,
                                           "_superlora_tn_base_class": base})
        _CLASSES[base] = cls
    return cls


def remake(base: type) -> Any:
    """Unpickling: an empty instance of ``adapted_class(base)`` (its state is set by ``__setstate__``)."""
    return nn.Module.__new__(adapted_class(base))


def _dropper(store: dict[str, torch.Tensor], name: str) -> Any:
    def drop(grad: torch.Tensor) -> None:
        store.pop(name, None)

    return drop


def _in_backward() -> bool:
    """True inside an autograd backward pass (where a checkpointed block is recomputed)."""
    task_id = getattr(torch._C, "_current_graph_task_id", None)
    return task_id is not None and task_id() != -1
