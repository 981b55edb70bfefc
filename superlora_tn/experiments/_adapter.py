"""Small, isolated adapter glue used by the experiment pipelines.

Unlike ``superlora_tn.torch.inject`` (forward hooks on the model itself), this module wraps a
frozen base model functionally: the base model is never mutated, so one pretrained backbone is
shared by the ~80 runs of an experiment without copying it. An :class:`AdaptedModel` computes the weight updates
``dW`` once per forward and calls the base model through :func:`torch.func.functional_call` with
``W0 + dW`` substituted for every adapted ``nn.Linear`` weight, plus trainable copies of any
other parameters that a method trains (a new classification head, biases).

Adapter generators (all return ``dict[target name, dW]``):

* :class:`SpecAdapter` - a ``superlora_tn.SuperLoRA`` spec (LoRA, LoKr, LoNKr, LoTR, Tucker, ...).
* :class:`LoRAReference` - a hand-written LoRA ``dW = B A``, the sanity reference for the spec path.
* :class:`DenseDelta` - a free ``dW`` per target (full fine-tuning of the adapted matrices).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call


def linear_targets(model: nn.Module, names: Sequence[str]) -> OrderedDict[str, tuple[int, int]]:
    """Map each named ``nn.Linear`` module to its weight shape ``(out, in)``, in the given order."""
    modules = dict(model.named_modules())
    targets: OrderedDict[str, tuple[int, int]] = OrderedDict()
    for name in names:
        module = modules.get(name)
        if not isinstance(module, nn.Linear):
            raise ValueError(f"target {name!r} is not an nn.Linear of the model")
        targets[name] = (module.out_features, module.in_features)
    return targets


def _key(name: str) -> str:
    """Turn a dotted name into a valid ``nn.ParameterDict`` key."""
    return name.replace(".", "__")


class DeltaGenerator(nn.Module):
    """Base class: owns trainable parameters and generates one ``dW`` per target."""

    targets: OrderedDict[str, tuple[int, int]]

    def deltas(self) -> dict[str, Tensor]:
        """Return the weight update of every target (differentiable)."""
        raise NotImplementedError

    @property
    def num_params(self) -> int:
        """Number of trainable adapter parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


class DenseDelta(DeltaGenerator):
    """A free, zero-initialised ``dW`` for every target: full fine-tuning of those matrices."""

    def __init__(self, targets: Mapping[str, tuple[int, int]]) -> None:
        super().__init__()
        self.targets = OrderedDict(targets)
        self.delta = nn.ParameterDict(
            {_key(n): nn.Parameter(torch.zeros(s)) for n, s in self.targets.items()}
        )

    def deltas(self) -> dict[str, Tensor]:
        return {n: self.delta[_key(n)] for n in self.targets}


class LoRAReference(DeltaGenerator):
    """Hand-written LoRA: ``dW = (alpha / r) B A`` with ``B = 0`` and PEFT's Kaiming init of A."""

    def __init__(
        self,
        targets: Mapping[str, tuple[int, int]],
        rank: int,
        alpha: float | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.targets = OrderedDict(targets)
        self.scale = (alpha if alpha is not None else rank) / rank
        gen = torch.Generator().manual_seed(seed)
        self.a = nn.ParameterDict()
        self.b = nn.ParameterDict()
        for name, (out_f, in_f) in self.targets.items():
            bound = 1.0 / math.sqrt(in_f)  # kaiming_uniform_(a=sqrt(5)) as in PEFT
            a = (torch.rand(rank, in_f, generator=gen) * 2 - 1) * bound
            self.a[_key(name)] = nn.Parameter(a)
            self.b[_key(name)] = nn.Parameter(torch.zeros(out_f, rank))

    def deltas(self) -> dict[str, Tensor]:
        return {n: self.scale * (self.b[_key(n)] @ self.a[_key(n)]) for n in self.targets}


class SpecAdapter(DeltaGenerator):
    """Parameters and contraction of a ``superlora_tn.SuperLoRA`` spec."""

    def __init__(self, targets: Mapping[str, tuple[int, int]], **spec_kwargs: Any) -> None:
        super().__init__()
        import superlora_tn

        self.targets = OrderedDict(targets)
        self.spec = superlora_tn.SuperLoRA(self.targets, **spec_kwargs)
        init = self.spec.init(backend="torch", dtype=torch.float32)
        self._names = list(init)
        self.params = nn.ParameterDict({_key(k): nn.Parameter(v.clone()) for k, v in init.items()})
        counted = sum(v.numel() for v in init.values())
        if counted != self.spec.num_params:
            raise RuntimeError(
                f"spec.num_params={self.spec.num_params} but init() holds {counted} entries"
            )

    @property
    def num_params(self) -> int:
        return int(self.spec.num_params)

    def deltas(self) -> dict[str, Tensor]:
        params = {k: self.params[_key(k)] for k in self._names}
        out = self.spec.contract(params)
        return {n: out[n] for n in self.targets}


class AdaptedModel(nn.Module):
    """A frozen base model plus trainable weight updates and trainable parameter copies.

    Args:
        base: the pretrained model; its parameters are frozen and never modified.
        generator: produces ``dW`` for ``<target>.weight`` (None: no weight update).
        trainable: names of base parameters to train as copies (biases, a head).
        replace: parameters to use instead of base ones, trained (e.g. a freshly
            initialised head whose shape differs from the base model's).
    """

    def __init__(
        self,
        base: nn.Module,
        generator: DeltaGenerator | None = None,
        trainable: Sequence[str] = (),
        replace: Mapping[str, Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.generator = generator
        named = dict(base.named_parameters())
        self.copies = nn.ParameterDict(
            {_key(n): nn.Parameter(named[n].detach().clone()) for n in trainable}
        )
        for name, value in (replace or {}).items():
            self.copies[_key(name)] = nn.Parameter(value.detach().clone())
        self._copy_names = {_key(n): n for n in [*trainable, *(replace or {})]}
        self._cached: dict[str, Tensor] | None = None

    def overrides(self) -> dict[str, Tensor]:
        """Parameters substituted into the base model for the next forward."""
        out = {self._copy_names[k]: p for k, p in self.copies.items()}
        if self.generator is not None:
            deltas = self._cached if self._cached is not None else self.generator.deltas()
            named = dict(self.base.named_parameters())
            for target, dw in deltas.items():
                weight = f"{target}.weight"
                out[weight] = named[weight] + dw
        return out

    @contextmanager
    def frozen_deltas(self) -> Iterator[None]:
        """Compute ``dW`` once (no grad) and reuse it for every forward inside the block."""
        if self.generator is not None:
            with torch.no_grad():
                self._cached = {k: v.detach() for k, v in self.generator.deltas().items()}
        try:
            yield
        finally:
            self._cached = None

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return functional_call(self.base, self.overrides(), args, kwargs)

    @staticmethod
    def copy_name(name: str) -> str:
        """The ``named_parameters()`` name of the trained copy of base parameter ``name``."""
        return f"copies.{_key(name)}"

    def adapter_params(self) -> int:
        """Trainable parameters of the weight-update generator."""
        return 0 if self.generator is None else self.generator.num_params

    def copy_params(self, names: Sequence[str] | None = None) -> int:
        """Trainable copied parameters (all, or those whose base name is in ``names``)."""
        return sum(
            p.numel()
            for k, p in self.copies.items()
            if names is None or self._copy_names[k] in names
        )
