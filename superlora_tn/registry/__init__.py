"""The variant registry: one :class:`~superlora_tn.registry.base.Variant` object per named variant.

``VARIANT_REGISTRY`` maps a name to the object holding everything about that variant: its builder
(``variants.<name>``), its recognition (``identify``), its native parameters both ways
(``to_native`` / ``from_native``), its independent reference formula and its parameter count.
:mod:`~superlora_tn.variants`, :mod:`~superlora_tn.identify` and :mod:`~superlora_tn.native` are
look-ups into this table. :func:`register_variant` adds one under a new name (it refuses to
replace one), the way ``opt_einsum.paths.register_path_fn`` adds a path function. The factor
structures have their own table, ``structures.STRUCTURE_REGISTRY``.

>>> tuple(VARIANT_REGISTRY)
('dense', 'lora', 'lokr', 'lonkr', 'lotr', 'lorta', 'cp', 'loha', 'tt')
>>> variant_named("lokr").display
'LoKr'
"""

from __future__ import annotations

from typing import Any

from ..errors import SpecError
from .base import Variant
from .cp import CP
from .dense import DENSE
from .loha import LOHA
from .lokr import LOKR
from .lonkr import LONKR
from .lora import LORA
from .lorta import LORTA
from .lotr import LOTR
from .tt import TT

__all__ = ["VARIANT_REGISTRY", "Variant", "register_variant", "variant_named"]

#: name -> Variant, in the order of docs/reductions.md. Extend with :func:`register_variant`.
VARIANT_REGISTRY: dict[str, Variant] = {v.name: v for v in (DENSE, LORA, LOKR, LONKR, LOTR, LORTA, CP, LOHA, TT)}


def register_variant(variant: Variant) -> Variant:
    """Add ``variant`` under its ``name``; a name already registered is refused (SpecError)."""
    if not isinstance(variant, Variant) or not isinstance(variant.name, str) or not variant.name:
        raise SpecError("variant", variant, "a Variant instance with a non-empty name")
    if variant.name in VARIANT_REGISTRY or variant.name == "superlora":
        raise SpecError("variant", variant.name, f"a new name (registered: {tuple(VARIANT_REGISTRY)})")
    VARIANT_REGISTRY[variant.name] = variant
    return variant


def variant_named(name: Any) -> Variant:
    """The registered variant called ``name``, else SpecError listing them."""
    if not isinstance(name, str) or name not in VARIANT_REGISTRY:
        raise SpecError("variant", name, f"one of {tuple(VARIANT_REGISTRY)}")
    return VARIANT_REGISTRY[name]
