"""Structural recognition: which named variants a spec reduces to (shapes and settings only).

Each variant's own ``recognise`` (in :mod:`superlora_tn.registry`) decides; this module asks every
registered variant and orders the answers by their ``priority``.

>>> import superlora_tn as slt
>>> identify(slt.SuperLoRA({"w": (6, 5)}, rank=2))
'lora'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .registry import VARIANT_REGISTRY

if TYPE_CHECKING:
    from .facade import SuperLoRA

__all__ = ["NAMES", "identify", "reduces_to"]  # noqa: F822 (NAMES comes from __getattr__)


def __getattr__(name: str) -> Any:
    if name == "NAMES":  # every registered variant's name
        return tuple(VARIANT_REGISTRY)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def reduces_to(spec: SuperLoRA) -> list[str]:
    """Every named variant the spec reduces to exactly, the primary one (``identify``) first."""
    c = spec.config
    if c.projection is not None or c.shuffle is not None:
        return []
    found = [v for v in VARIANT_REGISTRY.values() if v.recognise(spec)]
    return [v.name for v in sorted(found, key=lambda v: v.priority)]


def identify(spec: SuperLoRA) -> str:
    """The lowercase name of the variant the spec reduces to, else ``"superlora"``.

    Recognition is structural (grouping, fold, K, M, structures, projection, shuffle), so a spec
    built by hand is recognised like one from :mod:`superlora_tn.variants`.
    """
    names = reduces_to(spec)
    return names[0] if names else "superlora"
