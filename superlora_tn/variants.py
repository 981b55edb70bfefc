"""Named LoRA variants as SuperLoRA specs (docs/reductions.md), each with its parameter count.

Every builder returns a plain :class:`~superlora_tn.SuperLoRA`; ``spec.identify()`` gives the
variant's name back, and ``spec.num_params`` equals the formula in the builder's docstring
(targets seen as (out, in) matrices, sums over targets t or groups g). The builders are looked
up in the variant registry (:mod:`superlora_tn.registry`): ``variants.lora`` is
``VARIANT_REGISTRY["lora"].build``, and ``VARIANTS`` names every registered variant.

>>> from superlora_tn import variants
>>> vit = {f"l{i}.{p}": (768, 768) for i in range(12) for p in "qv"}
>>> variants.lora(vit, 8).num_params, variants.lokr(vit, 8).num_params, variants.lotr(vit, 8).num_params
(294912, 26112, 13824)
>>> variants.lokr(vit, 8).identify(), variants.loha(vit, 8).identify(), variants.loha(vit, 8).num_params
('lokr', 'loha', 589824)
"""

from __future__ import annotations

from typing import Any

from .facade import SuperLoRA
from .registry import VARIANT_REGISTRY, variant_named
from .registry.base import Targets

__all__ = ["VARIANTS", "build", *VARIANT_REGISTRY]  # noqa: F822 (VARIANTS and the builders come from __getattr__)


def build(name: str, targets: Targets, rank: int = 8, **kwargs: Any) -> SuperLoRA:
    """The variant called ``name`` (one of ``VARIANTS``); ``dense`` takes no rank."""
    variant = variant_named(name)
    return variant.build(targets, rank, **kwargs) if variant.ranked else variant.build(targets, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "VARIANTS":
        return tuple(VARIANT_REGISTRY)
    if name in VARIANT_REGISTRY:
        return VARIANT_REGISTRY[name].build
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "VARIANTS", *VARIANT_REGISTRY})
