"""A spec's parameters as each variant's textbook (native) parameters, and back.

``reference.<formula>(*native[key])`` equals ``spec.contract(params)`` (per target for
target-keyed variants such as lora, per group for the rest). Each variant's maps and formula live
in its registry entry (:mod:`superlora_tn.registry`), each factor's textbook form in its structure
(``structures.STRUCTURE_REGISTRY``); this module looks them up. ``to_<variant>`` /
``from_<variant>`` (``to_lora``, ``from_lokr``, ...) are ``to_native`` / ``from_native`` with
the name filled in, for every registered variant.

>>> import superlora_tn as slt
>>> from superlora_tn import reference
>>> spec = slt.SuperLoRA({"w": (6, 5)}, rank=2)
>>> p = spec.init(zero_init=False)
>>> bool(abs(reference.lora_delta(*to_native(spec, p, "lora")["w"]) - spec.contract(p)["w"]).max() < 1e-12)
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from .errors import SpecError
from .identify import identify, reduces_to
from .registry import VARIANT_REGISTRY, variant_named
from .registry.base import array_backend

if TYPE_CHECKING:
    from .facade import SuperLoRA

__all__ = ["from_native", "reference_deltas", "to_native"]


def _require(spec: SuperLoRA, name: str) -> None:
    """SpecError unless ``name`` is a registered variant that ``spec`` reduces to."""
    variant_named(name)
    names = reduces_to(spec)
    if name not in names:
        raise SpecError("variant", name, f"a variant this spec reduces to: {names or 'none (it is a general SuperLoRA)'}")


def _name(spec: SuperLoRA, name: str | None) -> str:
    name = identify(spec) if name is None else name
    _require(spec, name)
    return name


def to_native(spec: SuperLoRA, params: Mapping[str, Any], name: str | None = None) -> dict[Any, tuple]:
    """The spec's parameters as the variant's own; ``reference.<formula>(*native[key])`` gives dW.

    The key (a target name or a group index), the native tuple and the formula of each variant
    are its registry entry's ``key``, ``native_form`` and ``formula`` (the table of
    docs/reductions.md). ``scale`` is alpha / r (times the target's own scale for target-keyed
    variants; group-keyed variants leave a per-target ``scale=`` multiplier to the placement).
    """
    return VARIANT_REGISTRY[_name(spec, name)].to_native(spec, params)


def reference_deltas(spec: SuperLoRA, params: Mapping[str, Any], name: str | None = None) -> dict[str, Any]:
    """dW per target (target shape) from the variant's independent reference formula."""
    name = _name(spec, name)
    variant = VARIANT_REGISTRY[name]
    mats = variant.reference(spec, variant.to_native(spec, params), array_backend(params))
    return {t.name: mats[t.name].reshape(t.shape) for t in spec.targets}


def from_native(spec: SuperLoRA, native: Mapping[Any, Any], name: str | None = None) -> dict[str, Any]:
    """Inverse of :func:`to_native` for specs built the variant's canonical way (see ``variants``).

    Scales in ``native`` must equal the spec's (build the spec with the matching alpha).
    """
    variant = VARIANT_REGISTRY[_name(spec, name)]
    if not isinstance(native, Mapping):
        raise SpecError("native", type(native).__name__, "a mapping keyed by target name or group index")
    keys = variant.keys(spec)
    if set(native) != set(keys):
        raise SpecError("native", sorted(map(str, native))[:5], f"exactly the keys {keys[:5]}")
    out = variant.from_native(spec, native)
    return {n: out[n] for n in spec.param_shapes}


@cache
def _named(direction: str, name: str) -> Callable[..., Any]:
    """``to_<name>`` / ``from_<name>``: the generic map with the variant's name filled in."""
    variant = VARIANT_REGISTRY[name]
    generic = to_native if direction == "to" else from_native

    def named(spec: SuperLoRA, arg: Mapping[Any, Any]) -> Any:
        return generic(spec, arg, name)

    named.__name__ = named.__qualname__ = f"{direction}_{name}"
    named.__doc__ = (f"{{{variant.key}: {variant.native_form}}}: ``reference.{variant.formula}`` of it is dW."
                     if direction == "to" else f"Inverse of ``to_{name}``: the spec's parameters from {variant.display}'s own.")
    return named


def __getattr__(attr: str) -> Any:
    direction, _, name = attr.partition("_")
    if direction in ("to", "from") and name in VARIANT_REGISTRY:
        return _named(direction, name)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
